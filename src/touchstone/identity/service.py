"""Identity use cases: orgs, branches, members, API keys and the audit log.

Other modules import this file only. Functions flush, never commit: the request's unit of
work commits once at the end, so the audit event lands in the same transaction as the change.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Row, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from touchstone.core.audit import AuditEvent, record_audit
from touchstone.core.auth import API_KEY_PREFIX, Principal
from touchstone.core.config import Settings
from touchstone.core.db import add_unique, enter_tenant, utcnow
from touchstone.core.errors import Forbidden, InvalidInput, NotFound
from touchstone.core.pagination import Items, PageParams, PageShape
from touchstone.core.permissions import ALL_PERMISSIONS, Role, permissions_for
from touchstone.core.reads import ItemQuery, TenantRead, columns_for, read_item
from touchstone.core.security import digest_secret, hash_password, new_token
from touchstone.core.writes import TenantWrite, WritePlan
from touchstone.identity import emails, repository
from touchstone.identity.exceptions import LastAdmin
from touchstone.identity.models import (
    ApiKey,
    AuthSession,
    Branch,
    Invitation,
    Membership,
    Org,
    User,
)
from touchstone.identity.schemas import (
    ApiKeyCreate,
    ApiKeyOut,
    AuditEventOut,
    BranchCreate,
    BranchOut,
    BranchUpdate,
    MemberOut,
    MemberQuery,
    MeOut,
    OrgCreate,
    UserCreate,
    UserUpdate,
)


@contextlib.asynccontextmanager
async def _inside_org(session: AsyncSession, org_id: uuid.UUID) -> AsyncIterator[None]:
    """Platform work in another tenant's context, then back to the caller's for the request."""
    caller_org = session.info.get("org_id")
    await enter_tenant(session, org_id)
    yield
    if caller_org is not None:
        await session.flush()
        await enter_tenant(session, caller_org)


# --- orgs -----------------------------------------------------------------------------


async def create_org(
    session: AsyncSession, data: OrgCreate, actor: Principal | None, settings: Settings
) -> tuple[Org, str | None]:
    """Create a tenant and its first admin. Runs in the new org's own tenant context.

    Returns the org and, when no admin password was given, the admin's invitation token.
    """
    org_id = uuid.uuid4()
    async with _inside_org(session, org_id):
        org = Org(id=org_id, name=data.name, slug=data.slug, kind=data.kind, settings={})
        await add_unique(session, org, f"An organization with slug '{data.slug}' already exists")
        admin = UserCreate(
            email=data.admin_email,
            full_name=data.admin_full_name,
            role=Role.ORG_ADMIN,
            password=data.admin_password,
        )
        _, invitation = await _add_member(session, org, admin, settings, actor)
        await record_audit(
            session,
            actor,
            "org.created",
            "org",
            org_id,
            {"name": data.name, "slug": data.slug, "kind": data.kind},
            org_id=org_id,
        )
    return org, invitation.token if invitation else None


async def get_org(session: AsyncSession, principal: Principal) -> Org:
    org = await repository.get_org(session, principal.org_id)
    if org is None:
        raise NotFound("Organization not found")
    return org


async def rename_org(session: AsyncSession, principal: Principal, name: str) -> Org:
    org = await get_org(session, principal)
    before = org.name
    org.name = name
    await record_audit(session, principal, "org.updated", "org", org.id, {"name": [before, name]})
    return org


async def set_org_active(
    session: AsyncSession, actor: Principal | None, org_id: uuid.UUID, active: bool
) -> Org:
    """Platform operators only: a deactivated org's sessions end and its keys stop working.

    Sign-in, refresh, every request and every live stream check the org in the database
    (`auth_enter_session`, `auth_enter_api_key`); revoking the sessions as well makes the
    end final, so reactivating the org does not bring old sign-ins back.
    """
    async with _inside_org(session, org_id):
        org = await repository.get_org(session, org_id)
        if org is None:
            raise NotFound("Organization not found")
        if org.is_active != active:
            org.is_active = active
            if not active:
                await revoke_sessions(session, org_id, None, reason="org_deactivated")
            action = "org.activated" if active else "org.deactivated"
            await record_audit(session, actor, action, "org", org_id, org_id=org_id)
    return org


# --- branches ---------------------------------------------------------------------------


_BRANCH_PAGES = PageShape(
    select(*columns_for(BranchOut, Branch)).where(Branch.org_id == bindparam("org_id")),
    {"branch_id": lambda branch: Branch.id == branch},
    {"name": Branch.name, "code": Branch.code, "created_at": Branch.created_at},
    "name",
    Branch.id,
    item=BranchOut,
)


async def list_branches(read: TenantRead, page: PageParams) -> tuple[Items, int]:
    return await _BRANCH_PAGES.read(read, page, by_branch=True)


async def read_branch(read: TenantRead, branch_id: uuid.UUID) -> dict[str, Any]:
    return await read_item(
        read,
        lambda principal: repository.BRANCH.bound(principal, {"id": branch_id}),
        "Branch not found",
    )


async def get_branch(session: AsyncSession, principal: Principal, branch_id: uuid.UUID) -> Branch:
    branch = await repository.get_branch(session, principal.org_id, branch_id)
    scope = principal.branch_scope
    if branch is None or (scope and branch.id != scope):
        raise NotFound("Branch not found")
    return branch


async def create_branch(write: TenantWrite, data: BranchCreate) -> BranchOut:
    def plan(principal: Principal) -> WritePlan[BranchOut]:
        branch = BranchOut(
            id=uuid.uuid4(), name=data.name, code=data.code, is_active=True, created_at=utcnow()
        )
        return WritePlan(
            [(repository.NEW_BRANCH, {**dict(branch), "org_id": principal.org_id})],
            branch,
            conflict=f"A branch with code '{data.code}' already exists",
        ).audited(principal, "branch.created", "branch", branch.id, data.model_dump())

    return await write.apply(plan)


async def update_branch(
    session: AsyncSession, principal: Principal, branch_id: uuid.UUID, data: BranchUpdate
) -> Branch:
    branch = await get_branch(session, principal, branch_id)
    changes = _apply(branch, data.model_dump(exclude_unset=True))
    await record_audit(session, principal, "branch.updated", "branch", branch.id, changes)
    return branch


def _apply(row: object, values: dict[str, Any]) -> dict[str, Any]:
    """Set attributes and return {field: [before, after]} for the ones that changed."""
    changes: dict[str, Any] = {}
    for field, value in values.items():
        before = getattr(row, field)
        if before != value:
            setattr(row, field, value)
            changes[field] = [_plain(before), _plain(value)]
    return changes


def _plain(value: Any) -> Any:
    return str(value) if isinstance(value, uuid.UUID) else value


# --- members ---------------------------------------------------------------------------


_MEMBER_PAGES = PageShape(
    repository.members_query(bindparam("org_id")),
    {
        "branch_id": lambda branch: Membership.branch_id == branch,
        "role": lambda role: Membership.role == role,
        "is_active": lambda active: Membership.is_active == active,
        "pattern": lambda pattern: User.email.ilike(pattern) | User.full_name.ilike(pattern),
    },
    {
        "email": User.email,
        "full_name": User.full_name,
        "created_at": Membership.created_at,
        "role": Membership.role,
    },
    "email",
    User.id,
    item=MemberOut,
)


async def list_members(read: TenantRead, query: MemberQuery) -> tuple[Items, int]:
    pattern = None
    if query.q:
        escaped = query.q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        pattern = f"%{escaped}%"
    filters = {
        "role": query.role.value if query.role is not None else None,
        "is_active": query.is_active,
        "pattern": pattern,
    }
    return await _MEMBER_PAGES.read(read, query, filters, by_branch=True)


async def read_member(read: TenantRead, user_id: uuid.UUID) -> dict[str, Any]:
    return await read_item(
        read,
        lambda principal: repository.MEMBER.bound(principal, {"id": user_id}),
        "User not found",
    )


async def read_me(read: TenantRead) -> MeOut:
    """The caller: a member's name and email, or an API key's name."""

    def plan(principal: Principal) -> tuple[ItemQuery, dict[str, Any]]:
        values = {"org_id": principal.org_id, "id": principal.id}
        return (
            repository.MEMBER.everywhere if principal.user_id else repository.API_KEY_NAME
        ), values

    found = await read_item(read, plan, "Caller not found")
    principal = read.principal
    assert principal is not None  # read_item confirmed it
    name = found.get("full_name") or f"API key {found['name']}"
    return MeOut(
        id=principal.id,
        email=found.get("email", ""),
        full_name=name,
        org_id=principal.org_id,
        role=principal.role,
        branch_id=principal.branch_id,
        permissions=sorted(principal.permissions),
    )


async def read_org(read: TenantRead) -> dict[str, Any]:
    return await read_item(
        read,
        lambda principal: (repository.ORG, {"org_id": principal.org_id}),
        "Organization not found",
    )


async def get_member(session: AsyncSession, principal: Principal, user_id: uuid.UUID) -> Row[Any]:
    member = await repository.get_member(session, principal.org_id, user_id)
    scope = principal.branch_scope
    if member is None or (scope and member.branch_id != scope):
        raise NotFound("User not found")
    return member


async def _check_grant(
    session: AsyncSession,
    principal: Principal | None,
    org_id: uuid.UUID,
    role: Role,
    branch_id: uuid.UUID | None,
) -> None:
    if role == Role.PLATFORM_ADMIN and not (principal and principal.can("platform:orgs")):
        raise Forbidden("Only platform admins can grant the platform_admin role")
    if branch_id is not None and await repository.get_branch(session, org_id, branch_id) is None:
        raise InvalidInput("branch_id does not name a branch of this organization")


async def create_member(
    session: AsyncSession, principal: Principal, data: UserCreate, settings: Settings
) -> tuple[Row[Any], IssuedInvitation | None]:
    await _check_grant(session, principal, principal.org_id, data.role, data.branch_id)
    org = await get_org(session, principal)
    user_id, invitation = await _add_member(session, org, data, settings, principal)
    await record_audit(
        session,
        principal,
        "user.created",
        "user",
        user_id,
        {"email": data.email, "role": data.role, "branch_id": _plain(data.branch_id)},
    )
    return await get_member(session, principal, user_id), invitation


@dataclass(frozen=True, slots=True)
class IssuedInvitation:
    token: str
    """For the operator's CLI only: the API never shows it; the invitee receives it by email."""
    expires_at: datetime
    email_job_id: uuid.UUID | None


