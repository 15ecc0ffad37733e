"""Identity queries. Each filters by org explicitly even though RLS would too."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import BindParameter, Row, bindparam, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from touchstone.core.audit import AuditEvent
from touchstone.core.reads import AnySelect, branch_scoped, columns_for, item_query
from touchstone.core.writes import insert_query
from touchstone.identity.models import ApiKey, Branch, Membership, Org, User
from touchstone.identity.schemas import ApiKeyName, AuditEventOut, BranchOut, MemberOut, OrgOut


def members_query(org_id: uuid.UUID | BindParameter[uuid.UUID]) -> AnySelect:
    return (
        select(
            User.id,
            User.email,
            User.full_name,
            Membership.role,
            Membership.branch_id,
            Membership.is_active,
            Membership.created_at,
        )
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.org_id == org_id)
    )


async def get_member(
    session: AsyncSession, org_id: uuid.UUID, user_id: uuid.UUID
) -> Row[Any] | None:
    result = await session.execute(members_query(org_id).where(User.id == user_id))
    member: Row[Any] | None = result.one_or_none()
    return member


async def get_membership(
    session: AsyncSession, org_id: uuid.UUID, user_id: uuid.UUID, *, for_update: bool = False
) -> Membership | None:
    query = select(Membership).where(Membership.org_id == org_id, Membership.user_id == user_id)
    if for_update:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def count_active_admins(session: AsyncSession, org_id: uuid.UUID) -> int:
    query = select(func.count()).where(
        Membership.org_id == org_id, Membership.role == "org_admin", Membership.is_active
    )
    return (await session.execute(query)).scalar_one()


async def get_branch(
    session: AsyncSession, org_id: uuid.UUID, branch_id: uuid.UUID
) -> Branch | None:
    query = select(Branch).where(Branch.org_id == org_id, Branch.id == branch_id)
    return (await session.execute(query)).scalar_one_or_none()


async def get_org(session: AsyncSession, org_id: uuid.UUID) -> Org | None:
    return (await session.execute(select(Org).where(Org.id == org_id))).scalar_one_or_none()


async def get_api_key(session: AsyncSession, org_id: uuid.UUID, key_id: uuid.UUID) -> ApiKey | None:
    query = select(ApiKey).where(ApiKey.org_id == org_id, ApiKey.id == key_id)
    return (await session.execute(query)).scalar_one_or_none()


async def find_accounts(session: AsyncSession, email: str) -> Sequence[Row[Any]]:
    """The active accounts with this email in every active org, through the owner-run lookup.

    Only sign-in may call it, and only to check a password against each account."""
    result = await session.execute(
        text(
            "select user_id, org_id, org_name, org_slug, role, branch_id, password_hash, "
            "is_platform_admin from auth_find_accounts(:e)"
        ),
        {"e": email},
    )
    return result.all()


def audit_query(org_id: uuid.UUID | BindParameter[uuid.UUID]) -> AnySelect:
    return select(*columns_for(AuditEventOut, AuditEvent)).where(AuditEvent.org_id == org_id)


# --- reads (`core.reads`): compiled once, bound per request ---------------------------------

_ORG: BindParameter[uuid.UUID] = bindparam("org_id")
_ID: BindParameter[uuid.UUID] = bindparam("id")

BRANCH = branch_scoped(
    select(*columns_for(BranchOut, Branch)).where(Branch.org_id == _ORG, Branch.id == _ID),
    Branch.id,
    BranchOut,
)
NEW_BRANCH = insert_query(Branch, ("org_id", *BranchOut.model_fields))
MEMBER = branch_scoped(members_query(_ORG).where(User.id == _ID), Membership.branch_id, MemberOut)
ORG = item_query(select(*columns_for(OrgOut, Org)).where(Org.id == _ORG), OrgOut)
API_KEY_NAME = item_query(
    select(ApiKey.name).where(ApiKey.org_id == _ORG, ApiKey.id == _ID), ApiKeyName
)
