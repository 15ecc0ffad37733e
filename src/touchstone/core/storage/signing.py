"""HMAC-signed download links for the local backend (S3 presigns its own).

The signature is the credential: whoever holds the link may download that one object until
it expires, so links are short-lived and cover the exact key and expiry time.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from urllib.parse import urlencode

from touchstone.core.storage.base import FILES_PATH, signed_url_seconds

# A key of its own, so a signature can never double as a JWT or any other HMAC we compute.
_PURPOSE = b"touchstone/storage/signed-url/v1"


class UrlSigner:
    def __init__(self, secret_key: str, *, clock: Callable[[], float] = time.time) -> None:
        self._key = hmac.new(secret_key.encode(), _PURPOSE, hashlib.sha256).digest()
        self._clock = clock

    def signature(self, key: str, expires: int) -> str:
        return hmac.new(self._key, f"{key}\n{expires}".encode(), hashlib.sha256).hexdigest()

    def url(self, key: str, expires_in: int) -> str:
        expires = int(self._clock()) + signed_url_seconds(expires_in)
        query = urlencode({"expires": expires, "sig": self.signature(key, expires)})
        return f"{FILES_PATH}/{key}?{query}"

    def verify(self, key: str, expires: int, signature: str) -> bool:
        """Constant-time comparison; an expired link fails even with a correct signature.

        Compared as bytes: `compare_digest` refuses non-ASCII text with a TypeError (a 500)."""
        expected = self.signature(key, expires).encode()
        valid = hmac.compare_digest(expected, signature.encode("utf-8", "surrogatepass"))
        return valid and expires >= self._clock()
