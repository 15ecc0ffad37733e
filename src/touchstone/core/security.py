"""Passwords, JWTs and opaque secrets.

Passwords use argon2id (pwdlib) off the event loop. High-entropy secrets (API keys, refresh
and invitation tokens) are stored as SHA-256: they cannot be guessed, so a slow hash would
only slow down every authenticated request.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio.to_thread
import jwt
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from touchstone.core.config import Settings
from touchstone.core.errors import Unauthorized

JWT_ALGORITHM = "HS256"


class _Passwords:
    def __init__(self, time_cost: int, memory_kib: int) -> None:
        self.cost = (time_cost, memory_kib)
        self.hasher = PasswordHash((Argon2Hasher(time_cost=time_cost, memory_cost=memory_kib),))
        # Checked when the user does not exist, so unknown emails cost as much as known ones.
        self.dummy_hash = self.hasher.hash(secrets.token_urlsafe(16))


_passwords = _Passwords(time_cost=3, memory_kib=65536)


def configure_password_hashing(settings: Settings) -> None:
    """Apply the configured argon2 cost to new hashes (old hashes carry their own)."""
    global _passwords
    cost = (settings.password_hash_time_cost, settings.password_hash_memory_kib)
    if cost != _passwords.cost:
        _passwords = _Passwords(*cost)


async def hash_password(password: str) -> str:
    return await anyio.to_thread.run_sync(_passwords.hasher.hash, password)


async def verify_password(password: str, password_hash: str | None) -> bool:
    """Constant work whether or not there is a hash to check against."""
    ok = await anyio.to_thread.run_sync(
        _passwords.hasher.verify, password, password_hash or _passwords.dummy_hash
    )
    return bool(ok) and password_hash is not None


def digest_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_token(nbytes: int = 32) -> str:
    return secrets.token_urlsafe(nbytes)


@dataclass(frozen=True)
class AccessClaims:
    user_id: uuid.UUID
    org_id: uuid.UUID
    session_id: uuid.UUID
    expires_at: datetime | None = None
    """Set on decoded tokens; issuing computes its own expiry."""


def issue_access_token(
    settings: Settings, claims: AccessClaims, *, now: datetime | None = None
) -> str:
    issued = now or datetime.now(UTC)
    payload: dict[str, Any] = {
        "sub": str(claims.user_id),
        "org": str(claims.org_id),
        "sid": str(claims.session_id),
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "iat": issued,
        "nbf": issued,
        "exp": issued + timedelta(seconds=settings.access_token_ttl_seconds),
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(payload, settings.secret_key.get_secret_value(), algorithm=JWT_ALGORITHM)


def decode_access_token(settings: Settings, token: str) -> AccessClaims:
    """Accept only our own HS256 tokens: fixed algorithm list, audience, issuer, expiry."""
    try:
        payload = jwt.decode(
            token,
            settings.secret_key.get_secret_value(),
            algorithms=[JWT_ALGORITHM],
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            options={"require": ["exp", "iat", "sub", "aud", "iss", "org", "sid"]},
            leeway=5,
        )
        return AccessClaims(
            user_id=uuid.UUID(payload["sub"]),
            org_id=uuid.UUID(payload["org"]),
            session_id=uuid.UUID(payload["sid"]),
            expires_at=datetime.fromtimestamp(payload["exp"], UTC),
        )
    except jwt.ExpiredSignatureError as exc:
        raise Unauthorized("The access token has expired") from exc
    except (jwt.InvalidTokenError, ValueError, TypeError, KeyError) as exc:
        raise Unauthorized("The access token is invalid") from exc
