"""Request and response bodies of the identity API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, EmailStr, Field, StringConstraints, field_validator

from touchstone.core.pagination import PageParams
from touchstone.core.permissions import Role
from touchstone.core.schemas import Flag, InputModel, Name, NonBlank, OutputModel, PlainText, Slug

Password = Annotated[str, StringConstraints(min_length=10, max_length=256)]
OrgKind = Literal["bank", "company", "school"]
Code = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,40}$")]
Scope = Annotated[str, StringConstraints(pattern=r"^[a-z_]+:[a-z_]+$", max_length=60)]


class TokenResponse(OutputModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105
    expires_in: int
    refresh_token: str
    org_id: uuid.UUID


class OrgChoice(OutputModel):
    """An org whose account accepted the email and password of a sign-in."""

    org_id: uuid.UUID
    org_name: str
    org_slug: str
    role: str


class RefreshRequest(InputModel):
    refresh_token: Annotated[str, StringConstraints(min_length=10, max_length=200)]


class AcceptInvitation(InputModel):
    token: Annotated[str, StringConstraints(min_length=10, max_length=200)]
    password: Password


class PasswordResetRequest(InputModel):
    """Ask for a reset link by email; `org` (id or slug) limits it to one organization."""

    email: EmailStr
    org: Annotated[str, StringConstraints(min_length=1, max_length=80)] | None = None


class PasswordResetAccepted(OutputModel):
    detail: str = (
        "If the address belongs to an active account, a link to choose a new password is on "
        "its way to it."
    )


class PasswordResetConfirm(InputModel):
    token: Annotated[str, StringConstraints(min_length=10, max_length=200)]
    password: Password


class PasswordChange(InputModel):
    current_password: Annotated[str, StringConstraints(max_length=256)]
    new_password: Password


class OrgCreate(InputModel):
    name: Name
    slug: Slug
    kind: OrgKind = "company"
    admin_email: EmailStr
    admin_full_name: Name = "Administrator"
    admin_password: Password | None = None


class OrgOut(OutputModel):
    id: uuid.UUID
    name: str
    slug: str
    kind: str
    is_active: bool
    created_at: datetime


class OrgUpdate(InputModel):
    name: Name | None = None


class OrgStatusUpdate(InputModel):
    """Platform admins: `false` ends the org's sessions and stops its API keys."""

    is_active: Flag


class BranchCreate(InputModel):
    name: Name
    code: Code


def _not_null(value: object) -> object:
    """PATCH fields may be left out, but an explicit null would reach a NOT NULL column."""
    if value is None:
        raise ValueError("may be omitted but not null")
    return value


class BranchUpdate(InputModel):
    name: Name | None = None
    is_active: Flag | None = None

    _no_nulls = field_validator("name", "is_active", mode="before")(_not_null)


class BranchOut(OutputModel):
    id: uuid.UUID
    name: str
    code: str
    is_active: bool
    created_at: datetime


class UserCreate(InputModel):
    """Create an account in the caller's org; without a password an invitation is issued.

    The account is the org's own: the same email in another org is another account."""

    email: EmailStr
    full_name: Name
    role: Role
    branch_id: uuid.UUID | None = None
    password: Password | None = None


class UserUpdate(InputModel):
    full_name: Name | None = None
    role: Role | None = Field(default=None, description="Change the user's role in this org")
    branch_id: uuid.UUID | None = None
    is_active: Flag | None = Field(default=None, description="false deactivates the membership")

    _no_nulls = field_validator("full_name", "role", "is_active", mode="before")(_not_null)


class MemberQuery(PageParams):
    """`GET /users`: a page of members, filtered."""

    role: Role | None = None
    is_active: bool | None = None
    q: PlainText | None = Field(None, max_length=100, description="Part of an email or name")


class AuditEventQuery(BaseModel):
    """`GET /audit-events`: its filters, besides the page."""

    actor_id: uuid.UUID | None = None
    action: PlainText | None = Field(None, max_length=80)
    object_type: PlainText | None = Field(None, max_length=60)
    object_id: PlainText | None = Field(None, max_length=80)
    since: datetime | None = None
    until: datetime | None = None


class MemberOut(OutputModel):
    id: uuid.UUID
    email: str
    full_name: str
    role: str
    branch_id: uuid.UUID | None
    is_active: bool
    created_at: datetime


class InvitationSent(OutputModel):
    expires_at: datetime
    email_job_id: uuid.UUID | None = Field(
        description="The job that emails the invitation: its status at /api/v1/jobs/{id}"
    )


class UserCreated(MemberOut):
    invitation: InvitationSent | None = Field(
        default=None,
        description="Set when no password was given: the member is emailed a one-time link "
        "to choose one (the token itself is never returned)",
    )


class MeOut(OutputModel):
    id: uuid.UUID
    email: str
    full_name: str
    org_id: uuid.UUID
    role: str | None
    branch_id: uuid.UUID | None
    permissions: list[str]


class ApiKeyCreate(InputModel):
    name: Annotated[str, StringConstraints(min_length=1, max_length=120), NonBlank]
    """The column's length: a longer name reached PostgreSQL and failed there as a 500."""
    scopes: list[Scope] = Field(min_length=1, max_length=50)
    expires_at: AwareDatetime | None = None


class ApiKeyOut(OutputModel):
    """An org's key: any org admin sees and revokes it; it dies with its creator's membership."""

    id: uuid.UUID
    name: str
    prefix: str
    scopes: list[str]
    created_by: uuid.UUID | None = Field(description="The member who made it; null: the CLI")
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None


class ApiKeyName(OutputModel):
    """What `GET /me` shows of the API key calling."""

    name: str


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="The full key; shown once and never again")


class AuditEventOut(OutputModel):
    id: uuid.UUID
    occurred_at: datetime
    actor_type: str
    actor_id: uuid.UUID | None
    branch_id: uuid.UUID | None
    action: str
    object_type: str
    object_id: str | None
    changes: dict[str, object]
    request_id: str | None
