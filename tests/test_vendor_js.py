"""The vendored browser libraries: what scripts/vendor-js pins is what is checked in, each with its
license, served from the package with a JavaScript type (the pages load nothing from elsewhere)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from genvault.server import create_app

ROOT = Path(__file__).resolve().parent.parent
VENDOR = ROOT / "src" / "genvault" / "server" / "static" / "vendor"
SCRIPT = ROOT / "scripts" / "vendor-js"


def pinned() -> dict[str, str]:
    text = SCRIPT.read_text()
    pins = dict(re.findall(r"^([A-Z_]+)=([0-9][\w.-]*)", text, flags=re.MULTILINE))
    return {
        "markdown-it": pins["MARKDOWN_IT"],
        "dompurify": pins["DOMPURIFY"],
        "@highlightjs/cdn-assets": pins["HIGHLIGHT"],
    }


def test_the_checked_in_versions_are_the_ones_the_script_pins_each_with_its_license() -> None:
    lines = [line.split(" ") for line in (VENDOR / "VERSIONS").read_text().splitlines()]
    assert {name: version for name, version, _integrity in lines} == pinned()
    assert all(integrity.startswith("sha512-") for _name, _version, integrity in lines)
    for folder in ("markdown-it", "dompurify", "highlight"):
        assert (VENDOR / folder / "LICENSE").stat().st_size > 500, folder
    assert "markdown-it" in (VENDOR / "markdown-it" / "markdown-it.min.js").read_text()[:200]


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
async def test_the_libraries_are_served_from_the_package_as_javascript(vault_factory: Any) -> None:
    app = create_app(vault=await vault_factory())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
        for path in (
            "/static/vendor/markdown-it/markdown-it.min.js",
            "/static/vendor/dompurify/purify.es.js",
            "/static/vendor/highlight/highlight.min.js",
            "/static/js/markdown.js",
        ):
            response = await http.get(path)
            assert response.status_code == 200, path
            assert "javascript" in response.headers["content-type"], path
        page = await http.get("/chat/a-new-chat")
    assert page.status_code == 200
    # Every script and stylesheet of the chat page is this server's.
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sources
    assert all(source.startswith("/") and not source.startswith("//") for source in sources), sources
