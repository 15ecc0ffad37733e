"""Imports every module that defines jobs, so a worker knows every task name."""

from touchstone.appraisal import tasks as appraisal_tasks
from touchstone.core.jobs import maintenance
from touchstone.statements import tasks as statement_tasks
from touchstone.webhooks import tasks as webhook_tasks

__all__ = ["appraisal_tasks", "maintenance", "statement_tasks", "webhook_tasks"]
