"""Sign-in, token rotation, sign-out, invitations, and the per-request authenticator."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from touchstone.core.audit import record_audit
from touchstone.core.auth import API_KEY_PREFIX, Credential, Principal
from touchstone.core.config import Settings
from touchstone.core.db import enter_tenant
from touchstone.core.errors import InvalidInput, Unauthorized
from touchstone.core.permissions import ALL_PERMISSIONS, ROLE_PERMISSIONS, Role, permissions_for
from touchstone.core.security import (
    AccessClaims,
    decode_access_token,
    digest_secret,
    hash_password,
    issue_access_token,
    new_token,
    secrets_match,
    verify_password,
)
from touchstone.identity import repository
from touchstone.identity.exceptions import (
    ApiKeyInvalid,
    InvalidCredentials,
    InvitationInvalid,
    OrgChoiceRequired,
    RefreshTokenInvalid,
    RefreshTokenReused,
)
from touchstone.identity.models import (
    ApiKey,
    AuthSession,
    Invitation,
    Membership,
    RefreshToken,
    User,
)
from touchstone.identity.schemas import OrgChoice, TokenResponse
from touchstone.identity.service import revoke_sessions

API_KEY_TOUCH_INTERVAL = timedelta(seconds=60)


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


async def login(
    session: AsyncSession, settings: Settings, email: str, password: str, org: str | None
) -> TokenResponse:
    """Check the password (same work for unknown emails), pick the org, open a session."""
    user = await repository.find_user_by_email(session, email)
    password_ok = await verify_password(password, user.password_hash if user else None)
    if user is None or not password_ok or not user.is_active:
        raise InvalidCredentials()
    orgs = await repository.orgs_of_user(session, user.id)
    chosen = [o for o in orgs if org in (str(o.org_id), o.org_slug)] if org else list(orgs)
    if not chosen:
        raise InvalidCredentials("You are not an active member of that organization")
    if len(chosen) > 1:
        choices = [OrgChoice.model_validate(o).model_dump(mode="json") for o in chosen]
        raise OrgChoiceRequired(
            "You belong to several organizations: send `org` (id or slug) with the login",
            extra={"orgs": choices},
        )
    membership = chosen[0]
    await enter_tenant(session, membership.org_id)
    auth_session = AuthSession(id=uuid.uuid4(), org_id=membership.org_id, user_id=user.id)
    session.add(auth_session)
    principal = _user_principal(
        user.id,
        membership.org_id,
        membership.role,
        membership.branch_id,
        user.is_platform_admin,
        auth_session.id,
    )
    await record_audit(session, principal, "auth.login", "user", user.id)
    return await _issue_tokens(session, settings, principal, auth_session.id)


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
    principal = await _load_user_principal(session, auth_session.user_id, org_id, auth_session.id)
    if principal is None:
        raise RefreshTokenInvalid()
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
    user = (await session.execute(select(User).where(User.id == principal.user_id))).scalar_one()
    if not await verify_password(current, user.password_hash):
        raise InvalidCredentials("The current password is wrong")
    user.password_hash = await hash_password(new)
    user.password_changed_at = datetime.now(UTC)
    await session.flush()
    # Sign the user out everywhere, not only in this org: a changed password is how a user
    # locks out whoever else knew the old one. RLS limits each UPDATE to one org at a time.
    for membership in await repository.orgs_of_user(session, user.id):
        if membership.org_id != principal.org_id:
            await enter_tenant(session, membership.org_id)
            await revoke_sessions(session, membership.org_id, user.id, reason="password_changed")
    await enter_tenant(session, principal.org_id)
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


async def _load_user_principal(
    session: AsyncSession, user_id: uuid.UUID, org_id: uuid.UUID, session_id: uuid.UUID
) -> Principal | None:
    """The live membership, or None if the user, membership or sign-in is no longer valid."""
    row = (
        await session.execute(_LIVE_MEMBERSHIP, {"user": user_id, "org": org_id, "sid": session_id})
    ).one_or_none()
    if row is None:
        return None
    return _user_principal(
        user_id, org_id, row.role, row.branch_id, row.is_platform_admin, session_id
    )


_LIVE_MEMBERSHIP = (
    select(Membership.role, Membership.branch_id, User.is_platform_admin)
    .join(User, User.id == Membership.user_id)
    .join(AuthSession, AuthSession.user_id == User.id)
    .where(
        Membership.user_id == bindparam("user"),
        Membership.org_id == bindparam("org"),
        AuthSession.id == bindparam("sid"),
        AuthSession.revoked_at.is_(None),
        Membership.is_active,
        User.is_active,
    )
)


class IdentityAuthenticator:
    """Turns a bearer token or API key into a principal, inside the caller's tenant."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def authenticate(self, session: AsyncSession, credential: Credential) -> Principal:
        if credential.kind == "api_key":
            return await self._api_key(session, credential.secret)
        claims = decode_access_token(self.settings, credential.secret)
        session.info.update(org_id=claims.org_id, user_id=claims.user_id)
        principal = await _load_user_principal(
            session, claims.user_id, claims.org_id, claims.session_id
        )
        if principal is None:
            raise Unauthorized("The session has ended or the account is inactive")
        return principal

    async def _api_key(self, session: AsyncSession, presented: str) -> Principal:
        prefix, _, secret = presented.removeprefix(API_KEY_PREFIX).partition("_")
        # Prefixes are short ASCII alphanumerics; anything else (a NUL byte would make
        # PostgreSQL fail the lookup as a 500) cannot name a key.
        well_formed = prefix.isascii() and prefix.isalnum() and len(prefix) <= 16
        if not presented.startswith(API_KEY_PREFIX) or not well_formed or not secret:
            raise ApiKeyInvalid()
        row: Any = (
            await session.execute(
                text(
                    "select id, org_id, secret_hash, scopes, expires_at, revoked_at "
                    "from auth_api_key(:p)"
                ),
                {"p": prefix},
            )
        ).one_or_none()
        now = datetime.now(UTC)
        if (
            row is None
            or not secrets_match(secret, row.secret_hash)
            or row.revoked_at
            or (row.expires_at and row.expires_at <= now)
        ):
            raise ApiKeyInvalid()
        await enter_tenant(session, row.org_id)
        await session.execute(
            update(ApiKey)
            .where(
                ApiKey.id == row.id,
                ApiKey.org_id == row.org_id,
                (ApiKey.last_used_at.is_(None))
                | (ApiKey.last_used_at < now - API_KEY_TOUCH_INTERVAL),
            )
            .values(last_used_at=now)
        )
        return Principal(
            kind="api_key",
            id=row.id,
            org_id=row.org_id,
            role=None,
            branch_id=None,
            permissions=frozenset(row.scopes) & ALL_PERMISSIONS,
        )
