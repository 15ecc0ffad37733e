"""Operator tasks behind the CLI (`touchstone orgs …`, `touchstone users create`, `demo`)."""

from __future__ import annotations

import secrets
import uuid

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from touchstone.core.auth import Principal, system_principal
from touchstone.core.config import Settings
from touchstone.core.db import Database, enter_tenant
from touchstone.core.errors import Conflict, NotFound
from touchstone.core.permissions import Role, permissions_for
from touchstone.identity import service
from touchstone.identity.schemas import BranchCreate, OrgCreate, UserCreate

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


async def add_user(
    database: Database,
    settings: Settings,
    org_slug: str,
    email: str,
    role: Role,
    password: str | None,
    full_name: str,
) -> str | None:
    async with database.transaction() as session:
        org_id = await _org_id(session, org_slug)
        await enter_tenant(session, org_id)
        data = UserCreate(email=email, full_name=full_name, role=role, password=password)
        _, invitation = await service.create_member(session, _system_admin(org_id), data, settings)
        return invitation.token if invitation else None


async def load_demo(database: Database, settings: Settings) -> list[tuple[str, str, str]]:
    """A demo bank with two branches and one user per role; returns (email, password, role)."""
    credentials: list[tuple[str, str, str]] = []
    async with database.transaction() as session:
        if (
            await session.execute(text("select org_id_by_slug(:s)"), {"s": DEMO_SLUG})
        ).scalar_one_or_none():
            raise Conflict("The demo bank is already loaded (drop ./var to start over)")
        admin_password = secrets.token_urlsafe(12)
        org, _ = await service.create_org(
            session,
            OrgCreate(
                name="Demo Bank",
                slug=DEMO_SLUG,
                kind="bank",
                admin_email=f"admin@{DEMO_DOMAIN}",
                admin_full_name="Demo Admin",
                admin_password=admin_password,
            ),
            None,
            settings,
        )
        credentials.append((f"admin@{DEMO_DOMAIN}", admin_password, Role.ORG_ADMIN.value))
        actor = _system_admin(org.id)
        branches = [
            await service.create_branch(session, actor, BranchCreate(name=name, code=code))
            for name, code in (("Main Street", "MAIN"), ("Riverside", "RIVER"))
        ]
        for role in Role:
            if role == Role.ORG_ADMIN:
                continue
            password = secrets.token_urlsafe(12)
            branch = branches[0].id if role in (Role.BRANCH_MANAGER, Role.APPRAISER) else None
            email = f"{role.value.replace('_', '.')}@{DEMO_DOMAIN}"
            await service.create_member(
                session,
                actor,
                UserCreate(
                    email=email,
                    full_name=role.value.replace("_", " ").title(),
                    role=role,
                    branch_id=branch,
                    password=password,
                ),
                settings,
            )
            credentials.append((email, password, role.value))
    return credentials
