"""Local filesystem backend: the default, one file per object under `storage_path`.

Writes go to a hidden temporary file in the target directory, are fsynced and then renamed
into place, so a reader never sees a partial object and a crash leaves at most a stray
`.part` file. All file I/O runs in worker threads, in large batches to limit thread hops.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import anyio
import anyio.to_thread

from touchstone.core.errors import NotFound
from touchstone.core.storage.base import (
    NO_SPACE,
    ByteRange,
    StorageFull,
    StoredObject,
    StoredStream,
    check_key,
    is_own_key,
    new_key,
    take_in,
)
from touchstone.core.storage.signing import UrlSigner
from touchstone.core.storage.sniff import SNIFF_BYTES, sniff_content_type

WRITE_BATCH_BYTES = 1024 * 1024
READ_CHUNK_BYTES = 256 * 1024


class LocalStorage:
    def __init__(
        self,
        root: Path,
        signer: UrlSigner,
        *,
        default_max_bytes: int,
        default_url_ttl: int,
    ) -> None:
        self.root = root.absolute()
        self.signer = signer
        self.default_max_bytes = default_max_bytes
        self.default_url_ttl = default_url_ttl

    def _path(self, org_id: uuid.UUID, key: str) -> Path:
        return self.root / check_key(org_id, key)

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
        target = self.root / key
        try:
            file, temporary = await anyio.to_thread.run_sync(_create_temporary, target)
        except OSError as exc:
            raise _full(exc) from exc
        try:
            batch = bytearray()
            async for chunk in intake.chunks:
                batch += chunk
                if len(batch) >= WRITE_BATCH_BYTES:
                    data, batch = batch, bytearray()
                    await anyio.to_thread.run_sync(file.write, data)
            await anyio.to_thread.run_sync(_commit, file, bytes(batch), temporary, target)
        except BaseException as exc:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(_discard, file, temporary)
            if isinstance(exc, OSError):
                raise _full(exc) from exc
            raise
        return intake.stored(key)

    async def open(
        self, org_id: uuid.UUID, key: str, *, byte_range: ByteRange | None = None
    ) -> StoredStream:
        path = self._path(org_id, key)
        try:
            opened = await anyio.to_thread.run_sync(_open_and_read, path, byte_range)
        except FileNotFoundError:
            raise NotFound("File not found") from None
        # Sniffed again from the same window as on upload, so no metadata file is needed.
        content_type = sniff_content_type(opened.head, complete=opened.size <= SNIFF_BYTES)
        return StoredStream(
            opened.size,
            content_type,
            opened.first,
            opened.last,
            byte_range is not None,
            _read(opened),
            opened.chunk if opened.file is None else None,
        )

    async def exists(self, org_id: uuid.UUID, key: str) -> bool:
        if not is_own_key(org_id, key):
            return False
        return await anyio.to_thread.run_sync((self.root / key).is_file)

    async def delete(self, org_id: uuid.UUID, key: str) -> None:
        path = self._path(org_id, key)
        await anyio.to_thread.run_sync(lambda: path.unlink(missing_ok=True))

    async def signed_url(
        self, org_id: uuid.UUID, key: str, *, expires_in: int | None = None
    ) -> str:
        return self.signer.url(check_key(org_id, key), expires_in or self.default_url_ttl)


def _create_temporary(target: Path) -> tuple[BinaryIO, Path]:
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.part")
    return temporary.open("xb"), temporary


def _commit(file: BinaryIO, tail: bytes, temporary: Path, target: Path) -> None:
    """Durable before visible: data fsynced, renamed, then the directory entry fsynced."""
    file.write(tail)
    file.flush()
    os.fsync(file.fileno())
    file.close()
    os.replace(temporary, target)
    directory = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _discard(file: BinaryIO, temporary: Path) -> None:
    with contextlib.suppress(OSError):  # closing flushes, and a full disk refuses that too
        file.close()
    temporary.unlink(missing_ok=True)


def _full(exc: OSError) -> Exception:
    """A full volume is the client's 507 (retry later); other I/O errors stay errors."""
    return (
        StorageFull("No space left for this file; try again later")
        if exc.errno in NO_SPACE
        else exc
    )


@dataclass(slots=True)
class _Opened:
    """An object opened in one worker-thread hop: its size, its sniffing window, and the
    first chunk of the requested bytes; `file` is left open only if more remain."""

    size: int
    head: bytes
    first: int
    last: int
    chunk: bytes
    file: BinaryIO | None


def _open_and_read(path: Path, byte_range: ByteRange | None) -> _Opened:
    """Open, sniff and read the first chunk together: a thread hop costs more than a small
    object's whole read, and most stored objects (photos, workbooks) fit in one chunk."""
    file = path.open("rb")
    try:
        size = os.fstat(file.fileno()).st_size
        head = file.read(SNIFF_BYTES)
        first, last = byte_range.resolve(size) if byte_range else (0, size - 1)
        file.seek(first)
        chunk = file.read(min(READ_CHUNK_BYTES, last - first + 1))
    except BaseException:
        file.close()
        raise
    if first + len(chunk) > last or not chunk:
        file.close()
        return _Opened(size, head, first, last, chunk, None)
    return _Opened(size, head, first, last, chunk, file)


async def _read(opened: _Opened) -> AsyncIterator[bytes]:
    file = opened.file
    try:
        if opened.chunk:
            yield opened.chunk
        remaining = opened.last - opened.first + 1 - len(opened.chunk)
        while file is not None and remaining > 0:
            data = await anyio.to_thread.run_sync(file.read, min(READ_CHUNK_BYTES, remaining))
            if not data:
                break
            remaining -= len(data)
            yield data
    finally:
        if file is not None:
            file.close()