async def _add_member(
    session: AsyncSession,
    org: Org,
    data: UserCreate,
    settings: Settings,
    principal: Principal | None,
) -> tuple[uuid.UUID, IssuedInvitation | None]:
    """Create the org's own account for this email and its membership.

    Nothing outside the org is consulted, so adding an email reveals nothing about other
    tenants. Without a password the account gets a one-time invitation, emailed to it.
    """
    user = User(
        id=uuid.uuid4(),
        org_id=org.id,
        email=data.email.lower(),
        full_name=data.full_name,
        password_hash=await hash_password(data.password) if data.password else None,
    )
    await add_unique(session, user, "This organization already has a member with this email")
    session.add(
        Membership(
            id=uuid.uuid4(),
            org_id=org.id,
            user_id=user.id,
            role=data.role,
            branch_id=data.branch_id,
        )
    )
    if data.password is not None:
        return user.id, None
    token = new_token()
    expires_at = datetime.now(UTC) + timedelta(seconds=settings.invitation_ttl_seconds)
    session.add(
        Invitation(
            id=uuid.uuid4(),
            org_id=org.id,
            user_id=user.id,
            token_hash=digest_secret(token),
            expires_at=expires_at,
        )
    )
    email = await emails.send_invitation(
        session,
        settings,
        org_id=org.id,
        org_name=org.name,
        to_address=user.email,
        to_name=user.full_name,
        role=data.role,
        token=token,
        expires_at=expires_at,
        principal=principal,
    )
    return user.id, IssuedInvitation(token, expires_at, email.job_id)


