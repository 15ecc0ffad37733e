"""Object storage behind one interface: `Storage`, from `get_storage(settings)`.

Modules store a file with `store_upload(storage, org_id, upload, kind=...)` (or
`storage.put` for bytes they produce), keep the returned `StoredObject` in their own table,
and hand out `storage.signed_url(...)` or link to `files_router`'s streaming endpoint.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import AsyncIterator, Collection
from pathlib import Path
from typing import Annotated, Any

import anyio
from fastapi import Depends, Request, UploadFile

from touchstone.core.config import Settings
from touchstone.core.errors import PayloadTooLarge
from touchstone.core.storage.base import (
    FILES_PATH,
    ByteRange,
    RangeNotSatisfiable,
    Storage,
    StoredObject,
    StoredStream,
    check_key,
    key_kind,
    key_org,
    new_key,
    served_inline,
)
from touchstone.core.storage.kinds import FileKind, file_kind, kind_of
from touchstone.core.storage.local import LocalStorage
from touchstone.core.storage.s3 import S3Storage, s3_store
from touchstone.core.storage.signing import UrlSigner
from touchstone.core.storage.sniff import sniff_content_type

__all__ = [
    "FILES_PATH",
    "ByteRange",
    "FileKind",
    "LocalStorage",
    "RangeNotSatisfiable",
    "S3Storage",
    "Storage",
    "StorageDep",
    "StoredObject",
    "StoredStream",
    "UrlSigner",
    "check_key",
    "file_kind",
    "get_storage",
    "key_kind",
    "key_org",
    "kind_of",
    "new_key",
    "request_storage",
    "served_inline",
    "sniff_content_type",
    "store_upload",
]

UPLOAD_CHUNK_BYTES = 256 * 1024


def get_storage(settings: Settings) -> Storage:
    if settings.storage_backend == "s3":
        return S3Storage(
            s3_store(settings),
            default_max_bytes=settings.max_upload_bytes,
            default_url_ttl=settings.signed_url_ttl_seconds,
        )
    return LocalStorage(
        settings.storage_path,
        UrlSigner(settings.secret_key.get_secret_value()),
        default_max_bytes=settings.max_upload_bytes,
        default_url_ttl=settings.signed_url_ttl_seconds,
    )


def _free_bytes(root: Path) -> int:
    """Free space of the volume `root` is on (or will be, before the first file creates it)."""
    while not root.exists() and root != root.parent:
        root = root.parent
    return shutil.disk_usage(root).free


def request_storage(request: Request) -> Storage:
    """The app's storage, `app.state.storage` (set by `create_app`)."""
    storage: Storage = request.app.state.storage
    return storage


StorageDep = Annotated[Storage, Depends(request_storage)]


async def storage_check(request: Request) -> dict[str, Any]:
    """Ready only while the largest allowed upload still fits on a local volume (object
    stores report no free space: they are not probed)."""
    storage = request_storage(request)
    if not isinstance(storage, LocalStorage):
        return {"ok": True, "backend": "s3"}
    free = await anyio.to_thread.run_sync(_free_bytes, storage.root)
    return {"ok": free >= storage.default_max_bytes, "free_mib": free // 2**20}


async def store_upload(
    storage: Storage,
    org_id: uuid.UUID,
    upload: UploadFile | Request,
    *,
    kind: str,
    max_bytes: int | None = None,
    allowed_types: Collection[str] | None = None,
) -> StoredObject:
    """Store a multipart file or a raw request body, chunk by chunk.

    A declared size over the limit is refused before reading; the client's content type and
    file name are ignored (the type is sniffed, the key generated).
    """
    limit = max_bytes or storage.default_max_bytes
    stream: AsyncIterator[bytes]
    if isinstance(upload, Request):
        declared = upload.headers.get("content-length", "")
        declared_size = int(declared) if declared.isdigit() else None
        stream = upload.stream()
    else:
        declared_size = upload.size
        stream = _upload_chunks(upload)
    if declared_size is not None and declared_size > limit:
        raise PayloadTooLarge(f"The file is larger than {limit} bytes")
    return await storage.put(
        org_id, stream, kind=kind, max_bytes=limit, allowed_types=allowed_types
    )


async def _upload_chunks(upload: UploadFile) -> AsyncIterator[bytes]:
    await upload.seek(0)
    while chunk := await upload.read(UPLOAD_CHUNK_BYTES):
        yield chunk
