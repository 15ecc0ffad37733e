"""What every storage backend shares: the interface, generated keys and the upload intake.

Keys are `{org_id}/{kind}/{yyyy}/{mm}/{uuid4}`, generated here and never built from user input.
Whatever a caller hands back as a key is matched against that exact shape and its org, so
`..`, absolute paths, encoded separators and other tenants' keys all fail the same way: 404.
"""

from __future__ import annotations

import errno
import hashlib
import re
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from starlette.responses import Response, StreamingResponse

from touchstone.core.errors import AppError, NotFound, PayloadTooLarge, UnsupportedMediaType
from touchstone.core.storage.sniff import INLINE_TYPES, SNIFF_BYTES, sniff_content_type

FILES_PATH = "/api/v1/files"
"""Where `files_router` serves objects; local signed URLs point here."""

MAX_SIGNED_URL_SECONDS = 7 * 24 * 3600
"""S3 refuses presigned URLs valid for longer than a week; local URLs follow the same rule."""

_KIND = re.compile(r"[a-z0-9_-]{1,40}")
_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_KEY = re.compile(
    rf"(?P<org>{_UUID})/(?P<kind>[a-z0-9_-]{{1,40}})/[0-9]{{4}}/(?:0[1-9]|1[0-2])/{_UUID}"
)


class RangeNotSatisfiable(AppError):
    status, code, title = 416, "range_not_satisfiable", "Range not satisfiable"

    def __init__(self, size: int) -> None:
        super().__init__(
            f"The object has {size} bytes", headers={"Content-Range": f"bytes */{size}"}
        )


class StorageFull(AppError):
    """The volume (or quota) is full: a dependency problem, retried later, never a 500."""

    status, code, title = 507, "insufficient_storage", "Storage is full"


NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})


@dataclass(frozen=True, slots=True)
class StoredObject:
    """What a module keeps in its own table to refer to a stored file."""

    key: str
    size: int
    sha256: str
    content_type: str


@dataclass(frozen=True, slots=True)
class ByteRange:
    """One HTTP byte range: `start-end`, `start-` or the suffix `-end` (start is None)."""

    start: int | None
    end: int | None

    def resolve(self, size: int) -> tuple[int, int]:
        """First and last byte (inclusive) within an object of `size` bytes."""
        if self.start is None:
            if not self.end or size == 0:
                raise RangeNotSatisfiable(size)
            return max(0, size - self.end), size - 1
        if self.start >= size:
            raise RangeNotSatisfiable(size)
        last = size - 1 if self.end is None else min(self.end, size - 1)
        return self.start, last


@dataclass(frozen=True, slots=True)
class StoredStream:
    """An open object: its metadata and the requested bytes as a stream."""

    size: int
    """The whole object's size, whatever range was asked for."""
    content_type: str
    first: int
    last: int
    partial: bool
    chunks: AsyncIterator[bytes]
    whole: bytes | None = None
    """The requested bytes, when opening read them all already (a small object)."""

    @property
    def length(self) -> int:
        return self.last - self.first + 1

    def response(self, *, media_type: str, headers: dict[str, str]) -> Response:
        """The bytes as an HTTP response: 206 for a range, else 200. A small object read
        whole goes as one body: Starlette's `StreamingResponse` runs a task group per
        response to watch for the client leaving (uvicorn speaks ASGI 2.3), a fifth of a
        small download's CPU."""
        status_code = 206 if self.partial else 200
        if self.whole is not None:
            return Response(self.whole, status_code, headers, media_type)
        return StreamingResponse(self.chunks, status_code, headers, media_type)


class Storage(Protocol):
    """Object storage for tenant files. Every method takes the caller's org and checks keys."""

    default_max_bytes: int

    async def put(
        self,
        org_id: uuid.UUID,
        stream: AsyncIterable[bytes],
        *,
        kind: str,
        max_bytes: int | None = None,
        allowed_types: Collection[str] | None = None,
    ) -> StoredObject:
        """Stream into a new object; PayloadTooLarge / UnsupportedMediaType leave nothing."""
        ...

    async def open(
        self, org_id: uuid.UUID, key: str, *, byte_range: ByteRange | None = None
    ) -> StoredStream:
        """The object's bytes (all, or `byte_range`); NotFound for missing or foreign keys."""
        ...

    async def exists(self, org_id: uuid.UUID, key: str) -> bool: ...

    async def delete(self, org_id: uuid.UUID, key: str) -> None:
        """Idempotent for the org's own keys; NotFound for foreign or malformed ones."""
        ...

    async def signed_url(
        self, org_id: uuid.UUID, key: str, *, expires_in: int | None = None
    ) -> str:
        """A URL that downloads the object without other credentials until it expires."""
        ...


