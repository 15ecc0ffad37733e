"""Run Alembic programmatically, as the owner role, against any database URL."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy.engine import URL

MIGRATIONS_DIR = Path(__file__).resolve().parents[3] / "migrations"


def alembic_config(admin: URL, owner_role: str, runtime_role: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["url"] = admin
    config.attributes["owner_role"] = owner_role
    config.attributes["runtime_role"] = runtime_role
    return config


def upgrade_to_head(admin: URL, owner_role: str, runtime_role: str) -> None:
    command.upgrade(alembic_config(admin, owner_role, runtime_role), "head")


def check_models_match(admin: URL, owner_role: str, runtime_role: str) -> None:
    """Raise if the models and the migrated schema disagree (what `alembic check` does)."""
    command.check(alembic_config(admin, owner_role, runtime_role))


def migration_head() -> str | None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return ScriptDirectory.from_config(config).get_current_head()
