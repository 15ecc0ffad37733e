"""Idempotency-Key for creating requests (draft-ietf-httpapi-idempotency-key-header).

A route adds `idempotency: IdempotencyDep` and returns `idempotency.remember(result, 201)`.
The key is claimed with a transaction-level advisory lock and its outcome is stored in the
same transaction as the effect, so twenty identical requests in parallel make one effect:
one runs, the ones that overlap it get `409`, later ones get the stored response again.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, TypeVar

from fastapi import Depends, FastAPI, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import make_transient_to_detached

from touchstone.core.auth import Principal
from touchstone.core.config import Settings
from touchstone.core.crypto import Sealer
from touchstone.core.deps import CurrentPrincipal, SessionDep
from touchstone.core.errors import AppError, Conflict
from touchstone.core.idempotency_models import IdempotencyRecord
from touchstone.core.middleware import route_template

KEY = r"^[\x21-\x7e]{1,255}$"
REPLAYED_HEADER = "Idempotent-Replayed"
M = TypeVar("M", bound=BaseModel)


class IdempotencyKeyInFlight(Conflict):
    code, title = "idempotency_key_in_flight", "A request with this Idempotency-Key is running"


class IdempotencyKeyReused(AppError):
    status, code = 422, "idempotency_key_reused"
    title = "This Idempotency-Key was used with a different request"


class _Replay(Exception):
    """Short-circuits the route with the stored response (nothing to commit)."""

    def __init__(self, status_code: int, body: Any, headers: dict[str, str]) -> None:
        self.status_code, self.body, self.headers = status_code, body, headers


class Idempotency:
    def __init__(
        self,
        session: AsyncSession,
        principal: Principal,
        route: str,
        key: str | None,
        fingerprint: str,
        ttl: timedelta,
        sealer: Sealer,
    ) -> None:
        self.session = session
        self.sealer = sealer
        self.principal = principal
        self.route = route
        self.key = key
        self.fingerprint = fingerprint
        self.ttl = ttl
        self._record: IdempotencyRecord | None = None

    @property
    def _owner(self) -> str:
        return f"{self.principal.kind}:{self.principal.id}"

    async def claim(self) -> None:
        """Refuse a concurrent twin, replay a finished one, or let this request run.

        One statement on the common path: the key's row is inserted only if this request
        wins the transaction-level advisory lock and no row exists yet; `remember` fills it.
        """
        if self.key is None:
            return
        row_id = uuid.uuid4()
        expires_at = datetime.now(UTC) + self.ttl
        owner = {
            "org": self.principal.org_id,
            "principal": self._owner,
            "route": self.route,
            "key": self.key,
        }
        inserted = (
            await self.session.execute(
                _CLAIM,
                {
                    **owner,
                    "id": row_id,
                    "fingerprint": self.fingerprint,
                    "expires_at": expires_at,
                    "lock": "|".join(str(v) for v in owner.values()),
                },
            )
        ).scalar_one_or_none()
        if inserted is not None:
            self._record = IdempotencyRecord(
                id=row_id,
                org_id=self.principal.org_id,
                principal=self._owner,
                route=self.route,
                key=self.key,
                fingerprint=self.fingerprint,
                status_code=0,
                sealed_body="",
                headers={},
                expires_at=expires_at,
            )
            make_transient_to_detached(self._record)  # known to exist: updated, not inserted
            self.session.add(self._record)
            return
        record = (
            await self.session.execute(
                select(IdempotencyRecord).where(
                    IdempotencyRecord.org_id == self.principal.org_id,
                    IdempotencyRecord.principal == self._owner,
                    IdempotencyRecord.route == self.route,
                    IdempotencyRecord.key == self.key,
                )
            )
        ).scalar_one_or_none()
        if record is None or record.status_code == 0:
            raise IdempotencyKeyInFlight("Retry once the first request has finished")
        if record.expires_at <= datetime.now(UTC):
            await self.session.delete(record)
            await self.session.flush()
            await self.claim()
            return
        if record.fingerprint != self.fingerprint:
            raise IdempotencyKeyReused("Send a new key for a different request")
        raise _Replay(
            record.status_code, json.loads(self.sealer.open(record.sealed_body)), record.headers
        )

    def remember(
        self, result: M, status_code: int = 201, headers: dict[str, str] | None = None
    ) -> M:
        """Store the response with the effect (same transaction) and return it unchanged."""
        if self._record is not None:
            self._record.status_code = status_code
            self._record.sealed_body = self.sealer.seal(result.model_dump_json())
            self._record.headers = headers or {}
        return result


_CLAIM = text(
    "INSERT INTO idempotency_keys (id, org_id, principal, route, key, fingerprint, status_code,"
    " sealed_body, headers, expires_at, created_at)"
    " SELECT :id, :org, :principal, :route, :key, :fingerprint, 0, '', '{}'::jsonb,"
    " :expires_at, now() WHERE pg_try_advisory_xact_lock(hashtextextended(:lock, 0))"
    " ON CONFLICT (org_id, principal, route, key) DO NOTHING RETURNING id"
)


async def _fingerprint(request: Request) -> str:
    """Method, path and body: a different request under the same key is an error."""
    digest = hashlib.sha256(f"{request.method} {request.url.path}\n".encode())
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        form = await request.form()  # already parsed by FastAPI: the raw stream is gone
        for name, value in sorted(form.multi_items(), key=lambda item: item[0]):
            if isinstance(value, str):
                digest.update(f"{name}={value}\n".encode())
                continue
            digest.update(f"{name}={value.filename}\n".encode())
            while chunk := await value.read(1 << 20):  # the content, not just the size
                digest.update(chunk)
            await value.seek(0)
    else:
        digest.update(await request.body())
    return digest.hexdigest()


async def idempotency(
    request: Request,
    session: SessionDep,
    principal: CurrentPrincipal,
    key: Annotated[
        str | None,
        # Declared, not checked in code, so the OpenAPI document says what is refused.
        Header(alias="Idempotency-Key", pattern=KEY, description="1-255 visible ASCII characters"),
    ] = None,
) -> Idempotency:
    settings = request.app.state.settings
    guard = Idempotency(
        session,
        principal,
        f"{request.method} {route_template(request.scope)}",
        key,
        await _fingerprint(request),
        timedelta(seconds=settings.idempotency_ttl_seconds),
        request.app.state.idempotency_sealer,
    )
    await guard.claim()
    return guard


IdempotencyDep = Annotated[Idempotency, Depends(idempotency)]


async def _replay(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, _Replay)
    return JSONResponse(
        exc.body, status_code=exc.status_code, headers={**exc.headers, REPLAYED_HEADER: "true"}
    )


def install_idempotency(app: FastAPI, settings: Settings) -> None:
    app.state.idempotency_sealer = Sealer(settings.secret_key.get_secret_value(), "idempotency")
    app.add_exception_handler(_Replay, _replay)
