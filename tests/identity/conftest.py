"""Delivering email for real in identity tests: a worker run that sends at once."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from tests.core.jobs.conftest import drain
from touchstone.core.config import Settings
from touchstone.core.email import tasks as email_tasks
from touchstone.core.postgres import DatabaseUrls
from touchstone.identity import tasks as identity_tasks

Deliver = Callable[[], Awaitable[None]]


@pytest.fixture
def deliver(
    settings: Settings, database_urls: DatabaseUrls, monkeypatch: pytest.MonkeyPatch
) -> Deliver:
    """Run the worker until no job is due: the reset lookups, then the emails (retries are
    due at once here; production waits 3 ** n seconds)."""
    monkeypatch.setattr(email_tasks.send_email.retry_strategy, "backoff_seconds", 0)
    monkeypatch.setattr(identity_tasks.issue_password_resets.retry_strategy, "exponential_wait", 0)

    async def run() -> None:
        await drain(settings, database_urls)

    return run
