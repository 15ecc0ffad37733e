"""Imports every module's models so Alembic sees one complete metadata."""

from touchstone.appraisal import models as appraisal_models
from touchstone.arcontent import models as arcontent_models
from touchstone.attendance import models as attendance_models
from touchstone.core import audit, idempotency_models
from touchstone.core.db import Base
from touchstone.core.email import models as email_models
from touchstone.core.events import models as event_models
from touchstone.core.jobs import models as job_models
from touchstone.identity import models as identity_models
from touchstone.research import models as research_models
from touchstone.statements import models as statement_models
from touchstone.webhooks import models as webhook_models

metadata = Base.metadata

__all__ = [
    "appraisal_models",
    "arcontent_models",
    "attendance_models",
    "audit",
    "email_models",
    "event_models",
    "idempotency_models",
    "identity_models",
    "job_models",
    "metadata",
    "research_models",
    "statement_models",
    "webhook_models",
]
