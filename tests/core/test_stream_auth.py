"""`StreamAuthorization`'s rules, with entry statements whose answer the test chooses.

The end-to-end cases (logout, deactivation, a revoked key, expiry, over SSE, WebSocket and
WebRTC) are in tests/core/events/test_stream_auth.py and tests/appraisal/purity/live/test_api.py.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from typing import Any

import pytest

from touchstone.core.auth import Principal, TenantEntry
from touchstone.core.db import Database
from touchstone.core.errors import Forbidden, Unauthorized
from touchstone.core.permissions import Role, permissions_for
from touchstone.core.stream_auth import StreamAuthorization, close_code

BRANCH = uuid.uuid4()


def appraiser(role: Role = Role.APPRAISER, branch: uuid.UUID | None = BRANCH) -> Principal:
    return Principal(
        kind="user",
        id=uuid.UUID(int=1),
        org_id=uuid.UUID(int=2),
        role=role.value,
        branch_id=branch,
        permissions=permissions_for(role),
    )


def entry_answering(
    now: Principal | None, expires_at: float | None = None, asked: list[int] | None = None
) -> TenantEntry:
    """An entry whose statement the database really runs, and whose caller is `now` (None:
    the credential is dead)."""

    def to_principal(row: Sequence[Any] | None) -> Principal:
        assert row == (1,)
        if asked is not None:
            asked.append(1)
        if now is None:
            raise Unauthorized("The session has ended or the account is inactive")
        return now

    return TenantEntry("select 1", (), to_principal, caller="test", expires_at=expires_at)


def authorization(
    database: Database, entry: TenantEntry, needs: frozenset[str] = frozenset({"purity:test"})
) -> StreamAuthorization:
    return StreamAuthorization(database, entry, appraiser(), needs, recheck_seconds=60)


async def test_a_check_passes_while_the_principal_still_covers_the_stream(
    database: Database,
) -> None:
    promoted = appraiser(Role.BRANCH_MANAGER)  # other permissions, same branch
    check = authorization(database, entry_answering(promoted), frozenset({"appraisals:read"}))
    await check.check()
    assert check.due_in() > 0


@pytest.mark.parametrize(
    ("now", "error", "code"),
    [
        (None, Unauthorized, 4401),
        (appraiser(Role.VIEWER), Forbidden, 1008),  # lost purity:test
        (appraiser(branch=uuid.uuid4()), Forbidden, 1008),  # moved to another branch
        (appraiser(branch=None), Forbidden, 1008),  # no longer branch-bound: reopen to see more
    ],
)
async def test_a_check_fails_when_the_credential_or_the_principal_no_longer_holds(
    database: Database, now: Principal | None, error: type[Exception], code: int
) -> None:
    with pytest.raises(error) as raised:
        await authorization(database, entry_answering(now)).check()
    assert close_code(raised.value) == code  # type: ignore[arg-type]


async def test_an_expired_credential_fails_without_asking_the_database(
    database: Database,
) -> None:
    asked: list[int] = []
    check = authorization(database, entry_answering(appraiser(), time.time() - 1, asked))
    assert check.due_in() == 0  # due at the expiry, not after the interval
    with pytest.raises(Unauthorized, match="expired"):
        await check.check()
    assert asked == []


async def test_guard_returns_the_failure_and_cancels_the_work(database: Database) -> None:
    check = StreamAuthorization(
        database, entry_answering(None), appraiser(), frozenset(), recheck_seconds=0.01
    )
    work_cancelled = asyncio.Event()

    async def work() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            work_cancelled.set()

    ended = await asyncio.wait_for(check.guard(work()), 30)
    assert isinstance(ended, Unauthorized)
    assert work_cancelled.is_set()


async def test_guard_returns_none_when_the_work_ends_first(database: Database) -> None:
    check = authorization(database, entry_answering(appraiser()))

    async def work() -> None:
        return None

    assert await check.guard(work()) is None


def test_a_stream_cannot_need_a_permission_it_was_not_granted(database: Database) -> None:
    with pytest.raises(ValueError, match="statements:read"):
        authorization(database, entry_answering(appraiser()), frozenset({"statements:read"}))
