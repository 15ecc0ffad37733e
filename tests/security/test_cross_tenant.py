"""Broken object- and function-level authorisation (OWASP API1, API5), over every route.

The routes come from the OpenAPI document and the objects from `world.FACTORIES`, so a route
added later is swept without editing this file, or fails here until it has a factory.

Covered elsewhere and not repeated: another tenant's `Last-Event-ID` on `/events` replays
nothing of theirs (tests/core/events/test_events.py::test_server_sent_events_...), and the
purity WebSocket with another branch's test (tests/appraisal/purity/live/test_api.py).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

import httpx
import pytest

from tests.conftest import Tenant, add_member, assert_problem
from tests.security.test_route_inventory import PUBLIC, inventory
from tests.security.world import API, PARAM, World, request_body, resolve
from touchstone.core.config import Settings
from touchstone.core.db import Database
from touchstone.core.permissions import Role, permissions_for
from touchstone.core.storage import UrlSigner

WRITES = {"post", "put", "patch", "delete"}
SELF_SERVICE = {
    f"{API}/auth/token",
    f"{API}/auth/refresh",
    f"{API}/auth/invitations/accept",
    f"{API}/auth/logout",
    f"{API}/me/password",
    f"{API}/billing/webhooks/stripe",
}
NOT_YET = {f"{API}/appraisals/{{appraisal_id}}/certificate": "issued only after approval"}
"""GET routes where the owner's fresh object legitimately has nothing to show yet."""
STREAMS = {f"{API}/events"}
"""Never end by themselves; their isolation is tested with a live server."""

BRANCH_SCOPED = (f"{API}/appraisals", f"{API}/purity-sessions")
PLATFORM = f"{API}/platform/"
"""Routes that name any org by id: only platform permissions pass their `require()` (403
for everyone else, before any lookup, whatever the id: checked below)."""
Operation = tuple[str, str, dict[str, Any]]


