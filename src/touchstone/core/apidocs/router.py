"""Swagger UI (`/docs`) and ReDoc (`/redoc`) served from this package: no CDN, no inline code.

FastAPI's own pages load their scripts from a CDN and start Swagger UI with an inline
script, so on an intranet they are blank and under our page policy (`script-src 'self'`)
they would be blocked. These pages reference only the files vendored in `static/` (see its
README for versions, licences and how to update them) and start Swagger UI from a static
script that reads its configuration from `data-*` attributes, so they run under the same
Content-Security-Policy as every other page of the app.
"""

from __future__ import annotations

import hashlib
import html
import json
import secrets
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.openapi.docs import swagger_ui_default_parameters
from fastapi.responses import HTMLResponse, Response

from touchstone.core.errors import NotFound
from touchstone.core.headers import PAGE_CSP
from touchstone.core.routing import ApiRouter

STATIC = Path(__file__).with_name("static")
DOCS_PATH = "/docs"
REDOC_PATH = "/redoc"
OAUTH2_REDIRECT_PATH = "/docs/oauth2-redirect"
ASSETS_PATH = "/docs/assets"

router = ApiRouter(include_in_schema=False)


@dataclass(frozen=True)
class Asset:
    path: str
    """Relative to `static/`."""
    media_type: str


ASSETS = {
    "swagger-ui-bundle.js": Asset("swagger-ui/swagger-ui-bundle.js", "text/javascript"),
    "swagger-ui.css": Asset("swagger-ui/swagger-ui.css", "text/css"),
    "favicon-32x32.png": Asset("swagger-ui/favicon-32x32.png", "image/png"),
    "oauth2-redirect.js": Asset("swagger-ui/oauth2-redirect.js", "text/javascript"),
    "swagger-init.js": Asset("swagger-init.js", "text/javascript"),
    "redoc.standalone.js": Asset("redoc/redoc.standalone.js", "text/javascript"),
    "redoc-init.js": Asset("redoc-init.js", "text/javascript"),
    "redoc.css": Asset("redoc.css", "text/css"),
}
"""What `/docs/assets/{name}` serves: a fixed list, so no request names a file of its own."""


class AssetNotFound(NotFound):
    code, title = "asset_not_found", "No such documentation asset"


@cache
def _load(name: str) -> tuple[bytes, str]:
    """The file and its ETag, read once per process."""
    content = (STATIC / ASSETS[name].path).read_bytes()
    return content, f'"{hashlib.sha256(content).hexdigest()[:32]}"'


def _root(request: Request) -> str:
    """The mount prefix behind a proxy (`--root-path`), as FastAPI's own pages use it."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def _asset_url(request: Request, name: str) -> str:
    return f"{_root(request)}{ASSETS_PATH}/{name}"


def _page(title: str, head: str, body: str) -> HTMLResponse:
    return HTMLResponse(
        "<!doctype html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n{head}</head>\n<body>\n{body}</body>\n</html>\n",
        headers={"Cache-Control": "no-cache"},
    )


def swagger_config(request: Request) -> dict[str, Any]:
    """FastAPI's defaults and the app's `swagger_ui_parameters`, as `get_swagger_ui_html`
    would use them; the spec and OAuth2 redirect URLs are this app's."""
    root = _root(request)
    return {
        **swagger_ui_default_parameters,
        **(request.app.swagger_ui_parameters or {}),
        "url": f"{root}{request.app.openapi_url}",
        "oauth2RedirectUrl": f"{root}{OAUTH2_REDIRECT_PATH}",
        "validatorUrl": None,  # the default badge would call validator.swagger.io
    }


@router.get(DOCS_PATH)
async def swagger_ui(request: Request) -> HTMLResponse:
    config = html.escape(json.dumps(swagger_config(request)), quote=True)
    return _page(
        f"{request.app.title} - Swagger UI",
        f'<link rel="icon" type="image/png" href="{_asset_url(request, "favicon-32x32.png")}">\n'
        f'<link rel="stylesheet" href="{_asset_url(request, "swagger-ui.css")}">\n',
        f'<div id="swagger-ui" data-config="{config}"></div>\n'
        f'<script src="{_asset_url(request, "swagger-ui-bundle.js")}"></script>\n'
        f'<script src="{_asset_url(request, "swagger-init.js")}"></script>\n',
    )


@router.get(OAUTH2_REDIRECT_PATH)
async def swagger_ui_oauth2_redirect(request: Request) -> HTMLResponse:
    """Where an OAuth2 provider sends the browser back to Swagger UI's Authorize dialog."""
    return _page(
        "Swagger UI: OAuth2 redirect",
        "",
        f'<script src="{_asset_url(request, "oauth2-redirect.js")}"></script>\n',
    )


REDOC_STYLE_HASHES = (
    "'sha256-QMIg+bpjm3JdElJ388KYke01izlUW0UoNOeKjpMxdgc='",
    "'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='",
)
"""The two `<style>` elements ReDoc 2.5.4 adds as its script loads, before it knows the
nonce: perfect-scrollbar's fixed CSS, and an empty one (the browser test fails if a new
version adds another)."""


def redoc_csp(nonce: str) -> str:
    """The page policy, plus what ReDoc needs: its `<style>` elements (this response's nonce
    and the fixed ones above) and its search index in a worker it builds from a `blob:` URL
    of its own same-origin script. Scripts stay same-origin only."""
    styles = " ".join(("'self'", f"'nonce-{nonce}'", *REDOC_STYLE_HASHES))
    return PAGE_CSP.replace("style-src 'self';", f"style-src {styles}; worker-src blob:;")


@router.get(REDOC_PATH)
async def redoc(request: Request) -> HTMLResponse:
    """ReDoc styles itself with `<style>` elements (styled-components), allowed by a fresh
    nonce per response (`redoc_csp`). Its footer links Redocly's logo from their CDN: the
    policy blocks it (nothing leaves the machine) and ReDoc hides the broken image."""
    spec = html.escape(f"{_root(request)}{request.app.openapi_url}", quote=True)
    nonce = secrets.token_urlsafe(18)
    page = _page(
        f"{request.app.title} - ReDoc",
        f'<link rel="icon" type="image/png" href="{_asset_url(request, "favicon-32x32.png")}">\n'
        f'<link rel="stylesheet" href="{_asset_url(request, "redoc.css")}">\n',
        f'<div id="redoc" data-spec-url="{spec}" data-style-nonce="{nonce}"></div>\n'
        f'<script src="{_asset_url(request, "redoc.standalone.js")}"></script>\n'
        f'<script src="{_asset_url(request, "redoc-init.js")}"></script>\n',
    )
    page.headers["Content-Security-Policy"] = redoc_csp(nonce)
    return page


@router.get(f"{ASSETS_PATH}/{{name}}")
async def asset(name: str, request: Request) -> Response:
    """A vendored file; revalidated by ETag, so an upgrade is seen on the next load."""
    if name not in ASSETS:
        raise AssetNotFound()
    content, etag = _load(name)
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    media_type = ASSETS[name].media_type
    if media_type.startswith("text/"):
        media_type += "; charset=utf-8"
    return Response(content, media_type=media_type, headers=headers)
