"""Frames from clients: decoded when sound, refused from the header when huge or not images."""

from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from touchstone.appraisal.exceptions import FrameTooLarge, InvalidFrame
from touchstone.appraisal.purity.frames import (
    BgrFrame,
    check_frame,
    decode_frame,
    encode_jpeg,
    image_dimensions,
)

MAX_PIXELS = 1920 * 1080


def _picture(width: int = 64, height: int = 48) -> BgrFrame:
    """Smooth colour ramps: what JPEG keeps well, so a round trip can be compared."""
    across = np.linspace(0, 255, width, dtype=np.float32)[None, :]
    down = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    planes = [across + 0 * down, down + 0 * across, (across + down) / 2]
    return np.stack(planes, axis=2).astype(np.uint8)


def _png(frame: BgrFrame) -> bytes:
    ok, encoded = cv2.imencode(".png", frame)
    assert ok
    return encoded.tobytes()


def _jpeg_declaring(width: int, height: int, *, progressive: bool = False) -> bytes:
    """A real JPEG whose frame header is rewritten to claim width x height."""
    flags = [cv2.IMWRITE_JPEG_PROGRESSIVE, 1] if progressive else []
    ok, encoded = cv2.imencode(".jpg", _picture(), flags)
    assert ok
    data = bytearray(encoded.tobytes())
    sof = bytes([0xFF, 0xC2 if progressive else 0xC0])
    at = data.index(sof)
    data[at + 5 : at + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def _png_declaring(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr
    return b"\x89PNG\r\n\x1a\n" + chunk + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))


@pytest.fixture
def imdecode_forbidden(monkeypatch: pytest.MonkeyPatch) -> None:
    """Proves a refusal happened before any pixel buffer was allocated."""

    def refuse(*_: object) -> None:
        raise AssertionError("cv2.imdecode ran on a frame that should have been refused")

    monkeypatch.setattr(cv2, "imdecode", refuse)


def test_jpeg_and_png_decode_to_bgr_of_their_size() -> None:
    picture = _picture(64, 48)
    from_png = decode_frame(_png(picture), max_pixels=MAX_PIXELS)
    from_jpeg = decode_frame(encode_jpeg(picture, 95), max_pixels=MAX_PIXELS)
    assert np.array_equal(from_png, picture)
    assert from_jpeg.shape == (48, 64, 3)
    assert from_jpeg.dtype == np.uint8
    assert np.abs(from_jpeg.astype(int) - picture).mean() < 4


def test_dimensions_come_from_the_header_of_baseline_progressive_and_png() -> None:
    assert image_dimensions(_jpeg_declaring(1234, 567)) == (1234, 567)
    assert image_dimensions(_jpeg_declaring(800, 600, progressive=True)) == (800, 600)
    assert image_dimensions(_png_declaring(4000, 3000)) == (4000, 3000)
    assert image_dimensions(_png(_picture(33, 21))) == (33, 21)


@pytest.mark.usefixtures("imdecode_forbidden")
@pytest.mark.parametrize(
    "data",
    [
        _jpeg_declaring(30000, 30000),
        _jpeg_declaring(30000, 30000, progressive=True),
        _png_declaring(30000, 30000),
        _png_declaring(1921, 1080),
    ],
)
def test_huge_frames_are_refused_before_decoding(data: bytes) -> None:
    with pytest.raises(FrameTooLarge) as refused:
        decode_frame(data, max_pixels=MAX_PIXELS)
    assert refused.value.status == 413
    assert refused.value.code == "frame_too_large"
    assert isinstance(refused.value, InvalidFrame)


@pytest.mark.usefixtures("imdecode_forbidden")
@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not an image at all",
        b"GIF89a\x01\x00\x01\x00",
        b"\xff\xd8\xff",  # a JPEG start and nothing else
        b"\xff\xd8\xff\xda\x00\x08",  # scan data before any frame header
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDX",
        _png_declaring(0, 10),
        _jpeg_declaring(640, 0),
    ],
)
def test_non_images_are_refused_with_invalid_frame(data: bytes) -> None:
    with pytest.raises(InvalidFrame) as refused:
        decode_frame(data, max_pixels=MAX_PIXELS)
    assert refused.value.status == 422
    assert refused.value.code == "invalid_frame"


def test_a_damaged_body_behind_a_sound_header_is_invalid() -> None:
    header_only = _png_declaring(64, 48)
    with pytest.raises(InvalidFrame):
        decode_frame(header_only, max_pixels=MAX_PIXELS)


@settings(max_examples=150, deadline=None)
@given(prefix=st.sampled_from([b"", b"\xff\xd8", b"\x89PNG\r\n\x1a\n"]), body=st.binary())
def test_arbitrary_bytes_decode_or_raise_invalid_frame(prefix: bytes, body: bytes) -> None:
    try:
        frame = decode_frame(prefix + body, max_pixels=MAX_PIXELS)
    except InvalidFrame:
        return
    assert frame.ndim == 3
    assert frame.shape[2] == 3


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((48, 64), np.uint8),
        np.zeros((48, 64, 4), np.uint8),
        np.zeros((48, 64, 3), np.float32),
        np.zeros((8, 8, 3), np.uint8),
        b"\xff\xd8",
        None,
    ],
)
def test_check_frame_accepts_only_8_bit_bgr(bad: object) -> None:
    with pytest.raises(InvalidFrame):
        check_frame(bad)


def test_encode_jpeg_quality_is_bounded_and_shapes_survive() -> None:
    picture = _picture(32, 24)
    assert encode_jpeg(picture, 50).startswith(b"\xff\xd8")
    assert len(encode_jpeg(picture, 95)) > len(encode_jpeg(picture, 10))
    with pytest.raises(ValueError, match="quality"):
        encode_jpeg(picture, 0)
