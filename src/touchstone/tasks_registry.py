"""Imports every module that defines jobs, so a worker knows every task name."""

from touchstone.core.jobs import maintenance

__all__ = ["maintenance"]
