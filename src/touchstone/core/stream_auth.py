"""Authorization that lasts as long as a live stream: re-checked, never remembered.

A request is authorized once because it is over in milliseconds. An event stream, a purity
WebSocket or a WebRTC session stays open for hours, so a check made only when it opened let
it outlive a logout, a deactivated member, user or org, a revoked API key, a role change and
the access token's own expiry. Every long-lived stream therefore holds a
`StreamAuthorization` and ends when it fails:

* every `stream_recheck_seconds`, the credential's entry statement runs again: the same
  `TenantEntry` SQL as every request, so there is one definition of a live credential (and
  whatever it learns to check, an inactive org for one, streams check too), sent in one round
  trip (`core.reads.confirm`);
* at the credential's `expires_at` (an access token's `exp`) it ends without asking;
* the principal is recomputed from that row: a stream ends when it lost a permission the
  stream serves, or its branch scope moved, because the stream filters what it sends by the
  principal it opened with.

Why a periodic check rather than a push on logout: a session ends in many ways (logout, a
password change, a reused refresh token, deactivating a membership, a user or an org,
deleting a key, expiry), in several modules and several processes; a notification from each
would be a second definition of "ended" that can drift from the SQL, and a forgotten one
fails open. One primary-key lookup per stream per interval is bounded and cannot be
forgotten; the interval is the most a stream outlives its credential.

A check that cannot be made (the database unreachable) ends the stream too, as
`ServiceUnavailable`: clients reconnect and resume (`Last-Event-ID`, a resumable purity
test), and nothing is delivered on an authorization no one could confirm.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable

import structlog
from fastapi import WebSocket, status

from touchstone.core.auth import API_KEY_PREFIX, Authenticator, Credential, Principal, TenantEntry
from touchstone.core.db import Database, enter
from touchstone.core.errors import AppError, Forbidden, ServiceUnavailable, Unauthorized
from touchstone.core.reads import confirm

log = structlog.get_logger("touchstone.stream_auth")
WS_UNAUTHORIZED = 4401
"""WebSocket close code for a credential that is no longer valid (4000-4999 are the
application's; 4401 mirrors HTTP 401, the convention of GraphQL-over-WebSocket servers)."""


class StreamAuthorization:
    """The authorization of one open stream: `principal` as it opened, kept honest."""

    def __init__(
        self,
        database: Database,
        entry: TenantEntry,
        principal: Principal,
        needs: frozenset[str],
        recheck_seconds: float,
    ) -> None:
        """`needs`: the permissions the stream serves; it ends when the principal loses any
        of them. Each must be held now (the route refused the stream otherwise)."""
        if not needs <= principal.permissions:
            raise ValueError(f"the stream needs {sorted(needs - principal.permissions)}")
        self.database = database
        self.entry = entry
        self.principal = principal
        self.needs = needs
        self.recheck_seconds = recheck_seconds
        self._due = 0.0
        self._schedule()

    def _schedule(self) -> None:
        wait = self.recheck_seconds
        if self.entry.expires_at is not None:
            wait = min(wait, max(0.0, self.entry.expires_at - time.time()))
        self._due = time.monotonic() + wait

    def due_in(self) -> float:
        """Seconds until the next check (0 when it is due)."""
        return max(0.0, self._due - time.monotonic())

    async def check(self) -> None:
        """Confirm the credential and the principal's hold on the stream, or raise:
        `Unauthorized` (the credential ended), `Forbidden` (a permission the stream needs
        was removed, or the branch changed), `ServiceUnavailable` (no answer)."""
        if self.entry.expires_at is not None and time.time() >= self.entry.expires_at:
            raise Unauthorized("The access token has expired")
        try:
            current = await confirm(self.database, self.entry)
        except AppError:
            raise
        except Exception as exc:
            log.warning("stream_recheck_failed", error=type(exc).__name__)
            raise ServiceUnavailable("The stream's credential could not be re-checked") from exc
        if not self.needs <= current.permissions:
            raise Forbidden(f"The stream needs {', '.join(sorted(self.needs))}")
        if current.branch_scope != self.principal.branch_scope:
            raise Forbidden("The member's branch changed; open the stream again")
        self._schedule()

    async def watch(self) -> AppError:
        """Check on schedule until a check fails; that failure."""
        while True:
            await asyncio.sleep(self.due_in())
            try:
                await self.check()
            except AppError as error:
                return error

    async def guard(self, work: Awaitable[None]) -> AppError | None:
        """Run `work` (a stream's receiving loop) while the authorization holds: None when
        the work ended by itself (its exception, if any, propagates), or the failure that
        ended the authorization first (the work is then cancelled)."""
        worker = asyncio.ensure_future(work)
        watcher = asyncio.create_task(self.watch())
        try:
            await asyncio.wait({worker, watcher}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (worker, watcher):
                task.cancel()
            await asyncio.gather(worker, watcher, return_exceptions=True)
        if not watcher.cancelled():
            return watcher.result()
        worker.result()
        return None


def close_code(error: AppError) -> int:
    """The WebSocket close code for a stream ended by `error`: 4401 for a dead credential,
    1008 (policy violation) for a permission, 1013 (try again later) for the server's
    own trouble."""
    if isinstance(error, Unauthorized):
        return WS_UNAUTHORIZED
    if error.status < 500:
        return status.WS_1008_POLICY_VIOLATION
    return status.WS_1013_TRY_AGAIN_LATER


def websocket_credential(websocket: WebSocket, access_token: str | None) -> Credential | None:
    """The socket's credential: `X-API-Key`, a bearer token, or `?access_token=`, since
    browsers cannot set headers on a WebSocket. None when it sent none."""
    if key := websocket.headers.get("x-api-key"):
        return Credential("api_key", key)
    authorization = websocket.headers.get("authorization", "")
    token = authorization.removeprefix("Bearer ").strip() if authorization else access_token
    if not token:
        return None
    return Credential("api_key" if token.startswith(API_KEY_PREFIX) else "access_token", token)


async def authorize_websocket(
    websocket: WebSocket, access_token: str | None, permission: str
) -> StreamAuthorization:
    """The socket's caller, held to `permission` for as long as the socket stays open;
    `Unauthorized` without a live credential, `Forbidden` without the permission."""
    credential = websocket_credential(websocket, access_token)
    if credential is None:
        raise Unauthorized("Send a bearer token, an X-API-Key header or access_token")
    state = websocket.app.state
    authenticator: Authenticator = state.authenticator
    database: Database = state.database
    entry = authenticator.entry(credential)
    async with database.transaction() as session:
        principal = await enter(session, entry)
    principal.ensure(permission)
    return StreamAuthorization(
        database, entry, principal, frozenset({permission}), state.settings.stream_recheck_seconds
    )