async def update_member(
    session: AsyncSession, principal: Principal, user_id: uuid.UUID, data: UserUpdate
) -> Row[Any]:
    await get_member(session, principal, user_id)
    membership = await repository.get_membership(
        session, principal.org_id, user_id, for_update=True
    )
    assert membership is not None
    values = data.model_dump(exclude_unset=True)
    if "role" in values or "branch_id" in values:
        await _check_grant(
            session,
            principal,
            principal.org_id,
            Role(values.get("role", membership.role)),
            values.get("branch_id", membership.branch_id),
        )
    changes: dict[str, Any] = {}
    if (full_name := values.pop("full_name", None)) is not None:
        query = select(User).where(User.org_id == principal.org_id, User.id == user_id)
        user = (await session.execute(query)).scalar_one()
        changes |= _apply(user, {"full_name": full_name})
    was_admin = membership.role == Role.ORG_ADMIN and membership.is_active
    changes |= _apply(membership, values)
    if was_admin and not (membership.role == Role.ORG_ADMIN and membership.is_active):
        await session.flush()
        if await repository.count_active_admins(session, principal.org_id) == 0:
            raise LastAdmin()
    if values.get("is_active") is False or "role" in changes:
        await revoke_sessions(session, principal.org_id, user_id, reason="membership_changed")
        held = permissions_for(membership.role) if membership.is_active else frozenset()
        await _revoke_keys_beyond(session, principal, user_id, held)
    await record_audit(session, principal, "user.updated", "user", user_id, changes)
    return await get_member(session, principal, user_id)


