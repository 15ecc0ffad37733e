"""The identity emails: an invitation and a password-reset link, each in text and HTML.

Links go to the account pages (`pages.py`) with the token in the URL's fragment, which a
browser never sends to a server: it stays out of access logs, proxies and Referer headers.
They start at PUBLIC_URL, never at a request's Host header (which whoever asks chooses:
the classic way to receive someone else's reset link).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from touchstone.core.auth import Principal
from touchstone.core.config import Settings
from touchstone.core.email import EmailTemplates, queue_email
from touchstone.core.email.models import OutboundEmail

TEMPLATES = EmailTemplates(Path(__file__).with_name("templates") / "email")
INVITATION_PAGE = "/app/account/invitation"
PASSWORD_RESET_PAGE = "/app/account/password-reset"  # noqa: S105 (a path)


def _link(settings: Settings, page: str, token: str) -> str:
    return f"{settings.link_base}{page}#token={token}"


def _when(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC"


async def send_invitation(
    session: AsyncSession,
    settings: Settings,
    *,
    org_id: uuid.UUID,
    org_name: str,
    to_address: str,
    to_name: str,
    role: str,
    token: str,
    expires_at: datetime,
    principal: Principal | None,
) -> OutboundEmail:
    mail = TEMPLATES.render(
        "invitation",
        to_address,
        to_name,
        org_name=org_name,
        role=role.replace("_", " "),
        link=_link(settings, INVITATION_PAGE, token),
        expires_at=_when(expires_at),
    )
    return await queue_email(
        session, settings, org_id, mail, kind="invitation", principal=principal
    )


async def send_password_reset(
    session: AsyncSession,
    settings: Settings,
    *,
    org_id: uuid.UUID,
    org_name: str,
    to_address: str,
    to_name: str,
    token: str,
    expires_at: datetime,
) -> OutboundEmail:
    mail = TEMPLATES.render(
        "password_reset",
        to_address,
        to_name,
        org_name=org_name,
        link=_link(settings, PASSWORD_RESET_PAGE, token),
        expires_at=_when(expires_at),
    )
    return await queue_email(session, settings, org_id, mail, kind="password_reset")
