"""An appraisal's tamper-evident trail: each event's hash covers the one before it.

`hash = sha256(prev_hash + canonical(event))`, where the canonical form is sorted-key JSON
of everything the row says (seq, time, actor, action, data). Editing, removing or reordering
any row changes that row's hash or breaks the link of the next one, so `verify` finds the
first broken event. The table is append-only for the runtime role (no UPDATE/DELETE); the
chain is what catches changes made past that, e.g. by someone with the owner's password.

Appends serialise on the appraisal's row lock (callers hold `FOR UPDATE`), so two requests
never both take the same `seq`.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from touchstone.appraisal.models import ChainEvent
from touchstone.core.auth import Principal
from touchstone.core.db import utcnow

GENESIS = "0" * 64


def canonical(
    appraisal_id: uuid.UUID,
    seq: int,
    occurred_at: datetime,
    actor_type: str,
    actor_id: uuid.UUID | None,
    action: str,
    data: dict[str, Any],
) -> bytes:
    body = {
        "appraisal_id": str(appraisal_id),
        "seq": seq,
        "occurred_at": occurred_at.astimezone(UTC).isoformat(timespec="microseconds"),
        "actor_type": actor_type,
        "actor_id": None if actor_id is None else str(actor_id),
        "action": action,
        "data": data,
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()


def link(prev_hash: str, event: bytes) -> str:
    return hashlib.sha256(prev_hash.encode() + event).hexdigest()


class ChainRow(NamedTuple):
    """One stored event as `verify` checks it: what its hash covers, and its links."""

    seq: int
    occurred_at: datetime
    actor_type: str
    actor_id: uuid.UUID | None
    action: str
    data: dict[str, Any]
    prev_hash: str
    hash: str
    appraisal_id: uuid.UUID


def _row_bytes(row: ChainRow) -> bytes:
    return canonical(
        row.appraisal_id,
        row.seq,
        row.occurred_at,
        row.actor_type,
        row.actor_id,
        row.action,
        row.data,
    )


async def append(
    session: AsyncSession,
    actor: Principal,
    appraisal_id: uuid.UUID,
    action: str,
    data: dict[str, Any] | None = None,
) -> ChainEvent:
    """Add one event after the appraisal's last (the caller holds the appraisal's row lock)."""
    last = (
        await session.execute(
            select(ChainEvent.seq, ChainEvent.hash)
            .where(ChainEvent.org_id == actor.org_id, ChainEvent.appraisal_id == appraisal_id)
            .order_by(ChainEvent.seq.desc())
            .limit(1)
        )
    ).one_or_none()
    seq, prev_hash = (1, GENESIS) if last is None else (last.seq + 1, last.hash)
    # JSON round trip: the hash must cover exactly what JSONB gives back when verifying.
    stored = json.loads(json.dumps(data or {}, sort_keys=True, default=str))
    occurred_at = utcnow()
    row = ChainEvent(
        id=uuid.uuid4(),
        org_id=actor.org_id,
        appraisal_id=appraisal_id,
        seq=seq,
        occurred_at=occurred_at,
        actor_type=actor.kind,
        actor_id=actor.id,
        action=action,
        data=stored,
        prev_hash=prev_hash,
        hash=link(
            prev_hash,
            canonical(appraisal_id, seq, occurred_at, actor.kind, actor.id, action, stored),
        ),
    )
    session.add(row)
    await session.flush()
    return row


@dataclass(frozen=True, slots=True)
class Verification:
    valid: bool
    events: int
    first_broken_seq: int | None
    head_hash: str | None


def verify(rows: Sequence[ChainRow]) -> Verification:
    """Recompute every link; the first row whose hash or predecessor does not match is named."""
    prev_hash = GENESIS
    for expected_seq, row in enumerate(rows, start=1):
        if (
            row.seq != expected_seq
            or row.prev_hash != prev_hash
            or row.hash != link(prev_hash, _row_bytes(row))
        ):
            return Verification(False, len(rows), row.seq, rows[-1].hash)
        prev_hash = row.hash
    return Verification(True, len(rows), None, rows[-1].hash if rows else None)
