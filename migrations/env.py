"""Alembic environment: async engine, run as the owner role so it owns every object."""

import asyncio

from alembic import context
from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from touchstone.models_registry import metadata

config = context.config


def _run(connection: Connection) -> None:
    connection.exec_driver_sql(f'SET ROLE "{config.attributes["owner_role"]}"')
    context.configure(
        connection=connection,
        target_metadata=metadata,
        compare_type=True,
        include_schemas=False,
        include_object=_include_object,
    )
    with context.begin_transaction():
        context.run_migrations()


def _include_object(obj, name, type_, reflected, compare_to):  # type: ignore[no-untyped-def]
    """Tables that other libraries own (procrastinate's) are not ours to compare."""
    return not (type_ == "table" and name and name.startswith("procrastinate_"))


async def _run_async() -> None:
    engine = create_async_engine(config.attributes["url"], poolclass=pool.NullPool)
    async with engine.connect() as connection:
        await connection.run_sync(_run)
        await connection.commit()
    await engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run `touchstone migrate`")
asyncio.run(_run_async())