async def set_password(
    session: AsyncSession, actor: Principal, user_id: uuid.UUID, password: str
) -> None:
    """An operator's reset: the new password, every session of the account ended, audited."""
    query = select(User).where(User.org_id == actor.org_id, User.id == user_id)
    user = (await session.execute(query)).scalar_one()
    user.password_hash = await hash_password(password)
    user.password_changed_at = datetime.now(UTC)
    await revoke_sessions(session, actor.org_id, user_id, reason="password_reset")
    await record_audit(session, actor, "user.password_reset", "user", user_id)


async def revoke_sessions(
    session: AsyncSession,
    org_id: uuid.UUID,
    user_id: uuid.UUID | None,
    *,
    reason: str,
    keep: uuid.UUID | None = None,
) -> None:
    """End the live sessions of one account (or, with `user_id=None`, of the whole org)."""
    query = update(AuthSession).where(
        AuthSession.org_id == org_id, AuthSession.revoked_at.is_(None)
    )
    if user_id is not None:
        query = query.where(AuthSession.user_id == user_id)
    if keep is not None:
        query = query.where(AuthSession.id != keep)
    await session.execute(query.values(revoked_at=datetime.now(UTC), revoked_reason=reason))


async def _revoke_keys_beyond(
    session: AsyncSession, principal: Principal, creator: uuid.UUID, held: frozenset[str]
) -> None:
    """Keys act for the org but never beyond their creator: when the creator's membership
    ends or its role shrinks, the creator's keys with a scope the member no longer holds die.

    The database refuses keys of an inactive creator too (`auth_enter_api_key`), so a key
    cannot outlive a deactivation that bypassed this path."""
    keys = await session.execute(
        select(ApiKey).where(
            ApiKey.org_id == principal.org_id,
            ApiKey.created_by == creator,
            ApiKey.revoked_at.is_(None),
        )
    )
    for key in keys.scalars():
        if not set(key.scopes) <= held:
            key.revoked_at = datetime.now(UTC)
            await record_audit(
                session,
                principal,
                "api_key.revoked",
                "api_key",
                key.id,
                {"prefix": key.prefix, "reason": "creator_membership_changed"},
            )


