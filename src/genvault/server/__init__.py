"""The HTTP server: FastAPI routes over the Vault, the AI SDK wire protocol, and the pages."""

from genvault.server.app import create_app

__all__ = ["create_app"]
