"""Administer tenants from a shell: orgs, their members and API keys, billing, the demo bank.

Every command works through the same services as the API, as the platform's `system`
principal inside one org, so it is audited there like any admin's change.
"""

from __future__ import annotations

import re
import secrets
from typing import Annotated

import typer

from touchstone.cli.context import JsonOption, Operator, OrgOption, command_name, operate, show
from touchstone.core.permissions import Role
from touchstone.identity import admin

orgs_app = typer.Typer(help="Organizations (tenants).", no_args_is_help=True)
users_app = typer.Typer(help="An org's members.", no_args_is_help=True)
apikeys_app = typer.Typer(help="An org's API keys.", no_args_is_help=True)
billing_app = typer.Typer(help="An org's plan and billing customer.", no_args_is_help=True)
EmailOption = Annotated[str, typer.Option(help="The member's email")]


@orgs_app.command("list")
def list_orgs(as_json: JsonOption = False) -> None:
    """Every org, active or not, with its active members."""

    async def work(op: Operator) -> None:
        rows = await admin.list_orgs(op.urls.admin, op.settings.database_owner_role)
        show(rows, as_json=as_json, title="Organizations")

    operate(work)


@orgs_app.command("create")
def create_org(
    name: str,
    admin_email: Annotated[str, typer.Option("--admin-email")],
    admin_password: Annotated[str | None, typer.Option("--admin-password")] = None,
    slug: Annotated[str | None, typer.Option(help="URL-safe id; derived from NAME")] = None,
    kind: Annotated[str, typer.Option(help="bank, company or school")] = "company",
    as_json: JsonOption = False,
) -> None:
    """Create an organization and its first admin (an invitation if no password)."""
    from touchstone.identity import service
    from touchstone.identity.schemas import OrgCreate

    async def work(op: Operator) -> None:
        data = OrgCreate(
            name=name,
            slug=slug or _slugify(name),
            kind=kind,
            admin_email=admin_email,
            admin_password=admin_password,
        )
        async with op.database.transaction() as session:
            org, invitation = await service.create_org(session, data, None, op.settings)
        if as_json:
            show(
                [{"id": org.id, "slug": org.slug, "invitation_token": invitation}],
                as_json=True,
                title="",
            )
            return
        typer.echo(f"org {org.slug} ({org.id}) created; admin {admin_email}")
        if invitation:
            typer.echo(
                f"invitation emailed to {admin_email}; its token (shown once): {invitation}\n"
                "the admin accepts it from the email's link, or with "
                'POST /api/v1/auth/invitations/accept {"token": "...", "password": "..."}'
            )

    operate(work)


@orgs_app.command("deactivate")
def deactivate_org(slug: str) -> None:
    """End an org's sessions and stop its API keys and sign-ins (audited)."""
    _set_org_active(slug, active=False)


@orgs_app.command("activate")
def activate_org(slug: str) -> None:
    """Let a deactivated org sign in again (earlier sessions stay ended)."""
    _set_org_active(slug, active=True)


def _set_org_active(slug: str, *, active: bool) -> None:
    async def work(op: Operator) -> None:
        await admin.set_org_active(op.database, slug, active)
        typer.echo(f"org {slug} is now {'active' if active else 'deactivated'}")

    operate(work)


@users_app.command("list")
def list_users(org: OrgOption, as_json: JsonOption = False) -> None:
    """An org's members, active or not."""

    async def work(op: Operator) -> None:
        show(await admin.list_users(op.database, org), as_json=as_json, title=f"Members of {org}")

    operate(work)


@users_app.command("create")
def create_user(
    org: OrgOption,
    email: EmailOption,
    role: Annotated[Role, typer.Option()],
    password: Annotated[str | None, typer.Option()] = None,
    full_name: Annotated[str, typer.Option("--full-name")] = "",
    branch: Annotated[
        str | None, typer.Option(help="Branch code; appraisers and branch managers need one")
    ] = None,
) -> None:
    """Add a member to an org (an invitation token is printed if no password)."""
    from touchstone.identity.schemas import UserCreate

    async def work(op: Operator) -> None:
        data = UserCreate(
            email=email, full_name=full_name or email.split("@")[0], role=role, password=password
        )
        invitation = await admin.add_user(op.database, op.settings, org, data, branch)
        typer.echo(
            f"{email} is now {role.value} in {org}" + (f", branch {branch}" if branch else "")
        )
        if invitation:
            typer.echo(f"invitation emailed to {email}; its token (shown once): {invitation}")

    operate(work)


