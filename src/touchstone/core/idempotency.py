"""Idempotency-Key for creating requests (draft-ietf-httpapi-idempotency-key-header).

A route on the write path takes `tenant_write(..., idempotent=True)` (`core.writes`); one on
the ORM session adds `idempotency: IdempotencyDep` and returns
`idempotency.remember(result, 201)`. Both claim the key with `CLAIMED`, under a
transaction-level advisory lock, and store its outcome in the same transaction as the
effect, so twenty identical requests in parallel make one effect: one runs, the ones that
overlap it get `409`, later ones get the stored response again.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, NoReturn, TypeVar

from fastapi import Depends, FastAPI, Header, Request
from fastapi.responses import JSONResponse
from psycopg.types.json import Jsonb
from pydantic import BaseModel
from sqlalchemy import Uuid, bindparam, column, select, text
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


@dataclass(frozen=True, slots=True)
class IdempotencyKey:
    """A request's key and what it is checked and stored under (`core.writes` and the
    session path below share it)."""

    key: str
    route: str
    fingerprint: str
    ttl: timedelta
    sealer: Sealer

    def owner(self, principal: Principal) -> dict[str, Any]:
        """The key's row is unique per org, principal, route and key."""
        owner = {
            "org": principal.org_id,
            "principal": f"{principal.kind}:{principal.id}",
            "route": self.route,
            "key": self.key,
        }
        return owner

    def claim_values(
        self, principal: Principal, outcome: BaseModel | None = None, status_code: int = 0
    ) -> dict[str, Any]:
        """The values of `CLAIM`: a new row, holding `outcome` sealed when it is known."""
        owner = self.owner(principal)
        return {
            **owner,
            "id": uuid.uuid4(),
            "status_code": status_code if outcome is not None else 0,
            "sealed_body": "" if outcome is None else self.sealer.seal(outcome.model_dump_json()),
            "headers": Jsonb({}),
            "fingerprint": self.fingerprint,
            "expires_at": datetime.now(UTC) + self.ttl,
            "lock": "|".join(str(v) for v in owner.values()),
        }

    def settle(
        self, status_code: int, fingerprint: str, sealed_body: str, headers: Any
    ) -> NoReturn:
        """The outcome stored for this key when `CLAIM` found it taken: the twin still
        running (409), a different request under the same key (422), or the stored response
        replayed."""
        if status_code == 0:
            raise IdempotencyKeyInFlight("Retry once the first request has finished")
        if fingerprint != self.fingerprint:
            raise IdempotencyKeyReused("Send a new key for a different request")
        raise _Replay(status_code, json.loads(self.sealer.open(sealed_body)), headers)


class Idempotency:
    """The key of a request on `SessionDep` (ORM): claimed in the session's transaction."""

    def __init__(
        self, session: AsyncSession, principal: Principal, key: IdempotencyKey | None
    ) -> None:
        self.session = session
        self.principal = principal
        self.key = key
        self._record: IdempotencyRecord | None = None

    async def claim(self) -> None:
        """Refuse a concurrent twin, replay a finished one, or let this request run.

        One statement on the common path: the key's row is inserted only if this request
        wins the transaction-level advisory lock and no row exists yet; `remember` fills it.
        """
        if self.key is None:
            return
        values = self.key.claim_values(self.principal)
        inserted = (await self.session.execute(CLAIM, values)).scalar_one_or_none()
        if inserted is not None:
            self._record = IdempotencyRecord(
                id=inserted,
                org_id=self.principal.org_id,
                principal=values["principal"],
                route=self.key.route,
                key=self.key.key,
                fingerprint=self.key.fingerprint,
                status_code=0,
                sealed_body="",
                headers={},
                expires_at=values["expires_at"],
            )
            make_transient_to_detached(self._record)  # known to exist: updated, not inserted
            self.session.add(self._record)
            return
        stored = (await self.session.execute(STORED, self.key.owner(self.principal))).one_or_none()
        if stored is None:  # claimed by a transaction not yet committed
            raise IdempotencyKeyInFlight("Retry once the first request has finished")
        self.key.settle(*stored)

    def remember(
        self, result: M, status_code: int = 201, headers: dict[str, str] | None = None
    ) -> M:
        """Store the response with the effect (same transaction) and return it unchanged."""
        if self._record is not None and self.key is not None:
            self._record.status_code = status_code
            self._record.sealed_body = self.key.sealer.seal(result.model_dump_json())
            self._record.headers = headers or {}
        return result


CLAIMED = (
    text(
        "INSERT INTO idempotency_keys (id, org_id, principal, route, key, fingerprint,"
        " status_code, sealed_body, headers, expires_at, created_at)"
        " SELECT :id, :org, :principal, :route, :key, :fingerprint, :status_code,"
        " :sealed_body, :headers, :expires_at, now()"
        " WHERE pg_try_advisory_xact_lock(hashtextextended(:lock, 0))"
        " ON CONFLICT (org_id, principal, route, key) DO UPDATE SET id = excluded.id,"
        " fingerprint = excluded.fingerprint, status_code = excluded.status_code,"
        " sealed_body = excluded.sealed_body, headers = excluded.headers,"
        " expires_at = excluded.expires_at, created_at = now()"
        " WHERE idempotency_keys.expires_at <= clock_timestamp() RETURNING id"
    )
    .columns(column("id", Uuid))
    .cte("claimed")
)
"""Claim a key: insert its row, or take over an expired one, only if this transaction wins
the key's advisory lock. `claimed` holds the row's id, or nothing when the key is taken (a
twin running, or a stored outcome still valid). The row holds the outcome when it is known
before the change runs (`core.writes`), else status 0 until `remember` fills it."""
CLAIM = select(CLAIMED.c.id)
STORED = select(
    IdempotencyRecord.status_code,
    IdempotencyRecord.fingerprint,
    IdempotencyRecord.sealed_body,
    IdempotencyRecord.headers,
).where(
    IdempotencyRecord.org_id == bindparam("org"),
    IdempotencyRecord.principal == bindparam("principal"),
    IdempotencyRecord.route == bindparam("route"),
    IdempotencyRecord.key == bindparam("key"),
)
"""The outcome stored under a key that `CLAIM` found taken, for `IdempotencyKey.settle`."""


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


IdempotencyHeader = Annotated[
    str | None,
    # Declared, not checked in code, so the OpenAPI document says what is refused.
    Header(alias="Idempotency-Key", pattern=KEY, description="1-255 visible ASCII characters"),
]


async def idempotency_key(request: Request, key: str | None) -> IdempotencyKey | None:
    """The request's key (None without one), with the route and request it belongs to."""
    if key is None:
        return None
    return IdempotencyKey(
        key,
        f"{request.method} {route_template(request.scope)}",
        await _fingerprint(request),
        timedelta(seconds=request.app.state.settings.idempotency_ttl_seconds),
        request.app.state.idempotency_sealer,
    )


async def idempotency(
    request: Request,
    session: SessionDep,
    principal: CurrentPrincipal,
    key: IdempotencyHeader = None,
) -> Idempotency:
    guard = Idempotency(session, principal, await idempotency_key(request, key))
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
