"""Imports every module's models so Alembic sees one complete metadata."""

from touchstone.core.db import Base
from touchstone.identity import models as identity_models

metadata = Base.metadata

__all__ = ["identity_models", "metadata"]
