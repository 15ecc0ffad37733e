"""Content types from the first bytes of a file: the client's `Content-Type` is never trusted.

A small table of our own instead of python-magic: libmagic is a native dependency whose answers
change between distributions, and we only accept a handful of formats anyway. Anything not
recognised is `application/octet-stream`, which routes can refuse with `allowed_types`.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re

SNIFF_BYTES = 8192
"""How much of the head the sniffer looks at (enough for ZIP member names and CSV rows)."""

OCTET_STREAM = "application/octet-stream"
PDF = "application/pdf"
JPEG = "image/jpeg"
PNG = "image/png"
GIF = "image/gif"
WEBP = "image/webp"
MP4 = "video/mp4"
QUICKTIME = "video/quicktime"
WEBM = "video/webm"
MATROSKA = "video/x-matroska"
WAV = "audio/wav"
ZIP = "application/zip"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
JSON = "application/json"
CSV = "text/csv"
TEXT = "text/plain"

INLINE_TYPES = frozenset({PDF, JPEG, PNG, GIF, WEBP, MP4, QUICKTIME, WEBM, WAV})
"""Types a browser may render in place; everything else is served as an attachment."""

_PREFIXES: tuple[tuple[bytes, str], ...] = (
    (b"%PDF-", PDF),
    (b"\xff\xd8\xff", JPEG),
    (b"\x89PNG\r\n\x1a\n", PNG),
    (b"GIF87a", GIF),
    (b"GIF89a", GIF),
)
# ISO base media files that are still images, not video: HEIF/AVIF share MP4's `ftyp` box.
_IMAGE_BRANDS = (b"heic", b"heix", b"hevc", b"mif1", b"msf1", b"avif", b"avis")
_ZIP_MEMBER = re.compile(rb"PK\x03\x04.{22}(..)", re.DOTALL)
_TEXT_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")
_JSON_AFTER_OPEN = {"{": '"}', "[": '{["-0123456789tfn]'}


def sniff_content_type(head: bytes, *, complete: bool) -> str:
    """The type of a file whose first bytes are `head` (`complete`: head is the whole file)."""
    for prefix, content_type in _PREFIXES:
        if head.startswith(prefix):
            return content_type
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return WEBP
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return WAV
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand == b"qt  ":
            return QUICKTIME
        return OCTET_STREAM if brand in _IMAGE_BRANDS else MP4
    if head.startswith(b"\x1a\x45\xdf\xa3"):  # EBML: the header names its DocType
        return WEBM if b"\x42\x82\x84webm" in head[:64] else MATROSKA
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return _office_type(head)
    text = _utf8_text(head, complete=complete)
    if text is None:
        return OCTET_STREAM
    if _looks_like_json(text, complete=complete):
        return JSON
    if _looks_like_csv(text, complete=complete):
        return CSV
    return TEXT


def _office_type(head: bytes) -> str:
    """XLSX and DOCX are ZIPs; the member names in the local headers tell them apart."""
    for match in _ZIP_MEMBER.finditer(head):
        length = int.from_bytes(match.group(1), "little")
        name_start = match.end() + 2
        name = head[name_start : name_start + length]
        if name.startswith(b"xl/"):
            return XLSX
        if name.startswith(b"word/"):
            return DOCX
    return ZIP


def _utf8_text(head: bytes, *, complete: bool) -> str | None:
    """The head as text, or None when it is not UTF-8 without control characters.

    A head cut in the middle of a multi-byte character is still text: the incremental decoder
    keeps the unfinished tail instead of failing on it.
    """
    if not head:
        return None
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        text = decoder.decode(head, final=complete)
    except UnicodeDecodeError:
        return None
    text = text.removeprefix("\ufeff")
    if _TEXT_CONTROL.search(text):
        return None
    return text


def _looks_like_json(text: str, *, complete: bool) -> bool:
    stripped = text.lstrip(" \t\r\n")
    if not stripped or stripped[0] not in _JSON_AFTER_OPEN:
        return False
    if complete:
        try:
            json.loads(stripped)
        except ValueError:
            return False
        return True
    rest = stripped[1:].lstrip(" \t\r\n")
    return not rest or rest[0] in _JSON_AFTER_OPEN[stripped[0]]


def _looks_like_csv(text: str, *, complete: bool) -> bool:
    """At least two rows with the same number (> 1) of fields for one common delimiter."""
    lines = text.splitlines()
    if not complete and len(lines) > 1:
        lines = lines[:-1]  # the last line may be cut short
    rows = [line for line in lines[:20] if line.strip()]
    if len(rows) < 2:
        return False
    sample = "\n".join(rows)
    for delimiter in ",;\t":
        try:
            widths = {len(row) for row in csv.reader(io.StringIO(sample), delimiter=delimiter)}
        except csv.Error:
            continue
        if len(widths) == 1 and widths.pop() > 1:
            return True
    return False
