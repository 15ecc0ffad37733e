"""Identity HTTP API: parse, authorize, call the service, shape the response."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Request, Response, status

from touchstone.core.auth import Principal
from touchstone.core.deps import (
    CurrentPrincipal,
    SessionDep,
    SettingsDep,
    SystemSessionDep,
    require,
)
from touchstone.core.idempotency import IdempotencyDep
from touchstone.core.pagination import Page, PageDep, page_response
from touchstone.core.query_params import query_model
from touchstone.core.reads import TenantRead, tenant_read
from touchstone.core.routing import ApiRouter
from touchstone.core.writes import TenantWrite, tenant_write
from touchstone.identity import authentication, password_reset, service
from touchstone.identity.dependencies import (
    PasswordResetConfirmLimit,
    PasswordResetRequestLimit,
    RateLimitedLogin,
)
from touchstone.identity.schemas import (
    AcceptInvitation,
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyOut,
    AuditEventOut,
    AuditEventQuery,
    BranchCreate,
    BranchOut,
    BranchUpdate,
    InvitationSent,
    MemberOut,
    MemberQuery,
    MeOut,
    OrgCreate,
    OrgOut,
    OrgStatusUpdate,
    OrgUpdate,
    PasswordChange,
    PasswordResetAccepted,
    PasswordResetConfirm,
    PasswordResetRequest,
    RefreshRequest,
    TokenResponse,
    UserCreate,
    UserCreated,
    UserUpdate,
)

public_router = ApiRouter(prefix="/auth", tags=["auth"])
router = ApiRouter()


# --- authentication --------------------------------------------------------------------


@public_router.post("/token", response_model=TokenResponse)
async def issue_token(
    request: Request, form: RateLimitedLogin, session: SystemSessionDep, settings: SettingsDep
) -> TokenResponse:
    """Sign in with email and password (`org` = id or slug when you belong to several).

    Repeated failures lock the email for a while (`429 login_locked`, audited)."""
    lockout = authentication.LoginLockout(request.app.state.rate_limiter, settings)
    return await authentication.login(
        session, settings, form.username, form.password, form.org, lockout
    )


@public_router.post("/refresh", response_model=TokenResponse)
async def refresh_token(
    body: RefreshRequest, session: SystemSessionDep, settings: SettingsDep
) -> TokenResponse:
    return await authentication.refresh(session, settings, body.refresh_token)


@public_router.post("/invitations/accept", status_code=status.HTTP_204_NO_CONTENT)
async def accept_invitation(body: AcceptInvitation, session: SystemSessionDep) -> None:
    await authentication.accept_invitation(session, body.token, body.password)


@public_router.post(
    "/password-reset",
    response_model=PasswordResetAccepted,
    status_code=status.HTTP_202_ACCEPTED,
    dependencies=[PasswordResetRequestLimit],
)
async def request_password_reset(
    request: Request, body: PasswordResetRequest, session: SystemSessionDep, settings: SettingsDep
) -> PasswordResetAccepted:
    """Email a one-time link to choose a new password, to every active account with this
    email (or only the one in `org`). The answer is the same for any address, known or not.

    Rate-limited per client address (`429`) and per email address (beyond it, the same
    answer and no email)."""
    limiter = request.app.state.rate_limiter
    await password_reset.request_reset(session, settings, limiter, body.email.lower(), body.org)
    return PasswordResetAccepted()


@public_router.post(
    "/password-reset/confirm",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[PasswordResetConfirmLimit],
)
async def confirm_password_reset(body: PasswordResetConfirm, session: SystemSessionDep) -> None:
    """Set a new password with an emailed link's token: once, before it expires; every
    session of the account ends (`400 password_reset_invalid` otherwise)."""
    await password_reset.confirm_reset(session, body.token, body.password)


@router.post("/auth/logout", status_code=status.HTTP_204_NO_CONTENT, tags=["auth"])
async def logout(session: SessionDep, principal: CurrentPrincipal) -> None:
    await authentication.logout(session, principal)


@router.get("/me", response_model=MeOut, tags=["auth"])
async def me(read: Annotated[TenantRead, Depends(tenant_read(None))]) -> MeOut:
    return await service.read_me(read)


@router.post("/me/password", status_code=status.HTTP_204_NO_CONTENT, tags=["auth"])
async def change_password(
    body: PasswordChange, session: SessionDep, principal: CurrentPrincipal
) -> None:
    await authentication.change_password(
        session, principal, body.current_password, body.new_password
    )


# --- organizations and branches --------------------------------------------------------


@router.post("/orgs", response_model=OrgOut, status_code=201, tags=["orgs"])
async def create_org(
    body: OrgCreate,
    session: SessionDep,
    settings: SettingsDep,
    principal: Annotated[Principal, Depends(require("platform:orgs"))],
    idempotency: IdempotencyDep,
) -> OrgOut:
    """Platform admins only: a new tenant with its first admin."""
    org, _ = await service.create_org(session, body, principal, settings)
    return idempotency.remember(OrgOut.model_validate(org))


@router.patch("/platform/orgs/{org_id}", response_model=OrgOut, tags=["orgs"])
async def set_org_status(
    org_id: uuid.UUID,
    body: OrgStatusUpdate,
    session: SessionDep,
    principal: Annotated[Principal, Depends(require("platform:orgs"))],
) -> OrgOut:
    """Platform admins only: deactivate or reactivate a tenant (audited in that tenant)."""
    org = await service.set_org_active(session, principal, org_id, body.is_active)
    return OrgOut.model_validate(org)


@router.get("/org", response_model=OrgOut, tags=["orgs"])
async def current_org(read: Annotated[TenantRead, Depends(tenant_read("org:read"))]) -> OrgOut:
    return OrgOut.model_validate(await service.read_org(read))


@router.patch("/org", response_model=OrgOut, tags=["orgs"])
async def update_org(
    body: OrgUpdate,
    session: SessionDep,
    principal: Annotated[Principal, Depends(require("org:write"))],
) -> OrgOut:
    org = await service.get_org(session, principal)
    if body.name is not None:
        org = await service.rename_org(session, principal, body.name)
    return OrgOut.model_validate(org)


@router.get("/branches", response_model=Page[BranchOut], tags=["branches"])
async def list_branches(
    read: Annotated[TenantRead, Depends(tenant_read("branches:read"))], page: PageDep
) -> Response:
    items, total = await service.list_branches(read, page)
    return page_response(items, total, page)


@router.post("/branches", response_model=BranchOut, status_code=201, tags=["branches"])
async def create_branch(
    body: BranchCreate,
    write: Annotated[TenantWrite, Depends(tenant_write("branches:write", idempotent=True))],
) -> BranchOut:
    return await service.create_branch(write, body)


@router.get("/branches/{branch_id}", response_model=BranchOut, tags=["branches"])
async def get_branch(
    branch_id: uuid.UUID, read: Annotated[TenantRead, Depends(tenant_read("branches:read"))]
) -> BranchOut:
    return BranchOut.model_validate(await service.read_branch(read, branch_id))


@router.patch("/branches/{branch_id}", response_model=BranchOut, tags=["branches"])
async def update_branch(
    branch_id: uuid.UUID,
    body: BranchUpdate,
    session: SessionDep,
    principal: Annotated[Principal, Depends(require("branches:write"))],
) -> BranchOut:
    branch = await service.update_branch(session, principal, branch_id, body)
    return BranchOut.model_validate(branch)


# --- users -----------------------------------------------------------------------------


@router.get("/users", response_model=Page[MemberOut], tags=["users"])
async def list_users(
    read: Annotated[TenantRead, Depends(tenant_read("users:read"))],
    query: Annotated[MemberQuery, Depends(query_model(MemberQuery))],
) -> Response:
    items, total = await service.list_members(read, query)
    return page_response(items, total, query)


@router.post("/users", response_model=UserCreated, status_code=201, tags=["users"])
async def create_user(
    body: UserCreate,
    session: SessionDep,
    settings: SettingsDep,
    principal: Annotated[Principal, Depends(require("users:write"))],
    idempotency: IdempotencyDep,
) -> UserCreated:
    """Add a member; without `password` the member is emailed a one-time invitation link."""
    member, invitation = await service.create_member(session, principal, body, settings)
    created = UserCreated.model_validate(member)
    if invitation is not None:
        created.invitation = InvitationSent(
            expires_at=invitation.expires_at, email_job_id=invitation.email_job_id
        )
    return idempotency.remember(created)


@router.get("/users/{user_id}", response_model=MemberOut, tags=["users"])
async def get_user(
    user_id: uuid.UUID, read: Annotated[TenantRead, Depends(tenant_read("users:read"))]
) -> MemberOut:
    return MemberOut.model_validate(await service.read_member(read, user_id))


@router.patch("/users/{user_id}", response_model=MemberOut, tags=["users"])
async def update_user(
    user_id: uuid.UUID,
    body: UserUpdate,
    session: SessionDep,
    principal: Annotated[Principal, Depends(require("users:write"))],
) -> MemberOut:
    """Rename, change role or branch, or deactivate (`is_active: false`) a member."""
    member = await service.update_member(session, principal, user_id, body)
    return MemberOut.model_validate(member)


# --- API keys --------------------------------------------------------------------------


@router.get("/api-keys", response_model=Page[ApiKeyOut], tags=["api keys"])
async def list_api_keys(
    read: Annotated[TenantRead, Depends(tenant_read("api_keys:read"))], page: PageDep
) -> Response:
    items, total = await service.list_api_keys(read, page)
    return page_response(items, total, page)


@router.post("/api-keys", response_model=ApiKeyCreated, status_code=201, tags=["api keys"])
async def create_api_key(
    body: ApiKeyCreate,
    session: SessionDep,
    principal: Annotated[Principal, Depends(require("api_keys:write"))],
    idempotency: IdempotencyDep,
) -> ApiKeyCreated:
    key, secret = await service.create_api_key(session, principal, body)
    created = ApiKeyCreated(**ApiKeyOut.model_validate(key).model_dump(), key=secret)
    return idempotency.remember(created)


@router.delete("/api-keys/{key_id}", response_model=ApiKeyOut, tags=["api keys"])
async def revoke_api_key(
    key_id: uuid.UUID,
    session: SessionDep,
    principal: Annotated[Principal, Depends(require("api_keys:write"))],
) -> ApiKeyOut:
    return ApiKeyOut.model_validate(await service.revoke_api_key(session, principal, key_id))


# --- audit -----------------------------------------------------------------------------


@router.get("/audit-events", response_model=Page[AuditEventOut], tags=["audit"])
async def list_audit_events(
    read: Annotated[TenantRead, Depends(tenant_read("audit:read"))],
    page: PageDep,
    query: Annotated[AuditEventQuery, Depends(query_model(AuditEventQuery))],
) -> Response:
    filters = query.model_dump()
    items, total = await service.list_audit_events(read, page, filters)
    return page_response(items, total, page)
