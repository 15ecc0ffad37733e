"""Frames in and out of the purity test: checked decoding and JPEG evidence.

A frame comes from a client, so its size is read from the JPEG/PNG header and refused
before `cv2.imdecode` runs: a 30000x30000 image would otherwise allocate gigabytes.
"""

from __future__ import annotations

import struct

import cv2
import numpy as np
import numpy.typing as npt

from touchstone.appraisal.exceptions import FrameTooLarge, InvalidFrame

BgrFrame = npt.NDArray[np.uint8]
"""An 8-bit BGR image of shape (height, width, 3), as OpenCV returns it."""

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JPEG_START = b"\xff\xd8"
# Start-of-frame markers carry the dimensions; C4 (Huffman), C8 (reserved) and CC
# (arithmetic conditioning) share the range but are not frames.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Markers without a length field.
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD9)})


def image_dimensions(data: bytes) -> tuple[int, int]:
    """(width, height) from a JPEG or PNG header, without decoding any pixel."""
    if data.startswith(_PNG_SIGNATURE):
        return _png_dimensions(data)
    if data.startswith(_JPEG_START):
        return _jpeg_dimensions(data)
    raise InvalidFrame("The frame is neither a JPEG nor a PNG image")


def _png_dimensions(data: bytes) -> tuple[int, int]:
    # The first chunk must be IHDR: length (4), type (4), width (4), height (4).
    if len(data) < 24 or data[12:16] != b"IHDR":
        raise InvalidFrame("The PNG header is truncated or has no IHDR chunk")
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def _jpeg_dimensions(data: bytes) -> tuple[int, int]:
    position = 2
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            raise InvalidFrame("The JPEG header is malformed")
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte before a marker
            position += 1
            continue
        if marker in _JPEG_STANDALONE:
            position += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image or start of scan before any frame header
            break
        (length,) = struct.unpack(">H", data[position + 2 : position + 4])
        if marker in _JPEG_SOF:
            if length < 7 or position + 9 > len(data):
                break
            height, width = struct.unpack(">HH", data[position + 5 : position + 9])
            return int(width), int(height)
        if length < 2:
            break
        position += 2 + length
    raise InvalidFrame("The JPEG has no readable frame header")


def decode_frame(data: bytes, *, max_pixels: int) -> BgrFrame:
    """Decode a JPEG/PNG frame to BGR, refusing oversized ones from the header alone."""
    width, height = image_dimensions(data)
    if width <= 0 or height <= 0:
        raise InvalidFrame(f"The frame header declares an empty image ({width}x{height})")
    if width * height > max_pixels:
        raise FrameTooLarge(
            f"The frame is {width}x{height} ({width * height} pixels); at most {max_pixels}"
        )
    decoded = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if decoded is None:
        raise InvalidFrame("The frame could not be decoded")
    # A second frame header further on could declare other dimensions than the one checked.
    if decoded.shape[:2] != (height, width):
        raise InvalidFrame("The decoded frame does not match its header's dimensions")
    return np.asarray(decoded, dtype=np.uint8)


def check_frame(frame: object) -> BgrFrame:
    """The frame itself when it is an 8-bit BGR image; otherwise `InvalidFrame`."""
    if (
        not isinstance(frame, np.ndarray)
        or frame.dtype != np.uint8
        or frame.ndim != 3
        or frame.shape[2] != 3
        or frame.shape[0] < 16
        or frame.shape[1] < 16
    ):
        raise InvalidFrame("The frame is not an 8-bit BGR image of at least 16x16 pixels")
    checked: BgrFrame = frame
    return checked


def encode_jpeg(frame: BgrFrame, quality: int = 85) -> bytes:
    """JPEG bytes of a BGR frame, for evidence key frames."""
    if not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality must be within 1..100, not {quality}")
    ok, encoded = cv2.imencode(".jpg", check_frame(frame), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise InvalidFrame("The frame could not be encoded as JPEG")
    return encoded.tobytes()
