"""Forgotten passwords: a one-time, expiring link by email, then a new password.

Asking (`request_reset`) answers the same whatever the email: the request only seals what
was asked and queues a job, the same work for every address, so neither the answer, its
time nor its side effects tell whether an account exists. The job (`issue_resets`) looks
the email up across tenants and sends one email per active account, each naming its org.
A link is stored as a digest, expires (PASSWORD_RESET_TTL_SECONDS), works once, dies when a
newer one is sent or the password changes, and using it ends every session of the account.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from touchstone.core.audit import record_audit
from touchstone.core.config import Settings
from touchstone.core.crypto import Sealer
from touchstone.core.db import enter_tenant
from touchstone.core.errors import TooManyRequests
from touchstone.core.jobs import defer_platform_job
from touchstone.core.ratelimit import RateLimiter
from touchstone.core.security import digest_secret, hash_password, new_token
from touchstone.identity import emails, repository, tasks
from touchstone.identity.exceptions import PasswordResetInvalid
from touchstone.identity.models import Invitation, PasswordResetToken, User
from touchstone.identity.service import revoke_sessions

MAX_ACCOUNTS_PER_REQUEST = 10
"""Emails sent for one address without `org` (the same cap as a sign-in's password checks)."""
REQUEST_SEAL = "password-reset-request"


def _request_sealer(settings: Settings) -> Sealer:
    return Sealer(settings.secret_key.get_secret_value(), REQUEST_SEAL)


async def request_reset(
    session: AsyncSession,
    settings: Settings,
    limiter: RateLimiter,
    email: str,
    org: str | None,
) -> None:
    """Queue the lookup; beyond the per-email limit, quietly nothing (same answer)."""
    digest = hashlib.sha256(email.encode()).hexdigest()  # keys never hold the address
    try:
        await limiter.hit(settings.password_reset_rate_limit_per_email, "reset-email", digest)
    except TooManyRequests:
        return
    sealed = _request_sealer(settings).seal(json.dumps({"email": email, "org": org}))
    await defer_platform_job(session, tasks.issue_password_resets, request=sealed)


async def issue_resets(session: AsyncSession, settings: Settings, sealed_request: str) -> int:
    """One new link per active account with the email (in `org` only, when named); returns
    how many were sent. Runs in a job, in one transaction: all of them or none."""
    asked = json.loads(_request_sealer(settings).open(sealed_request))
    email, org = asked["email"], asked.get("org")
    accounts = await repository.find_accounts(session, email)
    if org:
        accounts = [a for a in accounts if org in (str(a.org_id), a.org_slug)]
    now = datetime.now(UTC)
    expires_at = now + timedelta(seconds=settings.password_reset_ttl_seconds)
    for account in accounts[:MAX_ACCOUNTS_PER_REQUEST]:
        await enter_tenant(session, account.org_id)
        query = select(User).where(User.org_id == account.org_id, User.id == account.user_id)
        user = (await session.execute(query)).scalar_one()
        await _revoke_links(session, user, now)
        token = new_token()
        session.add(
            PasswordResetToken(
                org_id=account.org_id,
                user_id=user.id,
                token_hash=digest_secret(token),
                expires_at=expires_at,
            )
        )
        await emails.send_password_reset(
            session,
            settings,
            org_id=account.org_id,
            org_name=account.org_name,
            to_address=user.email,
            to_name=user.full_name,
            token=token,
            expires_at=expires_at,
        )
        await record_audit(
            session,
            None,
            "user.password_reset_requested",
            "user",
            user.id,
            org_id=account.org_id,
        )
        await session.flush()  # before the next account's tenant
    return min(len(accounts), MAX_ACCOUNTS_PER_REQUEST)


async def _revoke_links(session: AsyncSession, user: User, now: datetime) -> None:
    await session.execute(
        update(PasswordResetToken)
        .where(
            PasswordResetToken.org_id == user.org_id,
            PasswordResetToken.user_id == user.id,
            PasswordResetToken.used_at.is_(None),
            PasswordResetToken.revoked_at.is_(None),
        )
        .values(revoked_at=now)
    )


async def confirm_reset(session: AsyncSession, token: str, password: str) -> None:
    token_hash = digest_secret(token)
    org_id = (
        await session.execute(text("select auth_password_reset_org(:h)"), {"h": token_hash})
    ).scalar_one_or_none()
    if org_id is None:
        raise PasswordResetInvalid()
    await enter_tenant(session, org_id)
    link = (
        await session.execute(
            select(PasswordResetToken)
            .where(PasswordResetToken.org_id == org_id, PasswordResetToken.token_hash == token_hash)
            .with_for_update()
        )
    ).scalar_one()
    now = datetime.now(UTC)
    if link.used_at is not None or link.revoked_at is not None or link.expires_at <= now:
        raise PasswordResetInvalid()
    user = (
        await session.execute(
            select(User).where(User.org_id == org_id, User.id == link.user_id).with_for_update()
        )
    ).scalar_one()
    membership = await repository.get_membership(session, org_id, user.id)
    org = await repository.get_org(session, org_id)
    can_sign_in = user.is_active and membership is not None and membership.is_active
    if not (can_sign_in and org is not None and org.is_active):
        raise PasswordResetInvalid()
    if user.password_changed_at is not None and user.password_changed_at > link.created_at:
        raise PasswordResetInvalid()  # changed since the link was sent: the link is stale

    link.used_at = now
    await _revoke_links(session, user, now)
    user.password_hash = await hash_password(password)
    user.password_changed_at = now
    # An invitation still open would set the password again: this one is the account's now.
    await session.execute(
        update(Invitation)
        .where(
            Invitation.org_id == org_id,
            Invitation.user_id == user.id,
            Invitation.accepted_at.is_(None),
        )
        .values(accepted_at=now)
    )
    await revoke_sessions(session, org_id, user.id, reason="password_reset")
    await record_audit(session, None, "user.password_reset", "user", user.id, org_id=org_id)
