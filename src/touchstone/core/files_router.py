"""`GET /api/v1/files/{key}`: stored objects, by signed link or for the caller's own org.

Mounted outside the authenticated router because a valid signature is itself the credential
(a browser `<img>` or `<video>` cannot send a bearer token); the route that handed the link
out has checked the caller. Without a signature the caller must authenticate, the key must
be in its org, and the module that declared the key's kind (`core.storage.kinds`) must let
the caller read it: its permission and, for branch-bound objects, its branch. Anything else
is a 404, never a 403, so a key the caller may not read cannot even be confirmed to exist.
An invalid or expired signature is a 403: the link exists but no longer works.
"""

from __future__ import annotations

import functools
import re
import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import StreamingResponse

from touchstone.core.auth import Credential, Principal
from touchstone.core.config import Settings
from touchstone.core.deps import api_key_scheme, bearer_scheme, read_credential, tenant_entry
from touchstone.core.errors import Forbidden, NotFound
from touchstone.core.reads import Statements, read_for
from touchstone.core.routing import ApiRouter
from touchstone.core.storage import (
    FILES_PATH,
    ByteRange,
    StorageDep,
    StoredStream,
    UrlSigner,
    key_org,
    kind_of,
    served_inline,
)

_RANGE = re.compile(r"bytes=([0-9]{0,19})-([0-9]{0,19})")


def files_router() -> APIRouter:
    router = ApiRouter(prefix=FILES_PATH, tags=["files"])
    router.add_api_route(
        "/{key:path}",
        download_file,
        methods=["GET"],
        response_class=StreamingResponse,
        responses={
            200: {"description": "The whole object"},
            206: {"description": "The requested byte range"},
            403: {"description": "Invalid or expired signature"},
            404: {"description": "No such object in the caller's org"},
            416: {"description": "Range not satisfiable"},
        },
    )
    return router


async def download_file(
    request: Request,
    key: str,
    storage: StorageDep,
    bearer: Annotated[str | None, Depends(bearer_scheme)],
    api_key: Annotated[str | None, Depends(api_key_scheme)],
    expires: Annotated[int | None, Query(ge=0)] = None,
    sig: Annotated[str | None, Query(max_length=128)] = None,
    range_header: Annotated[str | None, Header(alias="Range")] = None,
) -> Response:
    """Stream an object. Send `Range: bytes=a-b` for part of it (video players need that)."""
    if expires is not None or sig is not None:
        org_id = key_org(key)
        settings: Settings = request.app.state.settings
        signer = _url_signer(settings.secret_key.get_secret_value())
        if expires is None or sig is None or not signer.verify(key, expires, sig):
            raise Forbidden("The download link is invalid or has expired")
    else:
        org_id = await _caller_org(request, await read_credential(bearer, api_key), key)
    stream = await storage.open(org_id, key, byte_range=parse_range(range_header))
    return _file_response(stream)


@functools.cache
def _url_signer(secret_key: str) -> UrlSigner:
    """One signer per secret: its HMAC key is derived once, not on every download."""
    return UrlSigner(secret_key)


async def _caller_org(request: Request, credential: Credential, key: str) -> uuid.UUID:
    """Authenticate and ask the owning module whether the caller may read `key`, in one
    round trip (`core.reads`): the kind's permission needs no database, and a kind with a
    `visible` query (branch-bound objects) runs it with the caller's entry. Nothing holds a
    database connection while the file streams."""
    kind = kind_of(key)
    read = read_for(request, tenant_entry(request, credential), None)

    def plan(principal: Principal) -> Statements:
        if kind is None or kind.visible is None:
            return []
        query, values = kind.visible(principal, key)
        return [(query.query, values)]

    found = await read.fetch(plan)
    principal = read.principal
    assert principal is not None  # fetch confirmed it
    if (
        kind is None
        or key_org(key) != principal.org_id
        or not principal.can(kind.permission)
        or (kind.visible is not None and not found[0])
    ):
        raise NotFound("File not found")
    return principal.org_id


def parse_range(value: str | None) -> ByteRange | None:
    """One `bytes=` range; other forms (several ranges, bad syntax) get the whole object."""
    match = _RANGE.fullmatch(value.strip()) if value else None
    if match is None or not (match[1] or match[2]):
        return None
    start = int(match[1]) if match[1] else None
    end = int(match[2]) if match[2] else None
    if start is not None and end is not None and end < start:
        return None
    return ByteRange(start, end)


def _file_response(stream: StoredStream) -> Response:
    media_type = stream.content_type
    if media_type.startswith("text/"):
        media_type += "; charset=utf-8"  # the sniffer only calls UTF-8 text "text"
    headers = {
        "Content-Length": str(stream.length),
        "Accept-Ranges": "bytes",
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "private, no-store",
        "Referrer-Policy": "no-referrer",
    }
    if not served_inline(stream.content_type):
        headers["Content-Disposition"] = "attachment"
    if stream.partial:
        headers["Content-Range"] = f"bytes {stream.first}-{stream.last}/{stream.size}"
    return stream.response(media_type=media_type, headers=headers)
