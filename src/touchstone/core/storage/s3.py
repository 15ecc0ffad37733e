"""S3-compatible backend on obstore (Rust `object_store`).

obstore rather than aioboto3: it streams an async iterator straight into a multipart upload,
presigns URLs, and is one small wheel with typed stubs, where aioboto3 pulls in botocore and
aiobotocore pinned to each other. A failed upload (too large, cancelled) aborts the multipart
upload inside obstore; we delete the key as well in case the backend completed it.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterable, Collection
from contextlib import suppress
from datetime import timedelta
from typing import TYPE_CHECKING

import anyio
import obstore
from obstore.exceptions import BaseError, NotFoundError
from obstore.store import S3Store

from touchstone.core.config import Settings
from touchstone.core.errors import NotFound
from touchstone.core.storage.base import (
    ByteRange,
    StoredObject,
    StoredStream,
    check_key,
    is_own_key,
    new_key,
    served_inline,
    signed_url_seconds,
    take_in,
)
from touchstone.core.storage.sniff import OCTET_STREAM

if TYPE_CHECKING:
    from obstore import Attributes
    from obstore.store import ClientConfig, S3Config

PART_BYTES = 5 * 1024 * 1024
"""S3's minimum multipart part size; also the most one upload buffers per concurrent part."""
READ_CHUNK_BYTES = 256 * 1024
_MISSING = (FileNotFoundError, NotFoundError)


def s3_store(settings: Settings) -> S3Store:
    if not settings.s3_bucket:
        raise ValueError("STORAGE_BACKEND=s3 needs S3_BUCKET")
    config: S3Config = {"region": settings.s3_region}
    client: ClientConfig = {"connect_timeout": timedelta(seconds=5)}
    if settings.s3_endpoint_url:
        config["endpoint"] = settings.s3_endpoint_url
        client["allow_http"] = settings.s3_endpoint_url.startswith("http://")
    if settings.s3_access_key_id:
        config["access_key_id"] = settings.s3_access_key_id
    if settings.s3_secret_access_key:
        config["secret_access_key"] = settings.s3_secret_access_key.get_secret_value()
    return S3Store(
        settings.s3_bucket,
        config=config,
        client_options=client,
        retry_config={"max_retries": 3, "retry_timeout": timedelta(seconds=30)},
    )


class S3Storage:
    def __init__(self, store: S3Store, *, default_max_bytes: int, default_url_ttl: int) -> None:
        self.store = store
        self.default_max_bytes = default_max_bytes
        self.default_url_ttl = default_url_ttl

    async def put(
        self,
        org_id: uuid.UUID,
        stream: AsyncIterable[bytes],
        *,
        kind: str,
        max_bytes: int | None = None,
        allowed_types: Collection[str] | None = None,
    ) -> StoredObject:
        key = new_key(org_id, kind)
        intake = await take_in(
            stream, max_bytes=max_bytes or self.default_max_bytes, allowed_types=allowed_types
        )
        attributes: Attributes = {"Content-Type": intake.content_type}
        if not served_inline(intake.content_type):
            attributes["Content-Disposition"] = "attachment"
        try:
            await obstore.put_async(
                self.store,
                key,
                intake.chunks,
                attributes=attributes,
                chunk_size=PART_BYTES,
                max_concurrency=4,
            )
        except BaseException:
            with anyio.CancelScope(shield=True), suppress(BaseError, OSError):
                await obstore.delete_async(self.store, key)
            raise
        return intake.stored(key)

    async def open(
        self, org_id: uuid.UUID, key: str, *, byte_range: ByteRange | None = None
    ) -> StoredStream:
        check_key(org_id, key)
        try:
            if byte_range is None:
                result = await obstore.get_async(self.store, key)
                size = result.meta["size"]
                first, last = 0, size - 1
            else:
                size = (await obstore.head_async(self.store, key))["size"]
                first, last = byte_range.resolve(size)
                result = await obstore.get_async(
                    self.store, key, options={"range": (first, last + 1)}
                )
        except _MISSING:
            raise NotFound("File not found") from None
        content_type = str(result.attributes.get("Content-Type", OCTET_STREAM))
        chunks = result.stream(min_chunk_size=READ_CHUNK_BYTES)
        return StoredStream(size, content_type, first, last, byte_range is not None, chunks)

    async def exists(self, org_id: uuid.UUID, key: str) -> bool:
        if not is_own_key(org_id, key):
            return False
        try:
            await obstore.head_async(self.store, key)
        except _MISSING:
            return False
        return True

    async def delete(self, org_id: uuid.UUID, key: str) -> None:
        await obstore.delete_async(self.store, check_key(org_id, key))

    async def signed_url(
        self, org_id: uuid.UUID, key: str, *, expires_in: int | None = None
    ) -> str:
        seconds = signed_url_seconds(expires_in or self.default_url_ttl)
        return await obstore.sign_async(
            self.store, "GET", check_key(org_id, key), timedelta(seconds=seconds)
        )