async def openapi(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def operations(document: dict[str, Any]) -> list[Operation]:
    """(method, path template, operation) of the API, without the public routes, which
    hold no tenant's objects; the file route is public only for signed links, so it stays."""
    return [
        (method, path, operation)
        for path, item in document["paths"].items()
        if path.startswith(API) and (path not in PUBLIC or path.startswith(f"{API}/files/"))
        for method, operation in item.items()
    ]


async def prepared(
    world: World, document: dict[str, Any], selected: list[Operation]
) -> list[tuple[str, str, dict[str, Any]]]:
    """(method, url, httpx body arguments) with the world's ids; fails naming any path whose
    parameters no factory fills."""
    calls, unfilled = [], []
    for method, path, operation in selected:
        ids = await world.ids_for(path)
        if missing := set(PARAM.findall(path)) - set(ids):
            unfilled.append(f"{method.upper()} {path} needs {sorted(missing)}")
            continue
        calls.append((method, path.format(**ids), request_body(document, operation)))
    assert unfilled == [], f"add a factory to tests/security/world.py for: {unfilled}"
    return calls


async def snapshot(
    client: httpx.AsyncClient,
    world: World,
    document: dict[str, Any],
    under: str | tuple[str, ...] = API,
) -> dict[str, tuple[int, str]]:
    """What the owner reads on every GET route (`under` a prefix): the status, and a digest
    of the body (the problem code for errors, whose request ids differ each time)."""
    paths = [
        path
        for method, path, _ in operations(document)
        if method == "get" and path.startswith(under)
    ]
    ids = {path: await world.ids_for(path) for path in paths if path not in STREAMS}
    seen = {}
    for path, values in ids.items():
        response = await client.get(path.format(**values), headers=world.headers)
        kind = response.headers.get("content-type", "")
        if kind.startswith("application/problem+json"):
            seen[path] = (response.status_code, response.json()["code"])
        elif kind.startswith("application/json"):  # the same data, keys in any order
            canonical = json.dumps(response.json(), sort_keys=True).encode()
            seen[path] = (response.status_code, hashlib.sha256(canonical).hexdigest())
        else:
            seen[path] = (response.status_code, hashlib.sha256(response.content).hexdigest())
    return seen


def with_ids(document: dict[str, Any]) -> list[Operation]:
    """Operations on a tenant's objects by id (the platform's, on orgs, are not a tenant's)."""
    return [
        op for op in operations(document) if PARAM.search(op[1]) and not op[1].startswith(PLATFORM)
    ]


async def test_another_tenant_gets_404_on_every_id_route_and_changes_nothing(
    client: httpx.AsyncClient, tenant_a: Tenant, tenant_b: Tenant, database: Database
) -> None:
    document = await openapi(client)
    world = World(client, database, tenant_a)
    calls = await prepared(world, document, with_ids(document))
    before = await snapshot(client, world, document)
    gone = [path for path, (status, _) in before.items() if status == 404 and path not in NOT_YET]
    assert gone == [], f"the owner's own objects must be found: {gone}"

    answered = {}
    for method, url, body in calls:
        response = await client.request(method.upper(), url, headers=tenant_b.headers, **body)
        answered[f"{method.upper()} {url}"] = response.status_code
    leaks = {call: status for call, status in answered.items() if status != 404}
    assert leaks == {}, f"another tenant's ids must be 404: {leaks}"
    assert await snapshot(client, world, document) == before, "tenant B changed A's data"
    assert len(answered) >= 40

    # Lists: none of A's ids shows up in anything B can list.
    owned = set(world.ids.values())
    for method, path, _ in operations(document):
        if method == "get" and not PARAM.search(path) and path not in STREAMS:
            listed = await client.get(path, headers=tenant_b.headers)
            assert not {i for i in owned if i in listed.text}, f"{path} lists A's objects to B"


async def test_platform_routes_answer_403_to_a_tenant_whatever_the_org(
    client: httpx.AsyncClient, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    document = await openapi(client)
    platform = [op for op in operations(document) if op[1].startswith(PLATFORM)]
    assert platform, "the platform routes moved: update PLATFORM"
    for method, path, operation in platform:
        for org_id in (tenant_a.org_id, tenant_b.org_id, uuid.uuid4()):
            url = path.format(org_id=org_id)
            body = request_body(document, operation)
            response = await client.request(method.upper(), url, headers=tenant_b.headers, **body)
            assert_problem(response, 403)


async def test_another_tenants_ids_in_a_body_are_refused(
    client: httpx.AsyncClient, tenant_a: Tenant, tenant_b: Tenant, database: Database
) -> None:
    """References in bodies (`customer_id`, `branch_id`, `appraiser_id`...) to A's objects,
    sent by B on B's own routes and objects: refused, never attached to B's data."""
    document = await openapi(client)
    theirs, mine = World(client, database, tenant_a), World(client, database, tenant_b)
    for _, path, _ in operations(document):
        await theirs.ids_for(path)
    refused, tried = {}, 0
    for method, path, operation in operations(document):
        content = operation.get("requestBody", {}).get("content", {})
        if "application/json" not in content or path in SELF_SERVICE:
            continue
        properties = resolve(document, content["application/json"]["schema"]).get("properties", {})
        foreign = {
            name: theirs.ids[name]
            for name, schema in properties.items()
            if name in theirs.ids and "uuid" in json.dumps(schema)
        }
        if not foreign:
            continue
        url = path.format(**await mine.ids_for(path))
        body = request_body(document, operation)["json"] | foreign
        response = await client.request(method.upper(), url, headers=tenant_b.headers, json=body)
        tried += 1
        if response.status_code not in (404, 422):
            refused[f"{method.upper()} {path} {sorted(foreign)}"] = response.status_code
    assert refused == {}, f"A's ids in B's bodies must be 404 or 422: {refused}"
    assert tried >= 4


async def test_another_branch_gets_404_on_branch_scoped_routes(
    client: httpx.AsyncClient, tenant_a: Tenant, database: Database, settings: Settings
) -> None:
    """An appraiser or branch manager of branch 2 cannot reach branch 1's appraisals, on
    every route its role may use (the others are refused by permission, before any lookup)."""
    document = await openapi(client)
    world = World(client, database, tenant_a)
    bank = await world.the_bank()
    _, manager = await add_member(client, tenant_a, Role.BRANCH_MANAGER, bank.other_branch)
    needs = {
        (method, route.path): route.permissions
        for route in inventory(settings)
        for method in route.methods
    }
    leaks, tried = {}, 0
    before = await snapshot(client, world, document, under=BRANCH_SCOPED)
    for role, headers in (
        (Role.APPRAISER, bank.other_appraiser.headers),
        (Role.BRANCH_MANAGER, manager),
    ):
        scoped = [
            (method, path, operation)
            for method, path, operation in with_ids(document)
            if path.startswith(BRANCH_SCOPED)
            and needs[(method.upper(), path)] <= permissions_for(role)
        ]
        for method, url, body in await prepared(world, document, scoped):
            response = await client.request(method.upper(), url, headers=headers, **body)
            tried += 1
            if response.status_code != 404:
                leaks[f"{role} {method.upper()} {url}"] = response.status_code
    assert await snapshot(client, world, document, under=BRANCH_SCOPED) == before
    assert leaks == {}, f"another branch's appraisals must be 404: {leaks}"
    assert tried >= 15


async def test_a_viewer_gets_403_on_every_write_and_admin_route(
    client: httpx.AsyncClient, tenant_a: Tenant, database: Database, settings: Settings
) -> None:
    """Function-level authorisation: the read-only role on everything it may not do, with
    ids of its own org, so only the permission check can stop it."""
    document = await openapi(client)
    world = World(client, database, tenant_a)
    viewer_may = permissions_for(Role.VIEWER)
    admin_reads = {
        route.path
        for route in inventory(settings)
        if "GET" in route.methods and route.permissions and not route.permissions <= viewer_may
    }
    selected = [
        (method, path, operation)
        for method, path, operation in operations(document)
        if path not in SELF_SERVICE
        and (method in WRITES or (method == "get" and path in admin_reads))
    ]
    calls = await prepared(world, document, selected)
    _, viewer = await add_member(client, tenant_a, Role.VIEWER)
    allowed = {}
    for method, url, body in calls:
        response = await client.request(method.upper(), url, headers=viewer, **body)
        if response.status_code != 403:
            allowed[f"{method.upper()} {url}"] = response.status_code
        else:
            assert_problem(response, 403)
    assert allowed == {}, f"a viewer must get 403: {allowed}"
    assert len(calls) >= 40


@pytest.mark.parametrize("tampered", ["key", "signature"])
async def test_a_signed_link_opens_only_its_own_file(
    client: httpx.AsyncClient,
    tenant_a: Tenant,
    tenant_b: Tenant,
    database: Database,
    settings: Settings,
    tampered: str,
) -> None:
    """B's valid link with A's key (or a forged signature) is refused, never served."""
    mine, theirs = World(client, database, tenant_b), World(client, database, tenant_a)
    own = await mine.ids_for(f"{API}/files/{{key}}")
    other = await theirs.ids_for(f"{API}/files/{{key}}")
    link = UrlSigner(settings.secret_key.get_secret_value()).url(own["key"], 300)
    assert (await client.get(link)).status_code == 200
    forged = (
        link.replace(own["key"], other["key"])
        if tampered == "key"
        else link.rsplit("sig=", 1)[0] + "sig=" + "0" * 64
    )
    assert_problem(await client.get(forged), 403)
