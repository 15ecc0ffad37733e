"""Attacks on authentication and input (OWASP API2, API3, API4, API8), over every route
where the attack applies.

Cases already proven elsewhere are not repeated: forged tokens against `/me`
(tests/identity/test_auth.py::test_hostile_access_tokens_are_refused, whose forgeries are
reused here against every kind of credential check), refresh-token reuse revoking the family
(test_auth.py::test_refresh_rotates_and_reuse_revokes_the_family), revoked and expired API
keys (tests/identity/test_api_keys.py), SSRF webhook targets
(tests/webhooks/test_api.py::test_registration_refuses_unsafe_targets and test_targets.py),
forged Stripe webhooks (tests/statements/test_billing.py).
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from tests.conftest import PASSWORD, Tenant, assert_problem
from tests.identity.test_auth import ATTACKS, HS256, _forge, _hs256, rsa_key  # noqa: F401
from tests.security.test_cross_tenant import openapi, operations
from tests.security.world import (
    API,
    PARAM,
    PNG,
    World,
    make_platform_admin,
    request_body,
    resolve,
    statement_pdf,
)
from touchstone.core.audit import AuditEvent
from touchstone.core.config import Settings
from touchstone.core.db import Database
from touchstone.main import create_app

CONTROL = ["\x00", "\x1b[31m"]
"""NUL fails in PostgreSQL as a 500 if it gets there; ESC forges terminal output in logs."""


def _app_client(settings: Settings, database: Database, **overrides: Any) -> httpx.AsyncClient:
    app = create_app(settings.model_copy(update=overrides), database=database)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://test")


# --- forged credentials on every kind of check -------------------------------------------

KID_ATTACKS = {
    "kid-path-traversal-empty-key": lambda claims, secret, key: _forge(
        HS256 | {"kid": "../../../../dev/null"}, claims, _hs256(b"")
    ),
    "kid-sql-injection": lambda claims, secret, key: _forge(
        HS256 | {"kid": "x' UNION SELECT 'k'--"}, claims, _hs256(b"k")
    ),
    "embedded-jwk": lambda claims, secret, key: jwt.encode(
        claims,
        key,
        algorithm="RS256",
        headers={"jwk": json.loads(RSAAlgorithm.to_jwk(key.public_key()))},
    ),
    "jku-elsewhere": lambda claims, secret, key: jwt.encode(
        claims, key, algorithm="RS256", headers={"jku": "https://evil.example/jwks.json"}
    ),
}


async def test_forged_tokens_are_refused_by_every_kind_of_credential_check(
    client: httpx.AsyncClient,
    settings: Settings,
    tenant_a: Tenant,
    database: Database,
    rsa_key: rsa.RSAPrivateKey,  # noqa: F811
) -> None:
    """The session dependency, the hot-read path, the file route's own check, job status and
    the event stream each authenticate; each must refuse every forgery."""
    world = World(client, database, tenant_a)
    targets = [
        f"{API}/me",
        f"{API}/users",  # tenant_read
        f"{API}/files/{(await world.ids_for(f'{API}/files/{{key}}'))['key']}",
        f"{API}/jobs/{world.ids['job_id']}",
        f"{API}/events",
    ]
    claims = jwt.decode(tenant_a.token, options={"verify_signature": False})
    secret = settings.secret_key.get_secret_value().encode()
    control = _forge(HS256, claims, _hs256(secret))
    accepted = []
    for url in targets[:-1]:
        response = await client.get(url, headers={"Authorization": f"Bearer {control}"})
        assert response.status_code == 200, (url, response.text)
    for attack, forge in (ATTACKS | KID_ATTACKS).items():
        token = forge(claims, secret, rsa_key)
        for url in targets:
            for headers in ({"Authorization": f"Bearer {token}"}, {"X-API-Key": token}):
                response = await client.get(url, headers=headers)
                if response.status_code != 401:
                    accepted.append((attack, url, response.status_code))
    assert accepted == [], f"forged credentials were not refused with 401: {accepted}"


# --- brute force --------------------------------------------------------------------------


async def test_repeated_failed_logins_lock_the_email_with_an_audit_event(
    settings: Settings, database: Database, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    async with _app_client(settings, database, login_lockout_failures=3) as limited:

        async def sign_in(email: str, password: str) -> httpx.Response:
            form = {"username": email, "password": password}
            return await limited.post(f"{API}/auth/token", data=form)

        for _ in range(2):
            assert_problem(await sign_in(tenant_a.admin_email, "guess"), 401, "invalid_credentials")
        locked = assert_problem(await sign_in(tenant_a.admin_email, "guess"), 429, "login_locked")
        assert "access_token" not in json.dumps(locked)
        # Locked means locked: the right password does not open it, nor does the case.
        right = await sign_in(tenant_a.admin_email.upper(), PASSWORD)
        assert_problem(right, 429, "login_locked")
        assert int(right.headers["retry-after"]) >= 1
        # Unknown emails lock the same way, so a lock reveals nothing about who exists.
        ghost = f"ghost-{uuid.uuid4().hex}@example.com"
        answers = [(await sign_in(ghost, "guess")).status_code for _ in range(3)]
        assert answers == [401, 401, 429]
        # Another account is untouched.
        assert (await sign_in(tenant_b.admin_email, PASSWORD)).status_code == 200

    async with database.transaction(org_id=tenant_a.org_id) as session:
        events = (
            (
                await session.execute(
                    select(AuditEvent).where(
                        AuditEvent.org_id == tenant_a.org_id,
                        AuditEvent.action == "auth.locked_out",
                    )
                )
            )
            .scalars()
            .all()
        )
    assert [(e.object_type, e.actor_type, e.changes) for e in events] == [
        ("user", "system", {"failures": 3})
    ]


# --- mass assignment, control characters: every JSON body --------------------------------

SMUGGLED = {
    "org_id": str(uuid.uuid4()),
    "id": str(uuid.uuid4()),
    "role": "platform_admin",
    "is_platform_admin": True,
    "created_by": str(uuid.uuid4()),
    "status": "approved",
    "permissions": ["platform:orgs"],
}


def _json_operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for method, path, operation in operations(document)
        if "application/json" in operation.get("requestBody", {}).get("content", {})
    ]


async def test_every_json_body_refuses_fields_it_does_not_declare(
    client: httpx.AsyncClient, tenant_a: Tenant, database: Database, connection: AsyncConnection
) -> None:
    """Mass assignment: `org_id`, `role`, `id`... are refused with 422 naming the field, on
    every create and update, by a caller allowed to use the route, with ids of its own
    objects: only the schema stops the request."""
    document = await openapi(client)
    world = World(client, database, tenant_a)
    await make_platform_admin(connection, tenant_a)
    accepted, tried = [], 0
    for method, path, operation in _json_operations(document):
        schema = resolve(
            document, operation["requestBody"]["content"]["application/json"]["schema"]
        )
        assert schema.get("additionalProperties") is False, f"{path} accepts unknown fields"
        body = request_body(document, operation)["json"]
        smuggled = {k: v for k, v in SMUGGLED.items() if k not in schema.get("properties", {})}
        url = path.format(**await world.ids_for(path))
        response = await client.request(
            method.upper(), url, headers=tenant_a.headers, json=body | smuggled
        )
        tried += len(smuggled)
        named = {p["name"] for p in response.json().get("invalid_params", [])}
        if response.status_code != 422 or not set(smuggled) <= named:
            accepted.append((method.upper(), path, response.status_code, set(smuggled) - named))
    assert accepted == [], f"undeclared fields were not refused: {accepted}"
    assert tried >= 100


async def test_control_characters_in_any_string_field_are_422_never_500(
    client: httpx.AsyncClient, tenant_a: Tenant, database: Database, connection: AsyncConnection
) -> None:
    document = await openapi(client)
    world = World(client, database, tenant_a)
    await make_platform_admin(connection, tenant_a)
    wrong = []
    for method, path, operation in _json_operations(document):
        body = request_body(document, operation)["json"]
        url = path.format(**await world.ids_for(path))
        for field in [k for k, v in body.items() if isinstance(v, str)]:
            for control in CONTROL:
                response = await client.request(
                    method.upper(),
                    url,
                    headers=tenant_a.headers,
                    json=body | {field: f"a{control}b"},
                )
                if response.status_code != 422:
                    wrong.append((method.upper(), path, field, repr(control), response.status_code))
    assert wrong == []
    for url in (f"{API}/users?sort=%00", f"{API}/customers?q=a%00b", f"{API}/users/%00"):
        assert_problem(await client.get(url, headers=tenant_a.headers), 422)


async def test_every_json_body_at_its_length_limits_never_500(
    client: httpx.AsyncClient, tenant_a: Tenant, database: Database, connection: AsyncConnection
) -> None:
    """Every free-text field at its declared maxLength, in multi-byte characters: a schema
    that allows more than its column holds fails here, not in PostgreSQL at run time."""
    document = await openapi(client)
    world = World(client, database, tenant_a)
    await make_platform_admin(connection, tenant_a)
    failed = []
    for method, path, operation in _json_operations(document):
        url = path.format(**await world.ids_for(path))
        response = await client.request(
            method.upper(),
            url,
            headers=tenant_a.headers,
            **request_body(document, operation, longest=True),
        )
        if response.status_code >= 500:
            failed.append((method.upper(), path, response.status_code))
    assert failed == []


UNICODE_NAMES = {
    "rtl-override": "invoice\u202egnp.exe",
    "zero-width": "Ad\u200bmin\u200d\ufeff",
    "emoji": "Gold 🪙✨👩🏽‍💼",
    "combining": "Z̴̧̛a̷͓̐l̶̰̈g̸̣̈o̴͇͝",
    "astral-only": "".join(chr(0x1D57F + i) for i in range(12)),  # fraktur letters
    "long": "ॐ" * 200,
    "too-long": "名" * 5000,
    "lone-surrogate-escape": "\\ud800",
    "nbsp-only": "\u00a0\u2003",
}
NAMED_CREATES = {
    f"{API}/branches": lambda name: {"name": name, "code": uuid.uuid4().hex[:6].upper()},
    f"{API}/customers": lambda name: {
        "full_name": name,
        "phone": "+91 98765 43210",
        "id_document_type": "aadhaar",
        "id_number": "1234 5678 9012",
    },
    f"{API}/statement-rules": lambda name: {
        "name": name,
        "category": "rent",
        "keywords": [name],
    },
    f"{API}/api-keys": lambda name: {"name": name, "scopes": ["statements:read"]},
}


async def test_unicode_edge_cases_in_names_are_kept_or_refused_never_500(
    client: httpx.AsyncClient, tenant_a: Tenant, database: Database
) -> None:
    """Accepted names come back exactly as sent (less outer whitespace); others are 422."""
    await World(client, database, tenant_a).the_bank()  # customers need a bank's set-up
    for case, name in UNICODE_NAMES.items():
        for url, body in NAMED_CREATES.items():
            response = await client.post(url, headers=tenant_a.headers, json=body(name))
            assert response.status_code in (201, 422), (url, case, response.text)
            if response.status_code == 201:
                created = response.json()
                assert created.get("name", created.get("full_name")) == name.strip(), (url, case)


# --- extreme pagination -------------------------------------------------------------------

EXTREMES: list[dict[str, Any]] = [
    {"limit": 0},
    {"limit": -1},
    {"limit": 10**12},
    {"limit": "1e3"},
    {"offset": -1},
    {"offset": 10**12},
    {"offset": 10**30},
    {"sort": "name; DROP TABLE users"},
    {"sort": "-(select 1)"},
    {"sort": "__class__"},
    {"sort": "org_id"},
    {"sort": "--created_at"},
]


async def test_extreme_pagination_is_a_422_or_an_empty_page_never_500(
    client: httpx.AsyncClient, tenant_a: Tenant, database: Database
) -> None:
    document = await openapi(client)
    world = World(client, database, tenant_a)
    lists = [
        (path, operation)
        for method, path, operation in operations(document)
        if method == "get"
        and {p["name"] for p in operation.get("parameters", [])} >= {"limit", "offset"}
    ]
    wrong = []
    for path, operation in lists:
        url = path.format(**await world.ids_for(path))
        sortable = "sort" in {p["name"] for p in operation.get("parameters", [])}
        for params in EXTREMES:
            if "sort" in params and not sortable:
                continue
            response = await client.get(url, headers=tenant_a.headers, params=params)
            ok = response.status_code == 422 or (
                response.status_code == 200 and len(response.json()["items"]) <= 200
            )
            if not ok:
                wrong.append((path, params, response.status_code))
    assert wrong == []
    assert len(lists) >= 10


# --- bodies and files ---------------------------------------------------------------------


async def test_every_body_over_the_limit_is_413_before_it_is_read(
    client: httpx.AsyncClient, tenant_a: Tenant, settings: Settings
) -> None:
    """Declared too large: refused by the middleware on every route that takes a body."""
    document = await openapi(client)
    oversized = settings.statements_max_files * settings.statements_max_file_bytes
    oversized += 2 * settings.max_body_bytes
    refused = []
    for method, path, operation in operations(document):
        if "requestBody" not in operation:
            continue
        url = PARAM.sub(str(uuid.uuid4()), path)
        headers = tenant_a.headers | {"Content-Length": str(oversized)}
        response = await client.request(method.upper(), url, headers=headers, content=b"{}")
        if response.status_code != 413:
            refused.append((method.upper(), path, response.status_code))
    assert refused == []


async def test_an_upload_over_its_own_limit_is_413(
    settings: Settings, database: Database, tenant_a: Tenant
) -> None:
    pdf = statement_pdf()
    async with _app_client(settings, database, statements_max_file_bytes=len(pdf) - 1) as small:
        files = [("files", ("march.pdf", pdf, "application/pdf"))]
        response = await small.post(f"{API}/batches", headers=tenant_a.headers, files=files)
    assert_problem(response, 413)


async def test_files_whose_type_lies_are_415(
    client: httpx.AsyncClient, tenant_a: Tenant, database: Database
) -> None:
    """The bytes decide, never the name or the declared type."""
    world = World(client, database, tenant_a)
    bank = await world.the_bank()
    liars = [
        ("POST", f"{API}/batches", "files", ("statement.pdf", PNG, "application/pdf")),
        (
            "POST",
            f"{API}/batches",
            "files",
            ("statement.pdf", b"<html><script>", "application/pdf"),
        ),
        (
            "PUT",
            f"{API}/customers/{bank.customer_id}/photo",
            "photo",
            ("face.png", statement_pdf(), "image/png"),
        ),
        (
            "PUT",
            f"{API}/customers/{bank.customer_id}/photo",
            "photo",
            ("face.png", b"<svg onload=alert(1)>", "image/png"),
        ),
    ]
    for method, url, field, upload in liars:
        response = await client.request(
            method, url, headers=tenant_a.headers, files=[(field, upload)]
        )
        assert_problem(response, 415)


# --- headers ------------------------------------------------------------------------------


def assert_security_headers(response: httpx.Response) -> None:
    headers = response.headers
    where = f"{response.request.method} {response.request.url.path} -> {response.status_code}"
    assert headers.get("x-content-type-options") == "nosniff", where
    assert headers.get("referrer-policy") == "no-referrer", where
    assert headers.get("x-frame-options") == "DENY", where
    csp = headers.get("content-security-policy", "")
    assert "frame-ancestors 'none'" in csp, where
    if headers.get("content-type", "").startswith("text/html"):
        assert "script-src 'self'" in csp or "default-src 'none'" in csp, where
        assert "'unsafe-inline'" not in csp.split("script-src", 1)[-1].split(";")[0], where
        assert "'unsafe-eval'" not in csp, where


async def test_every_response_carries_the_security_headers(
    client: httpx.AsyncClient, tenant_a: Tenant, database: Database
) -> None:
    """Every GET route (with real ids), the HTML pages, and the early refusals the
    middleware answers itself."""
    document = await openapi(client)
    world = World(client, database, tenant_a)
    seen = 0
    for method, path, _ in operations(document):
        if method == "get" and path != f"{API}/events":
            response = await client.get(
                path.format(**await world.ids_for(path)), headers=tenant_a.headers
            )
            assert_security_headers(response)
            seen += 1
    pages = ("/app/appraisal/live", "/verify/certificates/X?digest=0", "/docs", "/redoc")
    for url in (*pages, "/health", "/docs/oauth2-redirect", "/docs/assets/swagger-init.js"):
        assert_security_headers(await client.get(url))
    refusals = [
        client.get(f"{API}/me"),  # 401
        client.get(f"{API}/nowhere"),  # 404
        client.delete(f"{API}/me", headers=tenant_a.headers),  # 405
        client.get(f"{API}/users?q=%00", headers=tenant_a.headers),  # 422 in the middleware
        client.post(f"{API}/branches", headers=tenant_a.headers | {"Content-Length": "9" * 12}),
    ]
    for pending in refusals:
        assert_security_headers(await pending)
    assert seen >= 30


async def test_cors_answers_only_the_configured_origins(
    settings: Settings, database: Database, client: httpx.AsyncClient
) -> None:
    preflight = {"Access-Control-Request-Method": "GET", "Origin": "https://evil.example"}
    default = await client.options(f"{API}/me", headers=preflight)
    assert "access-control-allow-origin" not in default.headers
    async with _app_client(settings, database, cors_origins=["https://app.example"]) as app:
        evil = await app.options(f"{API}/me", headers=preflight)
        assert "access-control-allow-origin" not in evil.headers
        good = await app.options(f"{API}/me", headers=preflight | {"Origin": "https://app.example"})
        assert good.headers["access-control-allow-origin"] == "https://app.example"
        assert "access-control-allow-credentials" not in good.headers


async def test_hsts_is_sent_only_when_configured(
    settings: Settings, database: Database, client: httpx.AsyncClient
) -> None:
    assert "strict-transport-security" not in (await client.get("/health/live")).headers
    async with _app_client(settings, database, hsts_seconds=31536000) as app:
        response = await app.get("/health/live")
    assert response.headers["strict-transport-security"] == "max-age=31536000"


def test_the_forgeries_are_not_expired_by_accident() -> None:
    """The KID attacks sign fresh claims; a stale fixture would make them pass as 'expired'."""
    claims = {"exp": int(time.time()) + 600}
    assert (
        jwt.decode(
            KID_ATTACKS["embedded-jwk"](claims, b"", rsa.generate_private_key(65537, 2048)),
            options={"verify_signature": False},
        )["exp"]
        == claims["exp"]
    )


async def test_renaming_a_rule_onto_a_taken_name_is_409_and_changes_nothing(
    client: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    """Found by the length test: the rename reached the unique index and came back a 500."""
    rules = []
    for name in ("Rent", "Salary"):
        body = {"name": name, "category": "rent", "keywords": [name.lower()]}
        created = await client.post(f"{API}/statement-rules", headers=tenant_a.headers, json=body)
        assert created.status_code == 201, created.text
        rules.append(created.json())
    taken = {"name": "Rent", "category": "income", "keywords": ["salary"]}
    url = f"{API}/statement-rules/{rules[1]['id']}"
    assert_problem(await client.put(url, headers=tenant_a.headers, json=taken), 409)
    listed = (await client.get(f"{API}/statement-rules", headers=tenant_a.headers)).json()
    assert sorted(r["name"] for r in listed) == ["Rent", "Salary"]


WRONG_TYPES = {"boolean": [0, 1, "true", "no"], "integer": ["5", 5.5, True]}


async def test_every_json_body_refuses_values_of_the_wrong_type(
    client: httpx.AsyncClient, tenant_a: Tenant, database: Database, connection: AsyncConnection
) -> None:
    """No lax coercion: `0` is not `false`, `"5"` is not `5`. The schema promises types, and
    a value that changes meaning on the way in (`"no"` read as false) is an injection."""
    document = await openapi(client)
    world = World(client, database, tenant_a)
    await make_platform_admin(connection, tenant_a)
    accepted: dict[str, list[str]] = {}
    for method, path, operation in _json_operations(document):
        schema = resolve(
            document, operation["requestBody"]["content"]["application/json"]["schema"]
        )
        body = request_body(document, operation)["json"]
        url = path.format(**await world.ids_for(path))
        for name, field in schema.get("properties", {}).items():
            options = [resolve(document, o) for o in field.get("anyOf", [field])]
            kinds = {o.get("type") for o in options}
            for kind in kinds & set(WRONG_TYPES):
                for value in WRONG_TYPES[kind]:
                    if kind == "integer" and "number" in kinds:
                        continue
                    response = await client.request(
                        method.upper(), url, headers=tenant_a.headers, json=body | {name: value}
                    )
                    if response.status_code != 422:
                        accepted.setdefault(f"{method.upper()} {path}", []).append(
                            f"{name}={value!r}"
                        )
    assert accepted == {}
