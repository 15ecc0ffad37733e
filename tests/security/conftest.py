"""The security suite's client: the root one plus the webhook tests' fake DNS, so a webhook
target registers without leaving the machine."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.webhooks.conftest import app_client
from touchstone.core.config import Settings
from touchstone.core.db import Database


@pytest.fixture
async def client(settings: Settings, database: Database) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(settings, database) as client:
        yield client
