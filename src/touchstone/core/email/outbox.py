"""Queueing an email: its sealed message and its sending job, in the caller's transaction."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from touchstone.core.auth import Principal, system_principal
from touchstone.core.config import Settings
from touchstone.core.email.message import Mail, build_message, seal_message
from touchstone.core.email.models import EmailStatus, OutboundEmail
from touchstone.core.email.tasks import send_email
from touchstone.core.jobs import defer


async def queue_email(
    session: AsyncSession,
    settings: Settings,
    org_id: uuid.UUID,
    mail: Mail,
    *,
    kind: str,
    principal: Principal | None = None,
) -> OutboundEmail:
    """The email leaves when the transaction commits (a job), never before and never lost.

    `principal` is who asked (an admin inviting someone); the job is the platform's when
    none did, or when the asker acts from another org (a platform admin creating one)."""
    message = build_message(mail, settings.email_from)
    email = OutboundEmail(
        id=uuid.uuid4(),
        org_id=org_id,
        kind=kind,
        to_address=mail.to_address,
        subject=str(message["Subject"]),
        status=EmailStatus.QUEUED,
        attempts=0,
        sealed_message=seal_message(settings, message),
    )
    session.add(email)
    await session.flush()
    if principal is None or principal.org_id != org_id:
        principal = system_principal(org_id)
    record = await defer(session, principal, send_email, email_id=str(email.id))
    email.job_id = record.id
    return email
