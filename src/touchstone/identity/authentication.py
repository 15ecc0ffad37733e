"""Sign-in, token rotation, sign-out, invitations, and the per-request authenticator."""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from touchstone.core.audit import record_audit
from touchstone.core.auth import API_KEY_PREFIX, Credential, Principal, TenantEntry
from touchstone.core.config import Settings
from touchstone.core.db import enter, enter_tenant
from touchstone.core.errors import InvalidInput, Unauthorized
from touchstone.core.permissions import ALL_PERMISSIONS, ROLE_PERMISSIONS, Role, permissions_for
from touchstone.core.ratelimit import RateLimiter
from touchstone.core.security import (
    AccessClaims,
    decode_access_token,
    digest_secret,
    hash_password,
    issue_access_token,
    new_token,
    verify_password,
)
from touchstone.identity import repository
from touchstone.identity.exceptions import (
    ApiKeyInvalid,
    InvalidCredentials,
    InvitationInvalid,
    LoginLocked,
    OrgChoiceRequired,
    RefreshTokenInvalid,
    RefreshTokenReused,
)
from touchstone.identity.models import (
    AuthSession,
    Invitation,
    RefreshToken,
    User,
)
from touchstone.identity.schemas import OrgChoice, TokenResponse
from touchstone.identity.service import revoke_sessions


def _user_principal(
    user_id: uuid.UUID,
    org_id: uuid.UUID,
    role: str,
    branch_id: uuid.UUID | None,
    platform_admin: bool,
    session_id: uuid.UUID | None,
) -> Principal:
    permissions = permissions_for(role)
    if platform_admin:
        permissions |= ROLE_PERMISSIONS[Role.PLATFORM_ADMIN]
    return Principal(
        kind="user",
        id=user_id,
        org_id=org_id,
        role=role,
        branch_id=branch_id,
        permissions=permissions,
        session_id=session_id,
    )


class LoginLockout:
    """`login_lockout_failures` failed sign-ins for one email within the window lock it for
    `login_lockout_seconds`, right password or not (OWASP API2: the per-address rate limit
    alone lets a botnet guess one account's password).

    Counted in the rate limiter's store, so with Redis every API process shares the count.
    Keys hold a digest of the email, never the address.
    """

    def __init__(self, limiter: RateLimiter, settings: Settings) -> None:
        self.limiter = limiter
        self.storage = limiter.storage
        self.settings = settings

    @staticmethod
    def _key(kind: str, email: str) -> str:
        return f"login-{kind}/{hashlib.sha256(email.encode()).hexdigest()}"

    async def ensure_open(self, email: str) -> None:
        key = self._key("locked", email)
        with self.limiter.unless_store_down():
            if await self.storage.get(key):
                expiry = await self.storage.get_expiry(key)
                retry = max(1, int(expiry - datetime.now(UTC).timestamp()))
                raise LoginLocked(headers={"Retry-After": str(retry)})

    async def failed(self, email: str) -> bool:
        """Count a failure; True when it is the one that locks the email."""
        settings = self.settings
        failures = self._key("failures", email)
        with self.limiter.unless_store_down():
            count = await self.storage.incr(failures, settings.login_lockout_window_seconds)
            if count < settings.login_lockout_failures:
                return False
            await self.storage.incr(self._key("locked", email), settings.login_lockout_seconds)
            await self.storage.clear(failures)
            return True
        return False


MAX_ACCOUNTS_PER_SIGN_IN = 10
"""Passwords checked for one email without `org`; beyond that the person names the org."""


async def login(
    session: AsyncSession,
    settings: Settings,
    email: str,
    password: str,
    org: str | None,
    lockout: LoginLockout,
) -> TokenResponse:
    """Check the password against the email's accounts, pick the org, open a session.

    Only accounts whose password matches are candidates: an account another tenant made with
    the same email neither blocks this sign-in nor shows its org (unknown emails cost the
    same one hash check).
    """
    await lockout.ensure_open(email)
    accounts = await repository.find_accounts(session, email)
    candidates = [a for a in accounts if org in (str(a.org_id), a.org_slug)] if org else accounts
    matched = [
        account
        for account in candidates[:MAX_ACCOUNTS_PER_SIGN_IN]
        if await verify_password(password, account.password_hash)
    ]
    if not candidates:
        await verify_password(password, None)
    if not matched:
        if await lockout.failed(email):
            await _audit_lockout(session, settings, accounts)
            raise LoginLocked(headers={"Retry-After": str(settings.login_lockout_seconds)})
        raise InvalidCredentials()
    if len(matched) > 1:
        choices = [OrgChoice.model_validate(a).model_dump(mode="json") for a in matched]
        raise OrgChoiceRequired(
            "This email and password open several organizations: send `org` (id or slug)",
            extra={"orgs": choices},
        )
    account = matched[0]
    await enter_tenant(session, account.org_id)
    auth_session = AuthSession(id=uuid.uuid4(), org_id=account.org_id, user_id=account.user_id)
    session.add(auth_session)
    principal = _user_principal(
        account.user_id,
        account.org_id,
        account.role,
        account.branch_id,
        account.is_platform_admin,
        auth_session.id,
    )
    await record_audit(session, principal, "auth.login", "user", account.user_id)
    return await _issue_tokens(session, settings, principal, auth_session.id)


