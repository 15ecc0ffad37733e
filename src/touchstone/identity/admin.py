"""Operator tasks behind the CLI (`touchstone orgs|users|apikeys …`, `touchstone demo`)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import uuid
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy import func, select, text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncSession

from touchstone.core.audit import record_audit
from touchstone.core.auth import Principal, system_principal
from touchstone.core.config import Settings
from touchstone.core.db import Database, enter_tenant
from touchstone.core.errors import NotFound
from touchstone.core.permissions import Role, permissions_for
from touchstone.core.postgres import libpq_dsn
from touchstone.identity import repository, service
from touchstone.identity.models import ApiKey, Branch, Membership, User
from touchstone.identity.schemas import OrgCreate, UserCreate, UserUpdate

DEMO_SLUG = "demo-bank"
DEMO_DOMAIN = "demobank.example.com"


def _system_admin(org_id: uuid.UUID) -> Principal:
    """The CLI acts as a platform operator inside one org; audit rows name it `system`."""
    return system_principal(org_id, permissions_for(Role.PLATFORM_ADMIN))


async def _org_id(session: AsyncSession, org_slug: str) -> uuid.UUID:
    org_id: uuid.UUID | None = (
        await session.execute(text("select org_id_by_slug(:s)"), {"s": org_slug})
    ).scalar_one_or_none()
    if org_id is None:
        raise NotFound(f"No organization with slug '{org_slug}'")
    return org_id


async def set_org_active(database: Database, org_slug: str, active: bool) -> None:
    async with database.transaction() as session:
        await service.set_org_active(session, None, await _org_id(session, org_slug), active)


async def list_orgs(admin: URL, owner_role: str) -> list[dict[str, Any]]:
    """Every tenant with its member count, read as the owner role: a list across tenants is
    the operator's, never the runtime role's (which the API and its bugs connect as)."""
    async with await psycopg.AsyncConnection.connect(libpq_dsn(admin)) as conn:
        await conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(owner_role)))
        cursor = await conn.execute(
            "select o.slug, o.name, o.kind, o.is_active, o.created_at, "
            "(select count(*) from memberships m where m.org_id = o.id and m.is_active) "
            "from orgs o order by o.slug"
        )
        columns = ("slug", "name", "kind", "is_active", "created_at", "active_members")
        return [dict(zip(columns, row, strict=True)) for row in await cursor.fetchall()]


async def _branch_id(session: AsyncSession, org_id: uuid.UUID, code: str) -> uuid.UUID:
    branch = (
        await session.execute(select(Branch.id).where(Branch.org_id == org_id, Branch.code == code))
    ).scalar_one_or_none()
    if branch is None:
        raise NotFound(f"No branch with code '{code}'")
    return branch


async def _member_id(session: AsyncSession, org_id: uuid.UUID, email: str) -> uuid.UUID:
    user_id = (
        await session.execute(
            select(User.id).where(User.org_id == org_id, func.lower(User.email) == email.lower())
        )
    ).scalar_one_or_none()
    if user_id is None:
        raise NotFound(f"No member with email '{email}'")
    return user_id


async def add_user(
    database: Database,
    settings: Settings,
    org_slug: str,
    data: UserCreate,
    branch_code: str | None,
) -> str | None:
    """Returns the invitation token when no password was given."""
    async with database.transaction() as session:
        org_id = await _org_id(session, org_slug)
        await enter_tenant(session, org_id)
        if branch_code is not None:
            data = data.model_copy(
                update={"branch_id": await _branch_id(session, org_id, branch_code)}
            )
        _, invitation = await service.create_member(session, _system_admin(org_id), data, settings)
        return invitation.token if invitation else None


async def list_users(database: Database, org_slug: str) -> list[dict[str, Any]]:
    async with database.transaction() as session:
        org_id = await _org_id(session, org_slug)
        await enter_tenant(session, org_id)
        query = (
            repository.members_query(org_id)
            .add_columns(Branch.code.label("branch"))
            .outerjoin(Branch, Branch.id == Membership.branch_id)
            .order_by(User.email)
        )
        rows = (await session.execute(query)).mappings().all()
        fields = ("email", "full_name", "role", "branch", "is_active", "created_at")
        return [{field: row[field] for field in fields} for row in rows]


async def reset_password(
    database: Database, org_slug: str, email: str, password: str | None
) -> str:
    """Set a member's password (a random one unless given), ending their sessions."""
    new_password = password or secrets.token_urlsafe(12)
    async with database.transaction() as session:
        org_id = await _org_id(session, org_slug)
        await enter_tenant(session, org_id)
        user_id = await _member_id(session, org_id, email)
        await service.set_password(session, _system_admin(org_id), user_id, new_password)
    return new_password


