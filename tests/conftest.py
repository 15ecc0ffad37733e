"""Real PostgreSQL for every test, as the runtime role, with per-test rollback.

Each xdist worker gets its own database (migrated once). A test's requests all run on one
connection inside a transaction that is rolled back at the end; the app commits only
savepoints. Set TEST_DATABASE_URL to use an external server instead of the embedded one.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.pq import TransactionStatus
from sqlalchemy import text
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    async_sessionmaker,
    create_async_engine,
)

from tests.mail import MailServer
from touchstone.core.config import Settings
from touchstone.core.db import Database, TenantSession
from touchstone.core.permissions import Role
from touchstone.core.postgres import DatabaseUrls, admin_url, libpq_dsn, prepare_database
from touchstone.identity import service
from touchstone.identity.schemas import OrgCreate, UserCreate
from touchstone.main import create_app

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "correct horse battery staple"


def _test_settings(worker: str, smtp: MailServer | None = None) -> Settings:
    # The process id keeps concurrent test runs (two terminals, CI beside a developer) apart.
    name = f"touchstone_test_{worker}_{os.getpid()}"
    overrides: dict[str, object] = {
        "environment": "test",
        "data_dir": ROOT / "var" / "test",
        "database_name": name,
        "secret_key": "test-secret-key-that-is-long-enough-0123456789",
        "login_rate_limit": "1000/minute",
        "login_rate_limit_per_ip": "10000/minute",
        "rate_limit_default": "100000/minute",  # tests/core/test_ratelimit.py sets low ones
        "rate_limit_per_ip": "100000/minute",
        "password_hash_time_cost": 1,  # cheap hashes keep the suite fast; same code path
        "password_hash_memory_kib": 1024,
        "log_level": "WARNING",
        "health_requires_worker": False,  # ASGI tests run no worker; test_health covers it
        # The in-process defaults; Redis-backed paths are tested on their own with REDIS_URL.
        "redis_url": None,
    }
    if smtp is not None:  # every email of the suite goes to the suite's own SMTP server
        overrides |= {"smtp_host": smtp.host, "smtp_port": smtp.port, "smtp_security": "none"}
    if url := os.environ.get("TEST_DATABASE_URL"):
        overrides["database_url"] = url.rsplit("/", 1)[0] + f"/{name}"
    return Settings(**overrides)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[MailServer]:
    """A real SMTP server (aiosmtpd) receiving this worker's email (see tests/mail.py)."""
    server = MailServer()
    server.server.start()
    yield server
    server.server.stop()


@pytest.fixture(scope="session")
def settings(worker_id: str, smtp_server: MailServer) -> Settings:
    return _test_settings(worker_id, smtp_server)


@pytest.fixture(scope="session")
def database_urls(settings: Settings) -> Iterator[DatabaseUrls]:
    admin = admin_url(settings)
    drop = f'DROP DATABASE IF EXISTS "{admin.database}" WITH (FORCE)'
    with psycopg.connect(libpq_dsn(admin.set(database="postgres")), autocommit=True) as conn:
        conn.execute(drop)
    yield prepare_database(settings)
    with psycopg.connect(libpq_dsn(admin.set(database="postgres")), autocommit=True) as conn:
        conn.execute(drop)


@pytest.fixture(scope="session")
async def engine(database_urls: DatabaseUrls) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(database_urls.runtime, pool_size=5)
    yield engine
    await engine.dispose()


@pytest.fixture
async def connection(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    async with engine.connect() as connection:
        transaction = await connection.begin()
        await connection.exec_driver_sql("select 1")  # begun on the server: reads join it
        yield connection
        await transaction.rollback()


@pytest.fixture
def database(connection: AsyncConnection, settings: Settings) -> Database:
    """A Database whose sessions all join the test's transaction as savepoints."""
    database = Database.__new__(Database)
    database.engine = connection.engine
    database.sessionmaker = async_sessionmaker(
        bind=connection,
        expire_on_commit=False,
        sync_session_class=TenantSession,
        join_transaction_mode="create_savepoint",
    )

    @asynccontextmanager
    async def direct_connection() -> AsyncIterator[Any]:
        yield (await connection.get_raw_connection()).driver_connection

    database.direct_connection = direct_connection  # type: ignore[method-assign]
    return database


@pytest.fixture
async def client(settings: Settings, database: Database) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, database=database)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


