"""A content's title and its overlay's placement on the marker."""

from __future__ import annotations

import httpx

from tests.arcontent.conftest import API, audit_actions, content, project
from tests.conftest import Tenant, assert_problem
from touchstone.core.db import Database


async def test_placement_defaults_and_changes_on_a_draft(
    client: httpx.AsyncClient, company: Tenant, database: Database
) -> None:
    headers = company.headers
    project_id = await project(client, company)
    content_id = await content(client, company, project_id)
    detail = (await client.get(f"{API}/contents/{content_id}", headers=headers)).json()
    assert detail["placement"] == {
        "scale": 1.0,
        "offset_x": 0.0,
        "offset_y": 0.0,
        "rotation": 0.0,
        "loop": True,
        "autoplay": True,
        "sound_on_tap": True,
    }
    placed = {"scale": 0.8, "offset_y": 0.25, "rotation": -90, "loop": False}
    made = await client.post(
        f"{API}/projects/{project_id}/contents",
        headers=headers,
        json={"title": "Box", "placement": placed},
    )
    assert made.status_code == 201, made.text
    assert made.json()["placement"]["rotation"] == -90
    assert made.json()["placement"]["autoplay"] is True

    changed = await client.patch(
        f"{API}/contents/{content_id}",
        headers=headers,
        json={"title": "Poster A", "placement": {"scale": 1.5, "sound_on_tap": False}},
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["title"] == "Poster A"
    assert changed.json()["placement"]["scale"] == 1.5
    assert changed.json()["placement"]["sound_on_tap"] is False
    assert await audit_actions(database, company, content_id) == [
        "arcontent.content.created",
        "arcontent.content.updated",
    ]


async def test_bad_placements_are_refused_and_change_nothing(
    client: httpx.AsyncClient, company: Tenant, other_company: Tenant
) -> None:
    headers = company.headers
    content_id = await content(client, company, await project(client, company))
    for placement in (
        {"scale": 0},
        {"scale": "NaN"},
        {"offset_x": 3},
        {"rotation": 270},
        {"loop": "yes"},
        {"depth": 1},
    ):
        refused = await client.patch(
            f"{API}/contents/{content_id}", headers=headers, json={"placement": placement}
        )
        assert_problem(refused, 422)
    assert_problem(
        await client.patch(f"{API}/contents/{content_id}", headers=headers, json={"title": ""}),
        422,
    )
    assert_problem(
        await client.patch(
            f"{API}/contents/{content_id}", headers=other_company.headers, json={"title": "Mine"}
        ),
        404,
        "ar_content_not_found",
    )
    archived = await client.post(
        f"{API}/contents/{content_id}/transitions", headers=headers, json={"to": "archived"}
    )
    assert archived.status_code == 200, archived.text
    assert_problem(
        await client.patch(f"{API}/contents/{content_id}", headers=headers, json={"title": "X"}),
        409,
        "ar_content_locked",
    )
    detail = (await client.get(f"{API}/contents/{content_id}", headers=headers)).json()
    assert (detail["title"], detail["placement"]["scale"]) == ("Poster", 1.0)
