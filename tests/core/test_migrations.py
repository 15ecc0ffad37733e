"""`alembic check`: the models and the migrations describe the same schema."""

from __future__ import annotations

import uuid

import psycopg
from alembic import command

from touchstone.core.config import Settings
from touchstone.core.migrations import alembic_config, check_models_match, migration_head
from touchstone.core.postgres import DatabaseUrls, libpq_dsn, provision


def test_models_and_migrations_agree(database_urls: DatabaseUrls, settings: Settings) -> None:
    check_models_match(
        database_urls.admin, settings.database_owner_role, settings.database_runtime_role
    )


def test_there_is_exactly_one_head() -> None:
    assert migration_head() is not None


def test_accounts_shared_by_several_orgs_are_split_per_org(
    database_urls: DatabaseUrls, settings: Settings
) -> None:
    """0009: a person in two orgs becomes two accounts; each org's rows follow its own."""
    scratch = settings.model_copy(update={"database_name": f"{settings.database_name}_split"})
    admin = database_urls.admin.set(database=scratch.database_name)
    server = libpq_dsn(admin.set(database="postgres"))
    drop = f'DROP DATABASE IF EXISTS "{scratch.database_name}" WITH (FORCE)'
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(drop)
    provision(scratch, admin)
    config = alembic_config(admin, settings.database_owner_role, settings.database_runtime_role)
    try:
        command.upgrade(config, "0008")
        org_a, org_b, person = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        with psycopg.connect(libpq_dsn(admin), autocommit=True) as conn:
            for org, slug in ((org_a, "a"), (org_b, "b")):
                conn.execute(
                    "insert into orgs (id, name, slug, kind) values (%s, %s, %s, %s)",
                    (org, slug, slug, "bank"),
                )
            conn.execute(
                "insert into users (id, email, full_name, password_hash) "
                "values (%s, 'p@x.example', 'P', 'hash')",
                (person,),
            )
            for org, role, age in ((org_a, "org_admin", "2 days"), (org_b, "viewer", "1 day")):
                conn.execute(
                    "insert into memberships (id, org_id, user_id, role, created_at) "
                    "values (%s, %s, %s, %s, now() - %s::interval)",
                    (uuid.uuid4(), org, person, role, age),
                )
                conn.execute(
                    "insert into audit_events (id, org_id, actor_type, actor_id, action, "
                    "object_type, changes) values (%s, %s, 'user', %s, 'x', 'y', '{}')",
                    (uuid.uuid4(), org, person),
                )
        command.upgrade(config, "0009")
        with psycopg.connect(libpq_dsn(admin)) as conn:
            accounts = dict(conn.execute("select org_id, id from users").fetchall())
            members = dict(conn.execute("select org_id, user_id from memberships").fetchall())
            actors = dict(conn.execute("select org_id, actor_id from audit_events").fetchall())
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(drop)
    assert accounts[org_a] == person  # the oldest membership keeps the row
    assert accounts[org_b] != person
    assert members == actors == accounts
