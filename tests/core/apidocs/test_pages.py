"""The docs pages reference only this app's own files, and every one of them is served."""

from __future__ import annotations

import hashlib
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest

from touchstone.core.apidocs.router import ASSETS, STATIC, redoc_csp
from touchstone.core.config import Settings
from touchstone.core.db import Database
from touchstone.core.headers import PAGE_CSP
from touchstone.main import create_app

PAGES = ("/docs", "/redoc", "/docs/oauth2-redirect")
CONTENT_TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}


class References(HTMLParser):
    """Every URL a page makes the browser load, and whether it has inline code."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline_scripts = 0
        self.inline_styles = 0
        self.config: str | None = None
        self.nonce: str | None = None
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "script":
            self._in_script = "src" not in found
            if found.get("src"):
                self.urls.append(str(found["src"]))
        if tag == "link" and found.get("href"):
            self.urls.append(str(found["href"]))
        if found.get("data-spec-url"):
            self.urls.append(str(found["data-spec-url"]))
        if tag in ("img", "iframe") and found.get("src"):
            self.urls.append(str(found["src"]))
        if tag == "style":
            self.inline_styles += 1
        if "style" in found or any(name.startswith("on") for name in found):
            self.inline_styles += 1
        if found.get("data-config"):
            self.config = found["data-config"]
        if found.get("data-style-nonce"):
            self.nonce = found["data-style-nonce"]

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline_scripts += 1


def parse(html: str) -> References:
    references = References()
    references.feed(html)
    return references


@pytest.mark.parametrize("page", PAGES)
async def test_a_page_loads_only_local_assets_and_has_no_inline_code(
    client: httpx.AsyncClient, page: str
) -> None:
    response = await client.get(page)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    found = parse(response.text)
    policy = PAGE_CSP if page != "/redoc" else redoc_csp(str(found.nonce))
    assert response.headers["content-security-policy"] == policy
    assert (found.inline_scripts, found.inline_styles) == (0, 0)
    assert found.urls, "a docs page without a script loads nothing"
    for url in found.urls:
        assert url.startswith("/"), f"{page} loads {url} from elsewhere"
        assert not url.startswith("//")
    assert not re.search(r"https?://", response.text), "no absolute URL at all"


async def test_every_asset_a_page_references_is_served_with_its_type(
    client: httpx.AsyncClient,
) -> None:
    served: set[str] = set()
    for page in PAGES:
        for url in parse((await client.get(page)).text).urls:
            response = await client.get(url)
            assert response.status_code == 200, url
            if url == "/openapi.json":
                assert response.json()["paths"]
                continue
            expected = CONTENT_TYPES[Path(url).suffix]
            assert response.headers["content-type"].split(";")[0] == expected, url
            assert response.headers["x-content-type-options"] == "nosniff"
            served.add(url.rsplit("/", 1)[1])
    assert served == set(ASSETS), "every listed asset is used by a page, and only those"


async def test_redoc_styles_need_a_fresh_nonce_and_scripts_stay_same_origin(
    client: httpx.AsyncClient,
) -> None:
    pages = [await client.get("/redoc") for _ in range(2)]
    nonces = [parse(page.text).nonce for page in pages]
    assert None not in nonces
    assert nonces[0] != nonces[1]
    policy = pages[0].headers["content-security-policy"]
    assert f"style-src 'self' 'nonce-{nonces[0]}' 'sha256-" in policy
    assert "script-src 'self';" in policy
    assert "unsafe" not in policy
    assert policy != PAGE_CSP


async def test_an_asset_is_revalidated_by_etag_and_unknown_names_are_404(
    client: httpx.AsyncClient,
) -> None:
    first = await client.get("/docs/assets/swagger-ui-bundle.js")
    again = await client.get(
        "/docs/assets/swagger-ui-bundle.js", headers={"If-None-Match": first.headers["etag"]}
    )
    assert (again.status_code, again.content) == (304, b"")
    for name in ("LICENSE", "..%2F..%2Frouter.py", "swagger-ui-bundle.js.map", "redoc"):
        response = await client.get(f"/docs/assets/{name}")
        assert response.status_code == 404, name


async def test_swagger_gets_fastapi_defaults_and_our_urls(client: httpx.AsyncClient) -> None:
    config = parse((await client.get("/docs")).text).config
    assert config is not None
    assert json.loads(config) == {
        "dom_id": "#swagger-ui",
        "layout": "BaseLayout",
        "deepLinking": True,
        "showExtensions": True,
        "showCommonExtensions": True,
        "url": "/openapi.json",
        "oauth2RedirectUrl": "/docs/oauth2-redirect",
        "validatorUrl": None,
    }


async def test_pages_follow_the_proxy_root_path(settings: Settings, database: Database) -> None:
    transport = httpx.ASGITransport(app=create_app(settings, database=database), root_path="/x")
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        found = parse((await client.get("/docs")).text)
    assert all(url.startswith("/x/") for url in found.urls), found.urls
    assert json.loads(found.config or "{}")["url"] == "/x/openapi.json"


async def test_hidden_docs_serve_nothing(settings: Settings, database: Database) -> None:
    """DOCS_ENABLED=false, which is production's default (tests/core/test_config.py): no page,
    no asset, no API description. (A production-configured app is not served here: it would
    cache the suite's loggers on their first use.)"""
    for enabled, status in ((False, 404), (True, 200)):
        configured = settings.model_copy(update={"docs_enabled": enabled})
        transport = httpx.ASGITransport(app=create_app(configured, database=database))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            for path in (*PAGES, "/docs/assets/swagger-ui-bundle.js", "/openapi.json"):
                assert (await client.get(path)).status_code == status, (enabled, path)


def test_vendored_files_match_their_manifest() -> None:
    """The versions the README of `static/` names are the files shipped (and their licences
    ship with them)."""
    manifest = json.loads((STATIC / "VENDORED.json").read_text())
    for package in manifest["packages"]:
        for name, digest in package["files"].items():
            content = (STATIC / package["directory"] / name).read_bytes()
            assert hashlib.sha256(content).hexdigest() == digest, name
        assert "LICENSE" in package["files"]
