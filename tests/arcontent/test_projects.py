"""Projects of a company: create, rename, archive, list, detail; only companies hold them."""

from __future__ import annotations

import httpx

from tests.arcontent.conftest import API, audit_actions, content, project
from tests.conftest import Tenant, add_member, assert_problem
from touchstone.core.db import Database
from touchstone.core.permissions import Role


async def test_a_company_creates_renames_lists_and_archives_a_project(
    client: httpx.AsyncClient, company: Tenant, database: Database
) -> None:
    headers = company.headers
    made = await client.post(
        f"{API}/projects", headers=headers, json={"name": "Spring", "description": "Posters"}
    )
    assert made.status_code == 201, made.text
    project_id = made.json()["id"]
    assert made.json()["status"] == "active"
    await project(client, company, "Autumn")

    renamed = await client.patch(
        f"{API}/projects/{project_id}", headers=headers, json={"name": "Spring 2"}
    )
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["name"] == "Spring 2"
    assert renamed.json()["description"] == "Posters"
    detail = await client.get(f"{API}/projects/{project_id}", headers=headers)
    assert detail.json()["name"] == "Spring 2"

    listed = await client.get(f"{API}/projects", headers=headers)
    assert [p["name"] for p in listed.json()["items"]] == ["Autumn", "Spring 2"]

    content_id = await content(client, company, project_id)
    archived = await client.post(f"{API}/projects/{project_id}/archive", headers=headers)
    assert archived.status_code == 200, archived.text
    assert archived.json()["status"] == "archived"
    assert archived.json()["archived_at"]
    gone = await client.get(f"{API}/contents/{content_id}", headers=headers)
    assert gone.json()["status"] == "archived"
    active = await client.get(f"{API}/projects?status=active", headers=headers)
    assert [p["name"] for p in active.json()["items"]] == ["Autumn"]

    assert_problem(
        await client.patch(f"{API}/projects/{project_id}", headers=headers, json={"name": "X"}),
        409,
        "ar_project_archived",
    )
    assert_problem(
        await client.post(
            f"{API}/projects/{project_id}/contents", headers=headers, json={"title": "Late"}
        ),
        409,
        "ar_project_archived",
    )
    assert await audit_actions(database, company, project_id) == [
        "arcontent.project.created",
        "arcontent.project.updated",
        "arcontent.project.archived",
    ]


async def test_only_a_company_holds_projects(client: httpx.AsyncClient, tenant_a: Tenant) -> None:
    """tenant_a is a bank."""
    refused = await client.post(f"{API}/projects", headers=tenant_a.headers, json={"name": "P"})
    assert_problem(refused, 403, "ar_companies_only")
    listed = await client.get(f"{API}/projects", headers=tenant_a.headers)
    assert listed.json()["total"] == 0


async def test_bad_input_is_refused_and_changes_nothing(
    client: httpx.AsyncClient, company: Tenant
) -> None:
    headers = company.headers
    project_id = await project(client, company, "Spring")
    for body in ({"name": ""}, {"name": "  "}, {"name": "x" * 121}, {"name": "A", "org_id": "x"}):
        assert_problem(await client.post(f"{API}/projects", headers=headers, json=body), 422)
    assert_problem(
        await client.post(f"{API}/projects", headers=headers, json={"name": "Spring"}),
        409,
    )
    other = await project(client, company, "Autumn")
    assert_problem(
        await client.patch(f"{API}/projects/{other}", headers=headers, json={"name": "Spring"}),
        409,
    )
    assert_problem(await client.get(f"{API}/projects?status=deleted", headers=headers), 422)
    assert_problem(await client.get(f"{API}/projects/not-a-uuid", headers=headers), 422)
    listed = await client.get(f"{API}/projects", headers=headers)
    assert sorted(p["name"] for p in listed.json()["items"]) == ["Autumn", "Spring"]
    assert (await client.get(f"{API}/projects/{project_id}", headers=headers)).status_code == 200


async def test_another_companys_projects_are_not_found(
    client: httpx.AsyncClient, company: Tenant, other_company: Tenant
) -> None:
    project_id = await project(client, company)
    content_id = await content(client, company, project_id)
    theirs = other_company.headers
    for response in (
        await client.get(f"{API}/projects/{project_id}", headers=theirs),
        await client.patch(f"{API}/projects/{project_id}", headers=theirs, json={"name": "Mine"}),
        await client.post(f"{API}/projects/{project_id}/archive", headers=theirs),
        await client.get(f"{API}/projects/{project_id}/contents", headers=theirs),
        await client.post(
            f"{API}/projects/{project_id}/contents", headers=theirs, json={"title": "T"}
        ),
    ):
        assert_problem(response, 404, "ar_project_not_found")
    assert_problem(
        await client.get(f"{API}/contents/{content_id}", headers=theirs),
        404,
        "ar_content_not_found",
    )
    assert (await client.get(f"{API}/projects", headers=theirs)).json()["total"] == 0
    mine = await client.get(f"{API}/projects/{project_id}", headers=company.headers)
    assert mine.json()["status"] == "active"


async def test_a_viewer_reads_but_does_not_write(
    client: httpx.AsyncClient, company: Tenant
) -> None:
    project_id = await project(client, company)
    _, viewer = await add_member(client, company, Role.VIEWER)
    assert (await client.get(f"{API}/projects/{project_id}", headers=viewer)).status_code == 200
    assert_problem(await client.post(f"{API}/projects", headers=viewer, json={"name": "V"}), 403)
    assert_problem(await client.post(f"{API}/projects/{project_id}/archive", headers=viewer), 403)


async def test_an_idempotency_key_replays_a_create_instead_of_making_a_second(
    client: httpx.AsyncClient, company: Tenant
) -> None:
    keyed = {**company.headers, "Idempotency-Key": "spring-project"}
    sent = [
        await client.post(f"{API}/projects", headers=keyed, json={"name": "Spring"})
        for _ in range(2)
    ]
    assert [r.status_code for r in sent] == [201, 201]
    assert sent[0].json()["id"] == sent[1].json()["id"]
    assert sent[1].headers["Idempotent-Replayed"] == "true"
    different = await client.post(f"{API}/projects", headers=keyed, json={"name": "Autumn"})
    assert_problem(different, 422)
    assert (await client.get(f"{API}/projects", headers=company.headers)).json()["total"] == 1
