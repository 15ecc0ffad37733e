"""Signatures receivers check: HMAC-SHA256 over `"{timestamp}.{raw body}"`.

    Touchstone-Signature: t=1700000000,v1=<64 hex digits>

A receiver calls `verify_signature(secret, header, raw_body)` before parsing the body. The
timestamp is inside the signed bytes, so an old request cannot be replayed with a new one.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)
SIGNATURE_VERSION = "v1"
DEFAULT_TOLERANCE_SECONDS = 300


class SignatureError(ValueError):
    """The signature header is missing, malformed, stale or does not match the body."""


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def compute_signature(secret: str, timestamp: int, body: bytes | str) -> str:
    message = f"{timestamp}.".encode() + (body.encode() if isinstance(body, str) else body)
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(secret: str, timestamp: int, body: bytes | str) -> str:
    return f"t={timestamp},{SIGNATURE_VERSION}={compute_signature(secret, timestamp, body)}"


def verify_signature(
    secret: str,
    header: str,
    body: bytes | str,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
    *,
    now: float | None = None,
) -> None:
    """Raise `SignatureError` unless `header` signs exactly `body` within the tolerance.

    Raising (not returning False) means a caller cannot forget to look at the answer.
    """
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit() and len(value) <= 12:
            timestamp = int(value)
        elif key == SIGNATURE_VERSION and value:
            candidates.append(value)
    if timestamp is None or not candidates:
        raise SignatureError(f"expected 't=<unix time>,{SIGNATURE_VERSION}=<hex>'")
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_seconds:
        raise SignatureError("the timestamp is outside the tolerance (stale or replayed)")
    expected = compute_signature(secret, timestamp, body)
    if not any(hmac.compare_digest(expected, candidate) for candidate in candidates):
        raise SignatureError("the signature does not match the body")
