"""Trying webhooks on one machine: the WEBHOOK_ALLOW_LOCAL preset (development only) and the
example receiver, end to end as the README runs them: register the receiver, start it with
the secret, ping, and the receiver prints the event it verified."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from pydantic import SecretStr, ValidationError
from tests.conftest import Tenant
from tests.core.events.conftest import free_port, serve
from tests.core.jobs.conftest import drain
from tests.webhooks.conftest import API, register

from touchstone.core.config import Settings
from touchstone.core.db import Database
from touchstone.core.postgres import DatabaseUrls
from touchstone.webhooks.exceptions import TargetRefused
from touchstone.webhooks.signing import signature_header
from touchstone.webhooks.targets import TargetPolicy

STRONG = SecretStr("k" * 48)
PROCESS_TIMEOUT_S = 60


def development(settings: Settings, **overrides: object) -> Settings:
    """The suite's settings as a developer's `make run` has them, with the preset on."""
    return settings.model_copy(
        update={"environment": "development", "webhook_allow_local": True} | overrides
    )


async def test_the_preset_allows_http_and_local_addresses(settings: Settings) -> None:
    policy = TargetPolicy.from_settings(development(settings))
    for url in ("http://127.0.0.1:9001/", "http://10.0.0.5/hook", "https://[::1]:8443/x"):
        await policy.vet(url)
    strict = TargetPolicy.from_settings(development(settings, webhook_allow_local=False))
    for url in ("http://127.0.0.1:9001/", "https://10.0.0.5/hook"):
        with pytest.raises(TargetRefused):
            await strict.vet(url)


@pytest.mark.parametrize("environment", ["production", "test"])
def test_the_preset_is_refused_outside_development(environment: str) -> None:
    with pytest.raises(ValidationError, match="WEBHOOK_ALLOW_LOCAL=true is for ENVIRONMENT=dev"):
        Settings(
            environment=environment,  # type: ignore[arg-type]
            secret_key=STRONG,
            public_url="https://touchstone.example",
            webhook_allow_local=True,
        )
    # the settings a deployment with receivers on its own network uses instead
    Settings(
        environment=environment,  # type: ignore[arg-type]
        secret_key=STRONG,
        public_url="https://touchstone.example",
        webhook_allow_private_targets=True,
        webhook_allow_http=True,
    )


@asynccontextmanager
async def receiver_process(port: int, secret: str) -> AsyncIterator[asyncio.subprocess.Process]:
    """`python -m touchstone.webhooks.receiver`, as the README starts it, until it is ready."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "touchstone.webhooks.receiver",
        "--port",
        str(port),
        "--secret",
        secret,
        "--count",
        "1",
        "--timeout",
        str(PROCESS_TIMEOUT_S),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stderr is not None
        async with asyncio.timeout(PROCESS_TIMEOUT_S):
            ready = await process.stderr.readline()
        assert ready.decode().startswith(f"listening on http://127.0.0.1:{port}/"), ready
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


@pytest.mark.slow
async def test_the_example_receiver_gets_a_ping_it_can_verify(
    settings: Settings, committed: Database, database_urls: DatabaseUrls, tenant: Tenant
) -> None:
    local = development(settings)
    port = free_port()
    url = f"http://127.0.0.1:{port}/touchstone"
    async with (
        serve(local, committed) as server,
        httpx.AsyncClient(base_url=server.url, headers=tenant.headers) as api,
    ):
        webhook = await register(api, tenant, url)
        async with receiver_process(port, webhook["secret"]) as receiver:
            async with httpx.AsyncClient() as stranger:  # an unsigned or forged request
                forged = signature_header("whsec_not-the-secret", int(time.time()), b"{}")
                for headers in ({}, {"Touchstone-Signature": forged}):
                    refused = await stranger.post(url, content=b"{}", headers=headers)
                    assert refused.status_code == 400, refused.text
            sent = await api.post(f"{API}/webhooks/{webhook['id']}/ping")
            assert sent.status_code == 202, sent.text
            await drain(local, database_urls)  # the worker `make run` starts beside the API
            async with asyncio.timeout(PROCESS_TIMEOUT_S):
                out, err = await receiver.communicate()
            assert receiver.returncode == 0, err.decode()
        (line,) = out.decode().splitlines()
        printed = json.loads(line)
        assert printed["verified"] is True
        assert (printed["topic"], printed["delivery_id"]) == ("webhook.ping", sent.json()["id"])
        assert printed["event"] == sent.json()["payload"]
        assert err.decode().count("bad signature") == 2
        delivered = await api.get(f"{API}/webhooks/{webhook['id']}/deliveries")
    (delivery,) = delivered.json()["items"]
    assert (delivery["status"], delivery["last_status_code"]) == ("succeeded", 200)