@dataclass
class Tenant:
    org_id: uuid.UUID
    slug: str
    admin_email: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def make_tenant(
    database: Database, settings: Settings, client: httpx.AsyncClient, name: str
) -> Tenant:
    slug = f"{name}-{uuid.uuid4().hex[:8]}"
    email = f"admin@{slug}.example.com"
    async with database.transaction() as session:
        org, _ = await service.create_org(
            session,
            OrgCreate(
                name=name.title(),
                slug=slug,
                kind="bank",
                admin_email=email,
                admin_password=PASSWORD,
            ),
            None,
            settings,
        )
    token = await login(client, email, PASSWORD)
    return Tenant(org.id, slug, email, token)


async def login(
    client: httpx.AsyncClient, email: str, password: str = PASSWORD, org: str | None = None
) -> str:
    form = {"username": email, "password": password} | ({"org": org} if org else {})
    response = await client.post("/api/v1/auth/token", data=form)
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


async def add_member(
    client: httpx.AsyncClient, tenant: Tenant, role: Role, branch_id: str | None = None
) -> tuple[str, dict[str, str]]:
    """Create a member with a password; return (user id, auth headers)."""
    email = f"{role.value}-{uuid.uuid4().hex[:6]}@{tenant.slug}.example.com"
    body = UserCreate(
        email=email,
        full_name=role.value,
        role=role,
        password=PASSWORD,
        branch_id=uuid.UUID(branch_id) if branch_id else None,
    )
    response = await client.post(
        "/api/v1/users", headers=tenant.headers, json=body.model_dump(mode="json")
    )
    assert response.status_code == 201, response.text
    token = await login(client, email, org=tenant.slug)
    return response.json()["id"], {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def tenant_a(database: Database, settings: Settings, client: httpx.AsyncClient) -> Tenant:
    return await make_tenant(database, settings, client, "alpha")


@pytest.fixture
async def tenant_b(database: Database, settings: Settings, client: httpx.AsyncClient) -> Tenant:
    return await make_tenant(database, settings, client, "bravo")


def assert_problem(
    response: httpx.Response, status: int, code: str | None = None
) -> dict[str, Any]:
    """Assert an RFC 9457 problem response with `status` (and `code`); return its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    if code is not None:
        assert body["code"] == code, body
    return body


# --- a committed world: for tests where other connections or processes must see the data ---
# (workers, the outbox relay, live servers). Every tenant gets a unique slug, so leftovers
# from earlier tests never collide; the per-worker database is dropped at the next run.


@pytest.fixture
async def committed(database_urls: DatabaseUrls, settings: Settings) -> AsyncIterator[Database]:
    database = Database(database_urls.runtime, settings)
    yield database
    await database.dispose()


@pytest.fixture
async def live_client(settings: Settings, committed: Database) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, database=committed)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


async def committed_tenant(
    committed: Database, settings: Settings, client: httpx.AsyncClient
) -> Tenant:
    slug = f"live-{uuid.uuid4().hex[:8]}"
    email = f"admin@{slug}.example.com"
    async with committed.transaction() as session:
        org, _ = await service.create_org(
            session,
            OrgCreate(name=slug, slug=slug, admin_email=email, admin_password=PASSWORD),
            None,
            settings,
        )
    return Tenant(org.id, slug, email, await login(client, email))


@pytest.fixture
async def tenant(committed: Database, settings: Settings, live_client: httpx.AsyncClient) -> Tenant:
    return await committed_tenant(committed, settings, live_client)


async def assert_left_clean(pooled: Database, table: str) -> None:
    """A pooled direct connection is idle and in no tenant, and a new session sees no row
    of `table` (row-level security without a tenant)."""
    async with pooled.direct_connection() as connection:
        assert connection.info.transaction_status == TransactionStatus.IDLE
        cursor = await connection.execute("select current_setting('app.org_id', true)")
        assert (await cursor.fetchone()) in (("",), (None,))
    async with pooled.transaction() as session:
        rows = await session.execute(text(f"select count(*) from {table}"))
        assert rows.scalar() == 0
