"""The sending job: open the sealed message, hand it to the engine, record the outcome.

Attempts are 3 s, 9 s, 27 s, 81 s, ~4 min, ~12 min and ~36 min apart (`3 ** n`): a mail
server that greylists or is down for maintenance gets about an hour before the email fails.
A 5xx refusal fails it at once. Either way the outbox row says why, and the job API too.
No database transaction is held while the mail server is talked to.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from touchstone.core.crypto import InvalidToken
from touchstone.core.db import Database
from touchstone.core.email.engine import email_engine
from touchstone.core.email.message import open_message
from touchstone.core.email.models import MAX_ERROR_LENGTH, EmailStatus, OutboundEmail
from touchstone.core.errors import AppError
from touchstone.core.jobs.runtime import JobRun, job, system_job

MAX_ATTEMPTS = 8
BACKOFF_SECONDS = 3
JOB_TIMEOUT_SECONDS = 120
RETENTION_DAYS = 30


class EmailUnreadable(AppError):
    status, code, title = 422, "email_unreadable", "The queued email cannot be opened"


async def _load(session: AsyncSession, org_id: uuid.UUID, email_id: str) -> OutboundEmail | None:
    query = select(OutboundEmail).where(
        OutboundEmail.org_id == org_id, OutboundEmail.id == uuid.UUID(email_id)
    )
    return (await session.execute(query.with_for_update())).scalar_one_or_none()


async def email_ended(
    session: AsyncSession, org_id: uuid.UUID, problem: dict[str, Any], *, email_id: str
) -> None:
    """The job ended without sending (refused, out of attempts, cancelled): the email fails
    with the reason, and its sealed message is erased."""
    email = await _load(session, org_id, email_id)
    if email is None or email.status != EmailStatus.QUEUED:
        return
    email.status = EmailStatus.FAILED
    email.sealed_message = None
    email.last_error = (problem.get("detail") or problem["title"])[:MAX_ERROR_LENGTH]


@job(
    read_permission="users:write",
    on_end=email_ended,
    queue="default",
    max_attempts=MAX_ATTEMPTS,
    backoff_seconds=BACKOFF_SECONDS,
    timeout_seconds=JOB_TIMEOUT_SECONDS,
)
async def send_email(run: JobRun, email_id: str) -> dict[str, Any]:
    async with run.transaction() as session:
        email = await _load(session, run.org_id, email_id)
        if email is None:
            return {"email_id": email_id, "status": "gone"}
        if email.status != EmailStatus.QUEUED or email.sealed_message is None:
            return {"email_id": email_id, "status": email.status}
        try:
            message = open_message(run.settings, email.sealed_message)
        except InvalidToken:
            raise EmailUnreadable("It was sealed with another SECRET_KEY") from None
        recipient = email.to_address

    try:
        await email_engine(run.settings).send(message, [recipient])
    except AppError as exc:
        async with run.transaction() as session:
            if (email := await _load(session, run.org_id, email_id)) is not None:
                email.attempts += 1
                email.last_error = exc.detail[:MAX_ERROR_LENGTH]
        raise

    async with run.transaction() as session:
        if (email := await _load(session, run.org_id, email_id)) is not None:
            email.attempts += 1
            email.status = EmailStatus.SENT
            email.sent_at = datetime.now(UTC)
            email.sealed_message = None
            email.last_error = None
    return {"email_id": email_id, "status": EmailStatus.SENT}


@system_job(cron="57 3 * * *")
async def purge_outbound_emails(database: Database) -> None:
    """Sent and failed emails are kept a month (who was sent what, and when), then forgotten."""
    async with database.transaction() as session:
        await session.execute(text("select purge_outbound_emails(:days)"), {"days": RETENTION_DAYS})