def validate_kind(kind: str) -> str:
    """Kinds are constants in code; a bad one is a programming error, not a client error."""
    if not _KIND.fullmatch(kind):
        raise ValueError(f"storage kind must match {_KIND.pattern!r}, got {kind!r}")
    return kind


def new_key(org_id: uuid.UUID, kind: str) -> str:
    moment = datetime.now(UTC)
    return f"{org_id}/{validate_kind(kind)}/{moment:%Y}/{moment:%m}/{uuid.uuid4()}"


def key_org(key: str) -> uuid.UUID:
    """The org a well-formed key belongs to; NotFound for anything else."""
    match = _KEY.fullmatch(key)
    if match is None:
        raise NotFound("File not found")
    return uuid.UUID(match["org"])


def key_kind(key: str) -> str:
    """The kind a well-formed key was stored under (`new_key`); NotFound for anything else."""
    match = _KEY.fullmatch(key)
    if match is None:
        raise NotFound("File not found")
    return match["kind"]


def check_key(org_id: uuid.UUID, key: str) -> str:
    """`key` if it is well formed and inside `org_id`; another org's key is simply not found."""
    if key_org(key) != org_id:
        raise NotFound("File not found")
    return key


def is_own_key(org_id: uuid.UUID, key: str) -> bool:
    match = _KEY.fullmatch(key)
    return match is not None and uuid.UUID(match["org"]) == org_id


def served_inline(content_type: str) -> bool:
    """Images, PDFs and media may render in the browser; anything else downloads."""
    return content_type in INLINE_TYPES


def signed_url_seconds(expires_in: int) -> int:
    if not 1 <= expires_in <= MAX_SIGNED_URL_SECONDS:
        raise ValueError(f"expires_in must be between 1 and {MAX_SIGNED_URL_SECONDS} seconds")
    return expires_in


class _Meter:
    """Counts and hashes bytes as they pass, refusing the one that crosses the limit."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self._sha256 = hashlib.sha256()

    def count(self, chunk: bytes) -> bytes:
        self.size += len(chunk)
        if self.size > self.max_bytes:
            raise PayloadTooLarge(f"The file is larger than {self.max_bytes} bytes")
        self._sha256.update(chunk)
        return chunk

    @property
    def sha256(self) -> str:
        return self._sha256.hexdigest()


@dataclass(frozen=True, slots=True)
class Intake:
    """An upload after its head was checked: the type is known before anything is written."""

    content_type: str
    chunks: AsyncIterator[bytes]
    meter: _Meter

    def stored(self, key: str) -> StoredObject:
        return StoredObject(key, self.meter.size, self.meter.sha256, self.content_type)


async def take_in(
    stream: AsyncIterable[bytes], *, max_bytes: int, allowed_types: Collection[str] | None
) -> Intake:
    """Read the head, sniff it and refuse a wrong type before the backend creates anything.

    The returned `chunks` replay the head and then the rest, enforcing `max_bytes` and
    hashing as they go; the size and digest are final once `chunks` is exhausted.
    """
    meter = _Meter(max_bytes)
    iterator = aiter(stream)
    head = bytearray()
    exhausted = False
    while len(head) < SNIFF_BYTES:
        try:
            head += meter.count(await anext(iterator))
        except StopAsyncIteration:
            exhausted = True
            break
    window = bytes(head[:SNIFF_BYTES])
    content_type = sniff_content_type(window, complete=exhausted and len(head) <= SNIFF_BYTES)
    if allowed_types is not None and content_type not in allowed_types:
        raise UnsupportedMediaType(
            f"Files of type {content_type} are not accepted here",
            extra={"accepted": sorted(allowed_types)},
        )

    async def chunks() -> AsyncIterator[bytes]:
        if head:
            yield bytes(head)
        if not exhausted:
            async for chunk in iterator:
                yield meter.count(chunk)

    return Intake(content_type, chunks(), meter)
