"""No secret reaches a log line (OWASP API8, and the DPDP/GDPR rule for ID numbers).

A representative attack and use flow runs at DEBUG with JSON logs captured; every password,
token, key, webhook secret, PDF password and ID-document number it handled is then looked
for in every line, raw and in the forms a log could carry it (no spaces, JSON-escaped).
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import structlog

from tests.conftest import PASSWORD, Tenant, assert_problem
from tests.security.world import API, World, statement_pdf
from tests.webhooks.conftest import NAMES, policy_override
from touchstone.core.config import Settings
from touchstone.core.db import Database
from touchstone.core.logging import configure_logging
from touchstone.main import create_app
from touchstone.webhooks.dependencies import target_policy

ID_NUMBER = "9876 5432 1098"
PDF_PASSWORD = "pdf-Secret-4711"
NEW_PASSWORD = "a brand new passphrase 42"
WRONG_PASSWORD = "wrong-Passphrase-0815"


async def _flow(client: httpx.AsyncClient, tenant: Tenant, world: World) -> list[str]:
    """Sign-ins, rotation and reuse, keys, forgeries, sensitive inputs; returns the secrets."""
    secrets = [PASSWORD, WRONG_PASSWORD, NEW_PASSWORD, PDF_PASSWORD, ID_NUMBER, tenant.token]
    form = {"username": tenant.admin_email, "password": WRONG_PASSWORD}
    assert_problem(await client.post(f"{API}/auth/token", data=form), 401)
    signed_in = await client.post(f"{API}/auth/token", data=form | {"password": PASSWORD})
    first = signed_in.json()
    rotated = (
        await client.post(f"{API}/auth/refresh", json={"refresh_token": first["refresh_token"]})
    ).json()
    reuse = await client.post(f"{API}/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert_problem(reuse, 401, "refresh_token_reused")
    secrets += [
        first["access_token"],
        first["refresh_token"],
        rotated["access_token"],
        rotated["refresh_token"],
    ]

    key = (
        await client.post(
            f"{API}/api-keys", headers=tenant.headers, json={"name": "ci", "scopes": ["users:read"]}
        )
    ).json()
    # tsk_<prefix>_<secret>: the secret is all after the second "_" (it may hold more "_";
    # after the last one alone, it could be one character, found in any log line).
    secrets += [key["key"], key["key"].split("_", 2)[2]]
    assert (await client.get(f"{API}/users", headers={"X-API-Key": key["key"]})).status_code == 200
    await client.delete(f"{API}/api-keys/{key['id']}", headers=tenant.headers)
    assert_problem(await client.get(f"{API}/users", headers={"X-API-Key": key["key"]}), 401)
    forged = first["access_token"].rsplit(".", 1)[0] + ".AAAA"
    assert_problem(
        await client.get(f"{API}/me", headers={"Authorization": f"Bearer {forged}"}), 401
    )

    hook = (
        await client.post(
            f"{API}/webhooks", headers=tenant.headers, json={"url": "https://hooks.example.com/x"}
        )
    ).json()
    secrets.append(hook["secret"])
    bank = await world.the_bank()
    customer = {
        "full_name": "Asha Rao",
        "phone": "+91 99887 76655",
        "id_document_type": "aadhaar",
        "id_number": ID_NUMBER,
    }
    created = await client.post(f"{API}/customers", headers=bank.appraiser.headers, json=customer)
    assert created.status_code == 201, created.text
    files = [("files", ("locked.pdf", statement_pdf(), "application/pdf"))]
    batch = (
        await client.post(
            f"{API}/batches",
            headers=tenant.headers,
            files=files,
            data={"passwords": json.dumps({"locked.pdf": PDF_PASSWORD})},
        )
    ).json()
    statement = batch["statements"][0]["id"]
    await client.post(
        f"{API}/batches/{batch['id']}/statements/{statement}/password",
        headers=tenant.headers,
        json={"password": PDF_PASSWORD},
    )
    change = {"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    assert (
        await client.post(f"{API}/me/password", headers=tenant.headers, json=change)
    ).status_code == 204
    assert_problem(
        await client.get(
            f"{API}/boom", headers={"Authorization": f"Bearer {rotated['access_token']}"}
        ),
        500,
    )
    return secrets


def _forms(secret: str) -> set[str]:
    return {secret, secret.replace(" ", ""), json.dumps(secret)[1:-1]}


async def test_no_secret_appears_in_any_log_line(
    settings: Settings,
    database: Database,
    tenant_a: Tenant,
    capsys: pytest.CaptureFixture[str],
) -> None:
    verbose = settings.model_copy(update={"log_level": "DEBUG", "log_format": "json"})
    app = create_app(verbose, database=database)  # logging now writes to the captured stderr

    async def boom() -> None:
        password = PASSWORD  # a local a traceback renderer with locals would print
        raise RuntimeError(f"failed after {len(password)} characters")

    app.add_api_route(f"{API}/boom", boom)
    app.dependency_overrides[target_policy] = policy_override(NAMES)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            world = World(client, database, tenant_a)
            secrets = await _flow(client, tenant_a, world)
        captured = capsys.readouterr()
    finally:
        with capsys.disabled():
            configure_logging(settings)  # back to the real stderr for later tests
    lines = [line for line in (captured.out + captured.err).splitlines() if line.strip()]
    records: list[dict[str, Any]] = [json.loads(line) for line in lines]
    assert sum(r.get("event") == "request" for r in records) >= 20, "the logs were not captured"
    assert any(r.get("event") == "unhandled_error" for r in records)
    leaks = [
        (secret[:6] + "…", line[:120])
        for secret in secrets
        for form in _forms(secret)
        for line in lines
        if form in line
    ]
    assert leaks == [], f"secrets in the logs: {leaks}"
    structlog.contextvars.clear_contextvars()