async def deactivate_user(database: Database, org_slug: str, email: str) -> None:
    """Deactivate a membership: sessions end, the member's keys stop (last admin refused)."""
    async with database.transaction() as session:
        org_id = await _org_id(session, org_slug)
        await enter_tenant(session, org_id)
        user_id = await _member_id(session, org_id, email)
        await service.update_member(
            session, _system_admin(org_id), user_id, UserUpdate(is_active=False)
        )


async def list_api_keys(database: Database, org_slug: str) -> list[dict[str, Any]]:
    async with database.transaction() as session:
        org_id = await _org_id(session, org_slug)
        await enter_tenant(session, org_id)
        query = (
            select(ApiKey, User.email)
            .outerjoin(User, User.id == ApiKey.created_by)
            .where(ApiKey.org_id == org_id)
            .order_by(ApiKey.created_at)
        )
        return [
            {
                "prefix": key.prefix,
                "name": key.name,
                "scopes": " ".join(key.scopes),
                "created_by": creator or "(CLI)",
                "last_used_at": key.last_used_at,
                "revoked_at": key.revoked_at,
            }
            for key, creator in (await session.execute(query)).all()
        ]


async def revoke_api_key(database: Database, org_slug: str, prefix: str) -> None:
    async with database.transaction() as session:
        org_id = await _org_id(session, org_slug)
        await enter_tenant(session, org_id)
        key_id = (
            await session.execute(
                select(ApiKey.id).where(ApiKey.org_id == org_id, ApiKey.prefix == prefix)
            )
        ).scalar_one_or_none()
        if key_id is None:
            raise NotFound(f"No API key with prefix '{prefix}'")
        await service.revoke_api_key(session, _system_admin(org_id), key_id)


def _demo_password(settings: Settings, email: str) -> str:
    """Derived from the data directory's secret: a second `demo` prints the same ones, and
    nothing stores them in plain text."""
    secret = settings.secret_key.get_secret_value().encode()
    digest = hmac.new(secret, f"touchstone-demo:{email}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:12]).decode()


def _demo_members() -> list[tuple[str, str, Role]]:
    """(email, full name, role): the admin first, then one member per other role."""
    members = [(f"admin@{DEMO_DOMAIN}", "Demo Admin", Role.ORG_ADMIN)]
    for role in Role:
        if role != Role.ORG_ADMIN:
            email = f"{role.value.replace('_', '.')}@{DEMO_DOMAIN}"
            members.append((email, role.value.replace("_", " ").title(), role))
    return members


async def load_demo(
    database: Database, settings: Settings, *, reset: bool = False
) -> tuple[uuid.UUID, bool, list[tuple[str, str, str]]]:
    """A demo bank with two branches and one user per role: (org id, whether it was created
    now, [(email, password, role)]). Loaded already, it is left alone; `reset` sets every
    demo member's password back and reactivates them."""
    members = _demo_members()
    credentials = [
        (email, _demo_password(settings, email), role.value) for email, _, role in members
    ]
    async with database.transaction() as session:
        existing = (
            await session.execute(text("select org_id_by_slug(:s)"), {"s": DEMO_SLUG})
        ).scalar_one_or_none()
        if existing is not None:
            if reset:
                await _reset_demo(session, existing, credentials)
            return existing, False, credentials
        (admin_email, admin_name, _), *others = members
        org, _ = await service.create_org(
            session,
            OrgCreate(
                name="Demo Bank",
                slug=DEMO_SLUG,
                kind="bank",
                admin_email=admin_email,
                admin_full_name=admin_name,
                admin_password=_demo_password(settings, admin_email),
            ),
            None,
            settings,
        )
        actor = _system_admin(org.id)
        branches = [
            Branch(id=uuid.uuid4(), org_id=org.id, name=name, code=code)
            for name, code in (("Main Street", "MAIN"), ("Riverside", "RIVER"))
        ]
        session.add_all(branches)
        for new in branches:
            changes = {"name": new.name, "code": new.code}
            await record_audit(session, actor, "branch.created", "branch", new.id, changes)
        for email, full_name, role in others:
            branch = branches[0].id if role in (Role.BRANCH_MANAGER, Role.APPRAISER) else None
            data = UserCreate(
                email=email,
                full_name=full_name,
                role=role,
                branch_id=branch,
                password=_demo_password(settings, email),
            )
            await service.create_member(session, actor, data, settings)
    return org.id, True, credentials


async def _reset_demo(
    session: AsyncSession, org_id: uuid.UUID, credentials: list[tuple[str, str, str]]
) -> None:
    await enter_tenant(session, org_id)
    actor = _system_admin(org_id)
    for email, password, _ in credentials:
        user_id = await _member_id(session, org_id, email)
        await service.update_member(session, actor, user_id, UserUpdate(is_active=True))
        await service.set_password(session, actor, user_id, password)
