"""QR codes of public URLs, with segno (pure Python, BSD): PNG for print, SVG for layouts."""

from __future__ import annotations

import io

import segno


def png(url: str, scale: int = 10) -> bytes:
    buffer = io.BytesIO()
    segno.make(url, error="m").save(buffer, kind="png", scale=scale, border=4)
    return buffer.getvalue()


def svg(url: str) -> bytes:
    buffer = io.BytesIO()
    segno.make(url, error="m").save(buffer, kind="svg", scale=10, border=4, xmldecl=True)
    return buffer.getvalue()
