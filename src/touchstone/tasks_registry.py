"""Imports every module that defines jobs, so a worker knows every task name."""

from touchstone.core.jobs import maintenance
from touchstone.webhooks import tasks as webhook_tasks

__all__ = ["maintenance", "webhook_tasks"]