# --- API keys --------------------------------------------------------------------------


_API_KEY_PAGES = PageShape(
    select(*columns_for(ApiKeyOut, ApiKey)).where(ApiKey.org_id == bindparam("org_id")),
    {},
    {"created_at": ApiKey.created_at, "name": ApiKey.name},
    "-created_at",
    ApiKey.id,
    item=ApiKeyOut,
)


async def list_api_keys(read: TenantRead, page: PageParams) -> tuple[Items, int]:
    return await _API_KEY_PAGES.read(read, page)


async def create_api_key(
    session: AsyncSession, principal: Principal, data: ApiKeyCreate
) -> tuple[ApiKey, str]:
    """Returns the key row and the full secret, which is never stored or shown again."""
    unknown = set(data.scopes) - ALL_PERMISSIONS
    if unknown:
        raise InvalidInput(f"Unknown scopes: {', '.join(sorted(unknown))}")
    beyond = set(data.scopes) - principal.permissions
    if beyond:
        raise Forbidden(f"You cannot grant scopes you do not hold: {', '.join(sorted(beyond))}")
    if data.expires_at is not None and data.expires_at <= datetime.now(UTC):
        raise InvalidInput("expires_at must be in the future")
    prefix = new_token(6).replace("-", "x").replace("_", "x")[:8]
    secret = new_token(32)
    key = ApiKey(
        id=uuid.uuid4(),
        org_id=principal.org_id,
        name=data.name,
        prefix=prefix,
        secret_hash=digest_secret(secret),
        scopes=sorted(set(data.scopes)),
        created_by=principal.user_id,
        expires_at=data.expires_at,
    )
    await add_unique(session, key, "Key prefix collision; try again")
    await record_audit(
        session,
        principal,
        "api_key.created",
        "api_key",
        key.id,
        {"name": data.name, "scopes": key.scopes, "prefix": prefix},
    )
    return key, f"{API_KEY_PREFIX}{prefix}_{secret}"


async def revoke_api_key(session: AsyncSession, principal: Principal, key_id: uuid.UUID) -> ApiKey:
    key = await repository.get_api_key(session, principal.org_id, key_id)
    if key is None:
        raise NotFound("API key not found")
    if key.revoked_at is None:
        key.revoked_at = datetime.now(UTC)
        await record_audit(
            session, principal, "api_key.revoked", "api_key", key.id, {"prefix": key.prefix}
        )
    return key


# --- audit -----------------------------------------------------------------------------


_AUDIT_PAGES = PageShape(
    repository.audit_query(bindparam("org_id")),
    {
        "branch_id": lambda branch: AuditEvent.branch_id == branch,
        "actor_id": lambda actor: AuditEvent.actor_id == actor,
        "action": lambda action: AuditEvent.action == action,
        "object_type": lambda kind: AuditEvent.object_type == kind,
        "object_id": lambda name: AuditEvent.object_id == name,
        "since": lambda since: AuditEvent.occurred_at >= since,
        "until": lambda until: AuditEvent.occurred_at < until,
    },
    {"occurred_at": AuditEvent.occurred_at},
    "-occurred_at",
    AuditEvent.id,
    item=AuditEventOut,
)


async def list_audit_events(
    read: TenantRead, page: PageParams, filters: dict[str, Any]
) -> tuple[Items, int]:
    """The org's audit log; `filters` by name (`actor_id`, `action`, `object_type`,
    `object_id`, `since`, `until`; None: not filtered)."""
    return await _AUDIT_PAGES.read(read, page, filters, by_branch=True)
