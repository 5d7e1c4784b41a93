"""From a `provider/model` name to the provider instance that serves it.

Invariants:
- `resolve` raises `InvalidRequest` for every problem a caller can fix (a malformed name, an
  unknown provider, a missing API key, a missing optional SDK), before anything is written or
  sent, with a message that says what to set.
- Providers are built on first use and reused; the `openai` and `anthropic` SDKs are imported
  only then (they are optional extras).
- An API key is read only for the provider it belongs to: a compatible server never receives
  `OPENAI_API_KEY`.
- `aclose()` closes what the registry built, never injected providers or the caller's HTTP client.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from genvault.errors import InvalidRequest
from genvault.providers.base import Provider
from genvault.providers.images import TEST_IMAGE_MODEL, ImageProvider, TestImageProvider
from genvault.providers.testmodel import TEST_MODEL, TEST_PROVIDER, TestProvider

if TYPE_CHECKING:
    import httpx

    from genvault.settings import Settings

__all__ = ["ProviderRegistry", "parse_model_name"]

logger = logging.getLogger(__name__)

_EXPECTED = "expected provider/model, e.g. openai/gpt-4o-mini, anthropic/claude-sonnet-4-5 or offline/test-model"
_PROVIDER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def parse_model_name(name: str) -> tuple[str, str]:
    """Split `provider/model` (the model may contain further slashes, as OpenRouter's do)."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidRequest(f"the model name is empty; {_EXPECTED}")
    # With some text in it (above), `name` holds whitespace exactly when splitting on whitespace
    # does not give it back whole (str.split's whitespace is str.isspace's): one C call, not a
    # generator over the characters.
    if name.split() != [name]:
        raise InvalidRequest(f"model name {name!r} contains whitespace; {_EXPECTED}")
    provider, slash, model = name.partition("/")
    if not slash:
        raise InvalidRequest(f"model name {name!r} names no provider; {_EXPECTED}")
    if not provider:
        raise InvalidRequest(f"model name {name!r} has nothing before the '/'; {_EXPECTED}")
    if not model:
        raise InvalidRequest(f"model name {name!r} has no model after the '/'; {_EXPECTED}")
    if not _PROVIDER_NAME.fullmatch(provider):
        raise InvalidRequest(f"provider name {provider!r} may only use letters, digits, '-', '_' and '.'; {_EXPECTED}")
    return provider, model


class ProviderRegistry:
    """The providers a Vault can call, by name.

    Built in: `offline` (the test model), `openai`, `anthropic`, and every entry of
    `settings.compatible_providers`; `providers` adds or replaces any of them (tests inject
    scripted `TestProvider`s). `environ` defaults to `os.environ`.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        http_client: httpx.AsyncClient | None = None,
        providers: Mapping[str, Provider] | None = None,
        image_providers: Mapping[str, ImageProvider] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self._settings = settings
        self._http_client = http_client
        self._injected = dict(providers or {})
        self._environ = os.environ if environ is None else environ
        self._built: dict[str, Provider] = {}
        self._images: dict[str, ImageProvider] = dict(image_providers or {})

    @property
    def environ(self) -> Mapping[str, str]:
        """Where API keys are read from (the catalog lists a provider's models once its key is set)."""
        return self._environ

    @property
    def names(self) -> list[str]:
        """Every provider name `resolve` knows, sorted."""
        return sorted({TEST_PROVIDER, "openai", "anthropic", *self._settings.compatible_providers, *self._injected})

    def resolve(self, model_name: str) -> tuple[Provider, str]:
        """The provider for `model_name` and the bare model name to send it."""
        provider_name, model = parse_model_name(model_name)
        if provider_name in self._injected:
            return self._injected[provider_name], model
        builtin_offline = provider_name == TEST_PROVIDER and provider_name not in self._settings.compatible_providers
        if builtin_offline and model != TEST_MODEL:
            raise InvalidRequest(
                f"the offline provider has one model, {TEST_PROVIDER}/{TEST_MODEL}; got {model_name!r}"
            )
        provider = self._built.get(provider_name)
        if provider is None:
            provider = self._built[provider_name] = self._build(provider_name, model_name)
        return provider, model

    def resolve_image(self, model_name: str) -> tuple[ImageProvider, str]:
        """The image provider for `model_name` (`offline/test-image`, `openai/gpt-image-1`, any
        injected one) and the bare model name."""
        provider_name, model = parse_model_name(model_name)
        found = self._images.get(provider_name)
        if found is None:
            if provider_name == TEST_PROVIDER:
                found = TestImageProvider()
            elif provider_name == "openai" or provider_name in self._settings.compatible_providers:
                from genvault.providers.openai import OpenAIProvider
                from genvault.providers.openai_images import OpenAIImageProvider

                chat, _ = self.resolve(model_name)
                if not isinstance(chat, OpenAIProvider):
                    raise InvalidRequest(f"provider {provider_name!r} does not generate images")
                found = OpenAIImageProvider(chat)
            else:
                raise InvalidRequest(
                    f"no image models for provider {provider_name!r}; use {TEST_PROVIDER}/{TEST_IMAGE_MODEL} "
                    "or openai/gpt-image-1"
                )
            self._images[provider_name] = found
        if isinstance(found, TestImageProvider) and model != TEST_IMAGE_MODEL:
            raise InvalidRequest(
                f"the offline provider has one image model, {TEST_PROVIDER}/{TEST_IMAGE_MODEL}; got {model_name!r}"
            )
        return found, model

    async def aclose(self) -> None:
        built, self._built = self._built, {}
        for provider in built.values():
            close: Any = getattr(provider, "aclose", None)
            if close is not None:
                await close()

    def _build(self, name: str, model_name: str) -> Provider:
        settings = self._settings
        compatible = settings.compatible_providers.get(name)
        if compatible is not None:
            api_key = None
            if compatible.api_key_env:
                api_key = self._key(compatible.api_key_env, model_name)
            provider: Provider = _openai_provider(
                name, api_key=api_key, base_url=compatible.base_url, http_client=self._http_client
            )
        elif name == TEST_PROVIDER:
            # The latest few requests only: a server's history must not grow with its traffic.
            provider = TestProvider(settings.test_model_tps, keep_calls=16)
        elif name == "openai":
            provider = _openai_provider(
                name,
                api_key=self._key("OPENAI_API_KEY", model_name),
                base_url=settings.openai_base_url or self._environ.get("OPENAI_BASE_URL") or None,
                http_client=self._http_client,
            )
        elif name == "anthropic":
            provider = _anthropic_provider(
                api_key=self._key("ANTHROPIC_API_KEY", model_name),
                base_url=settings.anthropic_base_url or self._environ.get("ANTHROPIC_BASE_URL") or None,
                http_client=self._http_client,
            )
        else:
            raise InvalidRequest(
                f"unknown provider {name!r} in model name {model_name!r}; known providers: "
                f"{', '.join(self.names)}. An OpenAI-compatible server can be added under its own name "
                "with GENVAULT_COMPATIBLE_PROVIDERS, e.g. "
                '\'{"ollama": {"base_url": "http://localhost:11434/v1"}}\''
            )
        logger.info("provider %s ready for %s", name, model_name)
        return provider

    def _key(self, variable: str, model_name: str) -> str:
        value = self._environ.get(variable, "").strip()
        if not value:
            raise InvalidRequest(f"{model_name} needs an API key: set the {variable} environment variable")
        return value


def _openai_provider(
    name: str, *, api_key: str | None, base_url: str | None, http_client: httpx.AsyncClient | None
) -> Provider:
    try:
        from genvault.providers.openai import OpenAIProvider
    except ImportError as exc:
        raise InvalidRequest(
            f"provider {name!r} needs the openai package: pip install 'genvault[openai]' ({exc})"
        ) from exc
    return OpenAIProvider(name, api_key=api_key, base_url=base_url, http_client=http_client)


def _anthropic_provider(*, api_key: str, base_url: str | None, http_client: httpx.AsyncClient | None) -> Provider:
    try:
        from genvault.providers.anthropic import AnthropicProvider
    except ImportError as exc:
        raise InvalidRequest(
            f"provider 'anthropic' needs the anthropic package: pip install 'genvault[anthropic]' ({exc})"
        ) from exc
    return AnthropicProvider(api_key=api_key, base_url=base_url, http_client=http_client)
