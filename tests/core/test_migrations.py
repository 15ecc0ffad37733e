"""`alembic check`: the models and the migrations describe the same schema."""

from __future__ import annotations

from touchstone.core.config import Settings
from touchstone.core.migrations import check_models_match, migration_head
from touchstone.core.postgres import DatabaseUrls


def test_models_and_migrations_agree(database_urls: DatabaseUrls, settings: Settings) -> None:
    check_models_match(
        database_urls.admin, settings.database_owner_role, settings.database_runtime_role
    )


def test_there_is_exactly_one_head() -> None:
    assert migration_head() is not None
