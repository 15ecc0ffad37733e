"""Imports every module that defines jobs, so a worker knows every task name."""

from touchstone.appraisal import tasks as appraisal_tasks
from touchstone.arcontent import tasks as arcontent_tasks
from touchstone.attendance import tasks as attendance_tasks
from touchstone.core.email import tasks as email_tasks
from touchstone.core.jobs import maintenance
from touchstone.core.storage import removal as storage_tasks
from touchstone.identity import tasks as identity_tasks
from touchstone.research import tasks as research_tasks
from touchstone.statements import tasks as statement_tasks
from touchstone.webhooks import tasks as webhook_tasks

__all__ = [
    "appraisal_tasks",
    "arcontent_tasks",
    "attendance_tasks",
    "email_tasks",
    "identity_tasks",
    "maintenance",
    "research_tasks",
    "statement_tasks",
    "storage_tasks",
    "webhook_tasks",
]