async def _audit_lockout(
    session: AsyncSession, settings: Settings, accounts: Sequence[Any]
) -> None:
    """An `auth.locked_out` event in each org with an account for the email."""
    for account in accounts:
        await enter_tenant(session, account.org_id)
        await record_audit(
            session,
            None,
            "auth.locked_out",
            "user",
            account.user_id,
            {"failures": settings.login_lockout_failures},
            org_id=account.org_id,
        )
        await session.flush()


async def _issue_tokens(
    session: AsyncSession, settings: Settings, principal: Principal, session_id: uuid.UUID
) -> TokenResponse:
    refresh = f"rt_{new_token(32)}"
    session.add(
        RefreshToken(
            id=uuid.uuid4(),
            org_id=principal.org_id,
            session_id=session_id,
            token_hash=digest_secret(refresh),
            expires_at=datetime.now(UTC) + timedelta(seconds=settings.refresh_token_ttl_seconds),
        )
    )
    await session.flush()
    assert principal.user_id is not None
    access = issue_access_token(
        settings, AccessClaims(principal.user_id, principal.org_id, session_id)
    )
    return TokenResponse(
        access_token=access,
        expires_in=settings.access_token_ttl_seconds,
        refresh_token=refresh,
        org_id=principal.org_id,
    )


async def refresh(session: AsyncSession, settings: Settings, token: str) -> TokenResponse:
    """Rotate: the old token dies, a new one joins the family. A reused token kills the family."""
    token_hash = digest_secret(token)
    org_id = (
        await session.execute(text("select auth_refresh_token_org(:h)"), {"h": token_hash})
    ).scalar_one_or_none()
    if org_id is None:
        raise RefreshTokenInvalid()
    await enter_tenant(session, org_id)
    row = (
        await session.execute(
            select(RefreshToken, AuthSession)
            .join(AuthSession, AuthSession.id == RefreshToken.session_id)
            .where(RefreshToken.token_hash == token_hash, RefreshToken.org_id == org_id)
            .with_for_update()
        )
    ).one()
    stored, auth_session = row
    now = datetime.now(UTC)
    if auth_session.revoked_at is not None or stored.expires_at <= now:
        raise RefreshTokenInvalid()
    if stored.rotated_at is not None:
        auth_session.revoked_at, auth_session.revoked_reason = now, "refresh_token_reused"
        await record_audit(
            session,
            None,
            "auth.refresh_reuse_detected",
            "auth_session",
            auth_session.id,
            {"user_id": str(auth_session.user_id)},
            org_id=org_id,
        )
        raise RefreshTokenReused()
    stored.rotated_at = now
    try:
        principal = await enter(
            session, _session_entry(auth_session.user_id, org_id, auth_session.id)
        )
    except Unauthorized as exc:
        raise RefreshTokenInvalid() from exc
    return await _issue_tokens(session, settings, principal, auth_session.id)


async def logout(session: AsyncSession, principal: Principal) -> None:
    if principal.session_id is None:
        raise InvalidInput("API keys have no session to end; revoke the key instead")
    await session.execute(
        update(AuthSession)
        .where(AuthSession.id == principal.session_id, AuthSession.org_id == principal.org_id)
        .values(revoked_at=datetime.now(UTC), revoked_reason="logout")
    )
    await record_audit(session, principal, "auth.logout", "auth_session", principal.session_id)


async def change_password(
    session: AsyncSession, principal: Principal, current: str, new: str
) -> None:
    if principal.user_id is None:
        raise InvalidInput("Only users have passwords")
    query = select(User).where(User.org_id == principal.org_id, User.id == principal.user_id)
    user = (await session.execute(query)).scalar_one()
    if not await verify_password(current, user.password_hash):
        raise InvalidCredentials("The current password is wrong")
    user.password_hash = await hash_password(new)
    user.password_changed_at = datetime.now(UTC)
    # A changed password is how a user locks out whoever else knew the old one.
    await revoke_sessions(
        session, principal.org_id, user.id, reason="password_changed", keep=principal.session_id
    )
    await record_audit(session, principal, "user.password_changed", "user", user.id)


