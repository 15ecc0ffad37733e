"""Endpoint secrets at rest, sealed with a key derived from SECRET_KEY for this purpose only.

Changing SECRET_KEY makes stored secrets unreadable: deliveries then fail with a clear
error until the secret is rotated.
"""

from __future__ import annotations

from touchstone.core.config import Settings
from touchstone.core.crypto import InvalidToken, Sealer

__all__ = ["InvalidToken", "decrypt_secret", "encrypt_secret"]


def _sealer(settings: Settings) -> Sealer:
    return Sealer(settings.secret_key.get_secret_value(), "touchstone/webhooks/endpoint-secret/v1")


def encrypt_secret(settings: Settings, secret: str) -> str:
    return _sealer(settings).seal(secret)


def decrypt_secret(settings: Settings, token: str) -> str:
    """Raises `InvalidToken` when SECRET_KEY changed since the secret was stored."""
    return _sealer(settings).open(token)