@users_app.command("reset-password")
def reset_password(
    org: OrgOption,
    email: EmailOption,
    password: Annotated[
        str | None, typer.Option(help="The new password; a random one is printed if left out")
    ] = None,
) -> None:
    """Set a member's password and end their sessions (audited)."""

    async def work(op: Operator) -> None:
        new = await admin.reset_password(op.database, org, email, password)
        typer.echo(f"{email} in {org}: password reset, sessions ended")
        if password is None:
            typer.echo(f"new password (shown once): {new}")

    operate(work)


@users_app.command("deactivate")
def deactivate_user(org: OrgOption, email: EmailOption) -> None:
    """Deactivate a member: their sessions end and their API keys stop."""

    async def work(op: Operator) -> None:
        await admin.deactivate_user(op.database, org, email)
        typer.echo(f"{email} is deactivated in {org}")

    operate(work)


@apikeys_app.command("list")
def list_api_keys(org: OrgOption, as_json: JsonOption = False) -> None:
    """An org's API keys with their creator (never the secrets, which are not stored)."""

    async def work(op: Operator) -> None:
        rows = await admin.list_api_keys(op.database, org)
        show(rows, as_json=as_json, title=f"API keys of {org}")

    operate(work)


@apikeys_app.command("revoke")
def revoke_api_key(
    org: OrgOption, prefix: Annotated[str, typer.Option(help="The key's visible prefix")]
) -> None:
    """Revoke an API key at once (audited)."""

    async def work(op: Operator) -> None:
        await admin.revoke_api_key(op.database, org, prefix)
        typer.echo(f"key {prefix} of {org} is revoked")

    operate(work)


@billing_app.command("set")
def set_billing(
    org: OrgOption,
    reason: Annotated[str, typer.Option(help="Why; kept in the org's audit trail")],
    customer: Annotated[
        str | None, typer.Option(help="Stripe customer id (Stripe must confirm it)")
    ] = None,
    plan: Annotated[str | None, typer.Option(help="A plan of STATEMENTS_PLAN_QUOTAS")] = None,
    status: Annotated[
        str | None, typer.Option(help="active or trialing put the plan in force")
    ] = None,
) -> None:
    """Link an org to its billing customer, or set its plan and status (audited).

    The same change as `PATCH /api/v1/platform/orgs/{id}/billing`; otherwise only the
    provider's signed webhooks change a plan, and no tenant can."""
    from touchstone.statements import subscriptions
    from touchstone.statements.schemas import BillingChangeIn

    given = {"customer_id": customer, "plan": plan, "status": status}

    async def work(op: Operator) -> None:
        body = BillingChangeIn.model_validate(  # a bad value: exit 2, as for other commands
            {"reason": reason} | {k: v for k, v in given.items() if v is not None}
        )
        changed = await subscriptions.change_by_operator(
            op.database, op.settings, org, body.to_change()
        )
        typer.echo(
            f"{org}: plan {changed.plan}, status {changed.status}, "
            f"customer {changed.external_customer_id or '-'}"
        )

    operate(work)


def demo(
    reset: Annotated[
        bool,
        typer.Option("--reset", help="Set the demo members' passwords back and reactivate them"),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Load a demo bank with two branches and one member per role; print their credentials.

    Run it again to see the same credentials (they derive from this data directory's secret).
    """
    from touchstone.appraisal import service as appraisal

    async def work(op: Operator) -> tuple[bool, list[tuple[str, str, str]]]:
        org_id, created, credentials = await admin.load_demo(op.database, op.settings, reset=reset)
        if created:
            await appraisal.load_demo_rates(op.database, org_id)
        return created, credentials

    created, credentials = operate(work)
    rows = [
        {"role": role, "email": email, "password": password}
        for email, password, role in credentials
    ]
    if as_json:
        show(rows, as_json=True, title="")
        return
    if created:
        typer.echo("Demo bank 'demo-bank' loaded, with a 24K gold rate of Rs 7,000/g.")
    else:
        typer.echo("The demo bank is already loaded" + (" (passwords reset)." if reset else "."))
    show(rows, as_json=False, title="Sign in at POST /api/v1/auth/token with")
    typer.echo(
        f"Start over: {command_name()} demo --reset (passwords), or remove ./var (everything)"
    )


def _slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug[:60] or f"org-{secrets.token_hex(3)}"