async def accept_invitation(session: AsyncSession, token: str, password: str) -> None:
    token_hash = digest_secret(token)
    org_id = (
        await session.execute(text("select auth_invitation_org(:h)"), {"h": token_hash})
    ).scalar_one_or_none()
    if org_id is None:
        raise InvitationInvalid()
    await enter_tenant(session, org_id)
    invitation = (
        await session.execute(
            select(Invitation).where(Invitation.token_hash == token_hash).with_for_update()
        )
    ).scalar_one()
    if invitation.accepted_at is not None or invitation.expires_at <= datetime.now(UTC):
        raise InvitationInvalid()
    user = (await session.execute(select(User).where(User.id == invitation.user_id))).scalar_one()
    invitation.accepted_at = datetime.now(UTC)
    user.password_hash = await hash_password(password)
    user.password_changed_at = invitation.accepted_at
    await record_audit(session, None, "user.invitation_accepted", "user", user.id, org_id=org_id)


def _session_entry(
    user_id: uuid.UUID,
    org_id: uuid.UUID,
    session_id: uuid.UUID,
    expires_at: datetime | None = None,
) -> TenantEntry:
    """A live sign-in: session not revoked, membership and account active (one SQL truth);
    `expires_at` is the access token's, so a stream opened with it ends when it does."""

    def to_principal(row: Sequence[Any] | None) -> Principal:
        if row is None:
            raise Unauthorized("The session has ended or the account is inactive")
        role, branch_id, platform_admin = row
        return _user_principal(user_id, org_id, role, branch_id, platform_admin, session_id)

    return TenantEntry(
        "select role, branch_id, is_platform_admin from auth_enter_session(%s, %s, %s)",
        (user_id, org_id, session_id),
        to_principal,
        caller=f"user:{user_id}",
        expires_at=expires_at.timestamp() if expires_at is not None else None,
    )


class IdentityAuthenticator:
    """Turns a bearer token or API key into the statement that checks it and enters its tenant.

    Verified access tokens are remembered with their entry until they expire, so a busy
    client does not pay for HMAC and claim checks on every request; the database still checks
    the session, membership and account on each one (`auth_enter_session`).
    """

    def __init__(self, settings: Settings, remembered_tokens: int = 10_000) -> None:
        self.settings = settings
        self._verified: dict[str, tuple[float, TenantEntry]] = {}
        """token -> (expiry as a timestamp, its entry)"""
        self._remembered_tokens = remembered_tokens

    def entry(self, credential: Credential) -> TenantEntry:
        if credential.kind == "api_key":
            return self._api_key_entry(credential.secret)
        token = credential.secret
        expires_at, entry = self._verified.get(token, (0.0, None))
        if entry is None or expires_at <= time.time():
            self._verified.pop(token, None)
            claims = decode_access_token(self.settings, token)
            entry = _session_entry(
                claims.user_id, claims.org_id, claims.session_id, claims.expires_at
            )
            if claims.expires_at is not None:
                if len(self._verified) >= self._remembered_tokens:
                    del self._verified[next(iter(self._verified))]  # the oldest
                self._verified[token] = (claims.expires_at.timestamp(), entry)
        return entry

    @staticmethod
    def _api_key_entry(presented: str) -> TenantEntry:
        prefix, _, secret = presented.removeprefix(API_KEY_PREFIX).partition("_")
        # Prefixes are short ASCII alphanumerics; anything else (a NUL byte would make
        # PostgreSQL fail the lookup as a 500) cannot name a key.
        well_formed = prefix.isascii() and prefix.isalnum() and len(prefix) <= 16
        if not presented.startswith(API_KEY_PREFIX) or not well_formed or not secret:
            raise ApiKeyInvalid()

        def to_principal(row: Sequence[Any] | None) -> Principal:
            if row is None:
                raise ApiKeyInvalid()
            key_id, org_id, scopes = row
            return Principal(
                kind="api_key",
                id=key_id,
                org_id=org_id,
                role=None,
                branch_id=None,
                permissions=frozenset(scopes) & ALL_PERMISSIONS,
            )

        digest = digest_secret(secret)
        return TenantEntry(
            "select id, org_id, scopes from auth_enter_api_key(%s, %s)",
            (prefix, digest),
            to_principal,
            # the digest too: someone who only knows a key's visible prefix cannot spend its budget
            caller=f"api_key:{prefix}:{digest[:16]}",
        )
