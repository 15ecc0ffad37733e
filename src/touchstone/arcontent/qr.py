"""QR codes of public URLs, with segno (pure Python, BSD): PNG for print, SVG for layouts.

A code is a function of its URL, and drawing one in pure Python costs 7-11 ms of CPU, so
each is drawn once per process (a published content's URL never changes)."""

from __future__ import annotations

import functools
import io

import segno

DRAWN = 1024
"""Codes kept per format: a couple of KiB each."""


@functools.lru_cache(maxsize=DRAWN)
def png(url: str, scale: int = 10) -> bytes:
    buffer = io.BytesIO()
    segno.make(url, error="m").save(buffer, kind="png", scale=scale, border=4)
    return buffer.getvalue()


@functools.lru_cache(maxsize=DRAWN)
def svg(url: str) -> bytes:
    buffer = io.BytesIO()
    segno.make(url, error="m").save(buffer, kind="svg", scale=10, border=4, xmldecl=True)
    return buffer.getvalue()
