"""Object storage: generated tenant keys, streaming limits, sniffed types, signed downloads.

The local backend runs in a tmp dir behind the real app (files router, auth, two tenants);
the S3 backend runs against moto started here as a real HTTP server.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import re
import socket
import time
import uuid
import zipfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import obstore
import pytest
from fastapi import APIRouter, FastAPI, Request, UploadFile
from hypothesis import assume, given
from hypothesis import strategies as st
from moto.server import ThreadedMotoServer
from pydantic import SecretStr
from starlette.types import Message

from tests.conftest import Tenant, assert_problem
from touchstone.core.config import Settings
from touchstone.core.db import Database
from touchstone.core.deps import CurrentPrincipal
from touchstone.core.errors import NotFound, PayloadTooLarge, UnsupportedMediaType
from touchstone.core.files_router import files_router, parse_range
from touchstone.core.storage import (
    ByteRange,
    LocalStorage,
    RangeNotSatisfiable,
    S3Storage,
    Storage,
    StorageDep,
    StoredObject,
    UrlSigner,
    check_key,
    file_kind,
    get_storage,
    key_org,
    new_key,
    sniff_content_type,
    store_upload,
)
from touchstone.core.storage import local as local_storage
from touchstone.core.storage import sniff as mime
from touchstone.core.storage.base import StorageFull
from touchstone.core.storage.local import READ_CHUNK_BYTES
from touchstone.main import create_app

FILES = "/api/v1/files"
file_kind("evidence", permission="org:read")  # what a module declares for its kinds
UPLOAD_LIMIT = 64 * 1024
KEY_SHAPE = re.compile(
    r"(?P<org>[0-9a-f-]{36})/evidence/(?P<y>\d{4})/(?P<m>\d{2})/(?P<id>[0-9a-f-]{36})"
)


def png(size: int) -> bytes:
    return b"\x89PNG\r\n\x1a\n" + os.urandom(size - 8)


def zip_with(*names: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in names:
            archive.writestr(name, "<xml/>" * 50)
    return buffer.getvalue()


async def chunks_of(data: bytes, size: int = 3000) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def read_all(storage: Storage, org_id: uuid.UUID, key: str) -> bytes:
    stream = await storage.open(org_id, key)
    return b"".join([chunk async for chunk in stream.chunks])


def files_in(root: Path) -> list[Path]:
    return [path for path in root.rglob("*") if path.is_file()] if root.exists() else []


# --- the local backend behind the app ---------------------------------------------------


@pytest.fixture
def storage_settings(settings: Settings, tmp_path: Path) -> Settings:
    return settings.model_copy(update={"storage_dir": tmp_path / "storage"})


@pytest.fixture
def storage(storage_settings: Settings) -> LocalStorage:
    storage = get_storage(storage_settings)
    assert isinstance(storage, LocalStorage)
    return storage


def _upload_routes() -> APIRouter:
    """Routes like the ones modules will write: store_upload with a kind, limit and types."""
    router = APIRouter(prefix="/test")

    @router.post("/images", status_code=201)
    async def upload_image(
        file: UploadFile, principal: CurrentPrincipal, storage: StorageDep
    ) -> dict[str, Any]:
        stored = await store_upload(
            storage,
            principal.org_id,
            file,
            kind="evidence",
            max_bytes=UPLOAD_LIMIT,
            allowed_types={mime.PNG, mime.JPEG},
        )
        return _as_json(stored)

    @router.put("/raw", status_code=201)
    async def upload_raw(
        request: Request, principal: CurrentPrincipal, storage: StorageDep
    ) -> dict[str, Any]:
        stored = await store_upload(
            storage, principal.org_id, request, kind="evidence", max_bytes=UPLOAD_LIMIT
        )
        return _as_json(stored)

    return router


def _as_json(stored: StoredObject) -> dict[str, Any]:
    return {
        "key": stored.key,
        "size": stored.size,
        "sha256": stored.sha256,
        "content_type": stored.content_type,
    }


@pytest.fixture
async def files_client(
    storage_settings: Settings, database: Database, storage: LocalStorage
) -> AsyncIterator[httpx.AsyncClient]:
    app: FastAPI = create_app(storage_settings, database=database)
    app.state.storage = storage
    app.include_router(files_router())
    app.include_router(_upload_routes())
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


async def test_round_trip_hashes_sizes_and_places_the_file(storage: LocalStorage) -> None:
    org_id = uuid.uuid4()
    data = png(50_000)
    stored = await storage.put(org_id, chunks_of(data), kind="evidence")

    assert stored.size == len(data)
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert stored.content_type == mime.PNG
    match = KEY_SHAPE.fullmatch(stored.key)
    assert match is not None, stored.key
    assert match["org"] == str(org_id)
    assert uuid.UUID(match["id"]).version == 4
    assert await read_all(storage, org_id, stored.key) == data
    assert await storage.exists(org_id, stored.key)
    assert files_in(storage.root) == [storage.root / stored.key], "no temporary file left"

    await storage.delete(org_id, stored.key)
    assert not await storage.exists(org_id, stored.key)
    await storage.delete(org_id, stored.key)  # idempotent
    with pytest.raises(NotFound):
        await storage.open(org_id, stored.key)


async def test_empty_and_tiny_objects_round_trip(storage: LocalStorage) -> None:
    org_id = uuid.uuid4()
    for data in (b"", b"x"):
        stored = await storage.put(org_id, chunks_of(data), kind="evidence")
        stream = await storage.open(org_id, stored.key)
        assert (stored.size, stream.size, stream.length) == (len(data), len(data), len(data))
        assert await read_all(storage, org_id, stored.key) == data


async def test_kind_is_a_code_constant(storage: LocalStorage) -> None:
    for kind in ("../x", "Evidence", "a/b", "", "x" * 41, "evidence\n"):
        with pytest.raises(ValueError, match="storage kind"):
            await storage.put(uuid.uuid4(), chunks_of(b"data"), kind=kind)
    assert files_in(storage.root) == []


async def test_oversized_stream_is_aborted_and_leaves_nothing(storage: LocalStorage) -> None:
    # Larger than the sniffing window, so the temporary file exists when the limit trips.
    data = png(200_000)
    with pytest.raises(PayloadTooLarge):
        await storage.put(uuid.uuid4(), chunks_of(data), kind="evidence", max_bytes=100_000)
    assert files_in(storage.root) == []


async def test_disallowed_type_is_refused_before_writing(storage: LocalStorage) -> None:
    with pytest.raises(UnsupportedMediaType) as refused:
        await storage.put(
            uuid.uuid4(), chunks_of(b"%PDF-1.7\n" * 10), kind="evidence", allowed_types={"x/y"}
        )
    assert refused.value.status == 415
    assert files_in(storage.root) == []


async def test_upload_route_sniffs_and_ignores_the_client_type(
    files_client: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    data = png(10_000)
    response = await files_client.post(
        "/test/images",
        headers=tenant_a.headers,
        files={"file": ("../../report.pdf", data, "application/pdf")},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["content_type"] == mime.PNG
    assert body["sha256"] == hashlib.sha256(data).hexdigest()
    assert body["key"].startswith(f"{tenant_a.org_id}/evidence/")
    assert "report" not in body["key"], "the client's file name never reaches the key"


async def test_upload_route_refuses_a_lying_type_with_415(
    files_client: httpx.AsyncClient, tenant_a: Tenant, storage: LocalStorage
) -> None:
    response = await files_client.post(
        "/test/images",
        headers=tenant_a.headers,
        files={"file": ("photo.png", b"<html><script>alert(1)</script></html>", "image/png")},
    )
    body = assert_problem(response, 415, "unsupported_media_type")
    assert body["accepted"] == [mime.JPEG, mime.PNG]
    assert files_in(storage.root) == []


async def test_upload_route_refuses_oversized_files_with_413(
    files_client: httpx.AsyncClient, tenant_a: Tenant, storage: LocalStorage
) -> None:
    too_big = png(UPLOAD_LIMIT + 1)
    declared = await files_client.post(
        "/test/images", headers=tenant_a.headers, files={"file": ("a.png", too_big, "image/png")}
    )
    assert_problem(declared, 413, "payload_too_large")

    # Chunked, so no Content-Length: the limit trips while streaming.
    streamed = await files_client.put(
        "/test/raw", headers=tenant_a.headers, content=chunks_of(too_big, 8192)
    )
    assert_problem(streamed, 413, "payload_too_large")
    assert files_in(storage.root) == []


async def test_a_declared_size_over_the_limit_is_refused_before_reading(
    storage: LocalStorage,
) -> None:
    async def receive() -> Message:
        raise AssertionError("the body was read")

    declared = [(b"content-length", str(UPLOAD_LIMIT + 1).encode())]
    request = Request({"type": "http", "headers": declared}, receive)
    with pytest.raises(PayloadTooLarge):
        await store_upload(storage, uuid.uuid4(), request, kind="evidence", max_bytes=UPLOAD_LIMIT)
    assert files_in(storage.root) == []


async def test_raw_body_upload_streams_into_storage(
    files_client: httpx.AsyncClient, tenant_a: Tenant, storage: LocalStorage
) -> None:
    csv = b"date,amount,balance\n2024-01-01,10.00,110.00\n2024-01-02,-5.00,105.00\n"
    response = await files_client.put(
        "/test/raw",
        headers=tenant_a.headers | {"Content-Type": "image/png"},
        content=chunks_of(csv, 7),
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["content_type"], body["size"]) == (mime.CSV, len(csv))
    assert await read_all(storage, tenant_a.org_id, body["key"]) == csv


async def test_signed_url_downloads_without_auth(
    files_client: httpx.AsyncClient, storage: LocalStorage
) -> None:
    org_id = uuid.uuid4()
    text = "A naïve café, with ünïcode.\nAnd a second line\n".encode() * 10
    stored = await storage.put(org_id, chunks_of(text), kind="evidence")
    url = await storage.signed_url(org_id, stored.key, expires_in=60)
    assert url.startswith(f"{FILES}/{stored.key}?")

    response = await files_client.get(url)
    assert response.status_code == 200, response.text
    assert response.content == text
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.headers["content-length"] == str(len(text))
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["content-disposition"] == "attachment"
    assert response.headers["accept-ranges"] == "bytes"
    assert response.headers["cache-control"] == "private, no-store"
    assert response.headers["referrer-policy"] == "no-referrer"

    image = await storage.put(org_id, chunks_of(png(1000)), kind="evidence")
    shown = await files_client.get(await storage.signed_url(org_id, image.key))
    assert shown.headers["content-type"] == mime.PNG
    assert "content-disposition" not in shown.headers, "images may render inline"


async def test_bad_or_expired_signatures_are_403(
    files_client: httpx.AsyncClient, storage: LocalStorage, storage_settings: Settings
) -> None:
    org_id = uuid.uuid4()
    stored = await storage.put(org_id, chunks_of(b"secret statement"), kind="evidence")
    other = await storage.put(org_id, chunks_of(b"other statement"), kind="evidence")
    query = parse_qs(urlsplit(await storage.signed_url(org_id, stored.key)).query)
    expires, sig = query["expires"][0], query["sig"][0]
    flipped = sig[:-1] + ("0" if sig[-1] != "0" else "1")

    attempts = {
        "tampered signature": f"{FILES}/{stored.key}?expires={expires}&sig={flipped}",
        "later expiry": f"{FILES}/{stored.key}?expires={int(expires) + 3600}&sig={sig}",
        "signature of another key": f"{FILES}/{other.key}?expires={expires}&sig={sig}",
        "signature without expiry": f"{FILES}/{stored.key}?sig={sig}",
        "expiry without signature": f"{FILES}/{stored.key}?expires={expires}",
        "non-ASCII signature": f"{FILES}/{stored.key}?expires={expires}&sig=%C3%A9{sig[2:]}",
    }
    an_hour_ago = UrlSigner(
        storage_settings.secret_key.get_secret_value(), clock=lambda: time.time() - 3600
    )
    attempts["expired"] = an_hour_ago.url(stored.key, 60)
    attempts["other secret"] = UrlSigner("another-secret-0123456789abcdef0123").url(stored.key, 60)
    for name, url in attempts.items():
        response = await files_client.get(url)
        body = assert_problem(response, 403, "forbidden")
        assert b"statement" not in response.content, name
        assert "expired" in body["detail"]


async def test_authenticated_download_is_limited_to_the_own_org(
    files_client: httpx.AsyncClient, storage: LocalStorage, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    data = b"%PDF-1.7\n" + os.urandom(5000)
    stored = await storage.put(tenant_a.org_id, chunks_of(data), kind="evidence")

    own = await files_client.get(f"{FILES}/{stored.key}", headers=tenant_a.headers)
    assert own.status_code == 200, own.text
    assert own.content == data
    assert own.headers["content-type"] == mime.PDF

    foreign = await files_client.get(f"{FILES}/{stored.key}", headers=tenant_b.headers)
    assert_problem(foreign, 404, "not_found")
    anonymous = await files_client.get(f"{FILES}/{stored.key}")
    assert_problem(anonymous, 401, "unauthorized")
    missing = new_key(tenant_a.org_id, "evidence")
    assert_problem(
        await files_client.get(f"{FILES}/{missing}", headers=tenant_a.headers), 404, "not_found"
    )
    nobodys = await storage.put(tenant_a.org_id, chunks_of(data), kind="undeclared")
    path = f"{FILES}/{nobodys.key}"
    assert_problem(await files_client.get(path, headers=tenant_a.headers), 404, "not_found")


async def test_another_orgs_key_is_not_found_in_every_operation(
    storage: LocalStorage,
) -> None:
    owner, intruder = uuid.uuid4(), uuid.uuid4()
    stored = await storage.put(owner, chunks_of(b"private"), kind="evidence")
    with pytest.raises(NotFound):
        await storage.open(intruder, stored.key)
    with pytest.raises(NotFound):
        await storage.delete(intruder, stored.key)
    with pytest.raises(NotFound):
        await storage.signed_url(intruder, stored.key)
    assert not await storage.exists(intruder, stored.key)
    assert await read_all(storage, owner, stored.key) == b"private", "still there"


def _traversal_keys(org_id: uuid.UUID) -> list[str]:
    good = new_key(org_id, "evidence")
    return [
        "../x",
        "../../etc/passwd",
        "/etc/passwd",
        f"/{good}",
        f"{good}/",
        f"{good}/../../../../secret.txt",
        f"{org_id}/evidence/2024/01/../../../secret.txt",
        f"{org_id}/../{good}",
        "%2e%2e/secret.txt",
        good.replace("/", "\\"),
        good.upper(),
        good + "\n",
        good.replace("/", "//", 1),
        "",
    ]


async def test_malformed_and_traversal_keys_are_not_found(
    storage: LocalStorage, tmp_path: Path
) -> None:
    org_id = uuid.uuid4()
    (tmp_path / "secret.txt").write_text("outside the storage root")
    for key in _traversal_keys(org_id):
        with pytest.raises(NotFound):
            await storage.open(org_id, key)
        with pytest.raises(NotFound):
            await storage.delete(org_id, key)
        assert not await storage.exists(org_id, key)
    assert (tmp_path / "secret.txt").exists()


async def test_traversal_through_the_endpoint_is_not_found(
    files_client: httpx.AsyncClient, tenant_a: Tenant, tmp_path: Path
) -> None:
    (tmp_path / "secret.txt").write_text("outside the storage root")
    org = tenant_a.org_id
    paths = [
        f"{FILES}/%2e%2e/secret.txt",
        f"{FILES}/%2e%2e%2fsecret.txt",
        f"{FILES}/{org}/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/secret.txt",
        f"{FILES}//etc/passwd",
        f"{FILES}/%2fetc%2fpasswd",
        f"{FILES}/..%5csecret.txt",
    ]
    for path in paths:
        for headers, query in ((tenant_a.headers, ""), ({}, "?expires=9999999999&sig=00")):
            response = await files_client.get(path + query, headers=headers)
            assert_problem(response, 404, "not_found")
            assert "outside the storage root" not in response.text


async def test_range_requests(files_client: httpx.AsyncClient, storage: LocalStorage) -> None:
    org_id = uuid.uuid4()
    data = bytes(range(256)) * 100
    stored = await storage.put(org_id, chunks_of(data), kind="evidence")
    url = await storage.signed_url(org_id, stored.key)

    part = await files_client.get(url, headers={"Range": "bytes=10-19"})
    assert part.status_code == 206
    assert part.content == data[10:20]
    assert part.headers["content-range"] == f"bytes 10-19/{len(data)}"
    assert part.headers["content-length"] == "10"

    tail = await files_client.get(url, headers={"Range": "bytes=-5"})
    assert (tail.status_code, tail.content) == (206, data[-5:])
    overlong = await files_client.get(url, headers={"Range": f"bytes=25000-{10**9}"})
    assert (overlong.status_code, overlong.content) == (206, data[25000:])

    whole = await files_client.get(url, headers={"Range": "bytes=0-1,5-6"})
    assert (whole.status_code, whole.content) == (200, data), "several ranges: whole object"

    beyond = await files_client.get(url, headers={"Range": f"bytes={len(data)}-"})
    assert_problem(beyond, 416, "range_not_satisfiable")
    assert beyond.headers["content-range"] == f"bytes */{len(data)}"


async def test_objects_over_one_read_chunk_come_whole_and_in_ranges(
    files_client: httpx.AsyncClient, storage: LocalStorage
) -> None:
    """The first chunk is read with the open; the rest follow, ranges across chunk edges
    included, and an empty object is empty."""
    org_id = uuid.uuid4()
    data = bytes(range(251)) * (READ_CHUNK_BYTES * 2 // 251 + 7)
    stored = await storage.put(org_id, chunks_of(data), kind="evidence")
    url = await storage.signed_url(org_id, stored.key)
    whole = await files_client.get(url)
    assert (whole.status_code, whole.content) == (200, data)
    first, last = READ_CHUNK_BYTES - 3, 2 * READ_CHUNK_BYTES + 4
    span = await files_client.get(url, headers={"Range": f"bytes={first}-{last}"})
    assert (span.status_code, span.content) == (206, data[first : last + 1])
    empty = await storage.put(org_id, chunks_of(b""), kind="evidence")
    nothing = await files_client.get(await storage.signed_url(org_id, empty.key))
    assert (nothing.status_code, nothing.content) == (200, b"")


def test_range_header_parsing() -> None:
    assert parse_range("bytes=0-99") == ByteRange(0, 99)
    assert parse_range("bytes=100-") == ByteRange(100, None)
    assert parse_range("bytes=-500") == ByteRange(None, 500)
    for ignored in (None, "", "bytes=-", "bytes=9-1", "items=0-1", "bytes=0-1,3-4", "bytes=x-"):
        assert parse_range(ignored) is None
    assert ByteRange(None, 500).resolve(100) == (0, 99)
    with pytest.raises(RangeNotSatisfiable):
        ByteRange(None, 0).resolve(100)
    with pytest.raises(RangeNotSatisfiable):
        ByteRange(0, None).resolve(0)


# --- keys and sniffing, property-based ---------------------------------------------------


@given(st.uuids(version=4), st.from_regex(r"[a-z0-9_-]{1,40}", fullmatch=True))
def test_generated_keys_are_well_formed_and_owned(org_id: uuid.UUID, kind: str) -> None:
    key = new_key(org_id, kind)
    assert key.startswith(f"{org_id}/{kind}/")
    assert key_org(key) == org_id
    assert check_key(org_id, key) == key
    with pytest.raises(NotFound):
        check_key(uuid.uuid4(), key)


@given(
    st.uuids(version=4),
    st.integers(min_value=0, max_value=120),
    st.sampled_from(["..", "/", "//", "\\", "%2e", "%2f", "\x00", "\n", " ", "A", "."])
    | st.text(max_size=4),
)
def test_altered_keys_are_refused_unless_still_plain(
    org_id: uuid.UUID, position: int, insertion: str
) -> None:
    key = new_key(org_id, "evidence")
    altered = key[:position] + insertion + key[position:]
    try:
        check_key(org_id, altered)
    except NotFound:
        return
    # Accepted only if still nothing but plain segments (e.g. a letter added to the kind).
    segments = altered.split("/")
    assert len(segments) == 5
    assert segments[0] == str(org_id)
    assert re.fullmatch(r"[a-z0-9/_-]+", altered)
    assert all(segment not in ("", ".", "..") for segment in segments)


SAMPLES = {
    mime.PDF: b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n",
    mime.JPEG: b"\xff\xd8\xff\xe0\x00\x10JFIF\x00",
    mime.PNG: b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
    mime.GIF: b"GIF89a\x01\x00\x01\x00",
    mime.WEBP: b"RIFF\x24\x00\x00\x00WEBPVP8 ",
    mime.WAV: b"RIFF\x24\x00\x00\x00WAVEfmt ",
    mime.MP4: b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00",
    mime.QUICKTIME: b"\x00\x00\x00\x14ftypqt  \x00\x00\x02\x00",
    mime.WEBM: b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm\x42\x87\x81\x04",
    mime.MATROSKA: b"\x1a\x45\xdf\xa3\xa3\x42\x86\x81\x01\x42\x82\x88matroska\x42\x87",
    mime.XLSX: zip_with("[Content_Types].xml", "_rels/.rels", "xl/workbook.xml"),
    mime.DOCX: zip_with("[Content_Types].xml", "word/document.xml"),
    mime.ZIP: zip_with("photos/a.txt", "photos/b.txt"),
    mime.JSON: b'{"amount": 10, "currency": "INR"}',
    mime.CSV: b"date;amount\n2024-01-01;10\n2024-01-02;11\n",
    mime.TEXT: b"Dear customer,\nyour appraisal is ready.\n",
    mime.OCTET_STREAM: b"\x00\x01\x02\x03binary",
}


@pytest.mark.parametrize(("expected", "head"), list(SAMPLES.items()))
def test_sniffer_signature_table(expected: str, head: bytes) -> None:
    assert sniff_content_type(head, complete=True) == expected


def test_sniffer_edge_cases() -> None:
    heic = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00"
    assert sniff_content_type(heic, complete=True) == mime.OCTET_STREAM
    assert sniff_content_type(b"", complete=True) == mime.OCTET_STREAM
    # A head cut inside a multi-byte character is still text when more follows.
    cut = "é".encode() * 3 + "é".encode()[:1]
    assert sniff_content_type(cut, complete=False) == mime.TEXT
    assert sniff_content_type(cut, complete=True) == mime.OCTET_STREAM
    assert sniff_content_type(b'{"a": [1, 2', complete=False) == mime.JSON
    assert sniff_content_type(b'{"a": [1, 2', complete=True) == mime.TEXT
    assert sniff_content_type(b"[section]\nkey=value\n", complete=True) == mime.TEXT
    assert sniff_content_type(b"\xef\xbb\xbfa,b\n1,2\n", complete=True) == mime.CSV
    assert sniff_content_type(b"text with \x1b[31m escapes", complete=True) == mime.OCTET_STREAM


KNOWN_TYPES = {value for value in vars(mime).values() if isinstance(value, str) and "/" in value}


@given(st.binary(max_size=2048), st.booleans())
def test_sniffer_never_fails_on_arbitrary_bytes(head: bytes, complete: bool) -> None:
    assert sniff_content_type(head, complete=complete) in KNOWN_TYPES


@given(st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs")), min_size=1))
def test_sniffer_calls_printable_utf8_text_text(text: str) -> None:
    data = ("x" + text).encode()  # no binary signature starts with "x"
    assume(b"ftyp" not in data[:8])
    assert sniff_content_type(data, complete=True) in {mime.TEXT, mime.CSV}


# --- S3 against moto ---------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3(moto_endpoint: str, settings: Settings) -> S3Storage:
    bucket = f"touchstone-{uuid.uuid4().hex[:12]}"
    created = httpx.put(f"{moto_endpoint}/{bucket}")  # moto accepts unsigned admin calls
    assert created.status_code == 200, created.text
    storage = get_storage(
        settings.model_copy(
            update={
                "storage_backend": "s3",
                "s3_bucket": bucket,
                "s3_endpoint_url": moto_endpoint,
                "s3_access_key_id": "test-access-key",
                "s3_secret_access_key": SecretStr("test-secret-key"),
            }
        )
    )
    assert isinstance(storage, S3Storage)
    return storage


async def test_s3_round_trip(s3: S3Storage) -> None:
    org_id = uuid.uuid4()
    data = b"%PDF-1.7\n" + os.urandom(300_000)
    stored = await s3.put(org_id, chunks_of(data, 65536), kind="evidence")

    assert (stored.size, stored.content_type) == (len(data), mime.PDF)
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert KEY_SHAPE.fullmatch(stored.key) is not None
    assert await s3.exists(org_id, stored.key)
    stream = await s3.open(org_id, stored.key)
    assert (stream.size, stream.content_type) == (len(data), mime.PDF)
    assert b"".join([bytes(chunk) async for chunk in stream.chunks]) == data

    part = await s3.open(org_id, stored.key, byte_range=ByteRange(100, 199))
    assert (part.first, part.last, part.size, part.partial) == (100, 199, len(data), True)
    assert b"".join([bytes(chunk) async for chunk in part.chunks]) == data[100:200]

    with pytest.raises(NotFound):
        await s3.open(uuid.uuid4(), stored.key)
    await s3.delete(org_id, stored.key)
    assert not await s3.exists(org_id, stored.key)
    with pytest.raises(NotFound):
        await s3.open(org_id, stored.key)


async def test_s3_presigned_url_downloads_with_httpx(s3: S3Storage) -> None:
    org_id = uuid.uuid4()
    data = b"name,amount\nrent,100\nfood,20\n"
    stored = await s3.put(org_id, chunks_of(data, 5), kind="evidence")
    url = await s3.signed_url(org_id, stored.key, expires_in=120)
    assert "X-Amz-Signature=" in url
    assert "X-Amz-Expires=120" in url

    async with httpx.AsyncClient() as client:
        response = await client.get(url)
        assert response.status_code == 200, response.text
        assert response.content == data
        assert response.headers["content-type"] == mime.CSV
        assert response.headers["content-disposition"] == "attachment"

        tampered = await client.get(url.replace(stored.key, new_key(org_id, "evidence")))
        assert tampered.status_code in (403, 404)
        assert tampered.content != data


async def test_s3_size_limit_leaves_no_object_or_upload(s3: S3Storage, moto_endpoint: str) -> None:
    org_id = uuid.uuid4()
    data = png(600_000)
    with pytest.raises(PayloadTooLarge):
        await s3.put(org_id, chunks_of(data, 65536), kind="evidence", max_bytes=500_000)
    with pytest.raises(UnsupportedMediaType):
        await s3.put(org_id, chunks_of(data), kind="evidence", allowed_types={mime.PDF})

    listed = [meta async for batch in obstore.list(s3.store) for meta in batch]
    assert listed == []
    bucket = s3.store.config["bucket"]
    async with httpx.AsyncClient() as client:
        uploads = await client.get(f"{moto_endpoint}/{bucket}?uploads")
    assert uploads.status_code == 200
    assert "<UploadId>" not in uploads.text, "the multipart upload was aborted"


def test_s3_needs_a_bucket(settings: Settings) -> None:
    with pytest.raises(ValueError, match="S3_BUCKET"):
        get_storage(settings.model_copy(update={"storage_backend": "s3", "s3_bucket": None}))


async def test_a_full_volume_is_a_507_and_leaves_no_partial_file(
    storage: LocalStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The chaos run fills a real small volume; here the write fails as a full disk does."""
    org_id = uuid.uuid4()
    create = local_storage._create_temporary

    class FullDisk(io.BufferedWriter):
        def write(self, data: Any) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

    def create_on_full_disk(target: Path) -> tuple[Any, Path]:
        file, temporary = create(target)
        return FullDisk(file.raw), temporary

    monkeypatch.setattr(local_storage, "_create_temporary", create_on_full_disk)
    with pytest.raises(StorageFull):
        await storage.put(org_id, chunks_of(png(3_000_000)), kind="evidence")
    monkeypatch.undo()
    assert files_in(storage.root) == []
    stored = await storage.put(org_id, chunks_of(png(1_000)), kind="evidence")
    assert await storage.exists(org_id, stored.key)
