"""Groups and people through the API: CRUD, memberships, consent, erasure, tenancy."""

from __future__ import annotations

import httpx

from tests.attendance.conftest import API, person
from tests.conftest import Tenant, add_member, assert_problem
from touchstone.core.permissions import Role


async def test_a_class_with_its_students(client: httpx.AsyncClient, tenant_a: Tenant) -> None:
    headers = tenant_a.headers
    group = await client.post(f"{API}/groups", headers=headers, json={"name": "10A"})
    assert group.status_code == 201, group.text
    group_id = group.json()["id"]
    duplicate = await client.post(f"{API}/groups", headers=headers, json={"name": "10A"})
    assert_problem(duplicate, 409)

    first = await person(client, tenant_a, "SV001", consent=False)
    second = await person(client, tenant_a, "SV002")
    again = await client.post(
        f"{API}/people", headers=headers, json={"code": "SV001", "full_name": "Someone Else"}
    )
    assert_problem(again, 409)

    added = await client.post(
        f"{API}/groups/{group_id}/members", headers=headers, json={"person_ids": [first, second]}
    )
    assert added.json() == {"added": 2}
    listed = await client.get(f"{API}/people", headers=headers, params={"group_id": group_id})
    assert [p["code"] for p in listed.json()["items"]] == ["SV001", "SV002"]
    found = await client.get(f"{API}/people", headers=headers, params={"search": "sv002"})
    assert [p["id"] for p in found.json()["items"]] == [second]

    shown = (await client.get(f"{API}/people/{second}", headers=headers)).json()
    assert shown["group_ids"] == [group_id]
    assert shown["has_consent"] is True
    assert shown["faces"] == 0
    consents = await client.get(f"{API}/people/{second}/consents", headers=headers)
    assert consents.json()[0]["given_by"] == "Parent of SV002"

    renamed = await client.patch(
        f"{API}/people/{first}", headers=headers, json={"full_name": "Renamed"}
    )
    assert renamed.status_code == 204
    assert (await client.get(f"{API}/people/{first}", headers=headers)).json()[
        "full_name"
    ] == "Renamed"

    deleted = await client.delete(f"{API}/people/{first}", headers=headers)
    assert deleted.json() == {
        "id": first,
        "faces_deleted": 0,
        "photos_deleted": 0,
        "photo_removal_job_id": None,
    }
    assert_problem(await client.get(f"{API}/people/{first}", headers=headers), 404)


async def test_another_tenants_people_and_groups_are_not_found(
    client: httpx.AsyncClient, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    theirs = await person(client, tenant_a, "SV001")
    group = await client.post(f"{API}/groups", headers=tenant_a.headers, json={"name": "10A"})
    group_id = group.json()["id"]
    mine = await person(client, tenant_b, "SV009")
    for path in (f"/people/{theirs}", f"/people/{theirs}/consents", f"/groups/{group_id}"):
        assert_problem(await client.get(f"{API}{path}", headers=tenant_b.headers), 404)
    smuggled = await client.post(
        f"{API}/groups/{group_id}/members", headers=tenant_b.headers, json={"person_ids": [mine]}
    )
    assert_problem(smuggled, 404)
    own_group = await client.post(f"{API}/groups", headers=tenant_b.headers, json={"name": "B"})
    foreign_member = await client.post(
        f"{API}/groups/{own_group.json()['id']}/members",
        headers=tenant_b.headers,
        json={"person_ids": [theirs]},
    )
    assert_problem(foreign_member, 404)


async def test_a_viewer_reads_but_neither_enrols_nor_writes(
    client: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    someone = await person(client, tenant_a, "SV001", consent=False)
    _, viewer = await add_member(client, tenant_a, Role.VIEWER)
    assert (await client.get(f"{API}/people/{someone}", headers=viewer)).status_code == 200
    consent = {"given_by": "Parent", "purpose": "attendance"}
    refused = await client.post(f"{API}/people/{someone}/consents", headers=viewer, json=consent)
    assert_problem(refused, 403)
    assert_problem(await client.get(f"{API}/people/{someone}/faces", headers=viewer), 403)
    made = await client.post(f"{API}/people", headers=viewer, json={"code": "X", "full_name": "X"})
    assert_problem(made, 403)


async def test_a_teacher_marks_by_hand_with_a_reason(
    client: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    headers = tenant_a.headers
    group = (await client.post(f"{API}/groups", headers=headers, json={"name": "10A"})).json()
    member = await person(client, tenant_a, "SV001")
    outsider = await person(client, tenant_a, "SV002")
    await client.post(
        f"{API}/groups/{group['id']}/members", headers=headers, json={"person_ids": [member]}
    )
    _, teacher = await add_member(client, tenant_a, Role.TEACHER)
    session = await client.post(
        f"{API}/groups/{group['id']}/sessions", headers=teacher, json={"label": "Period 1"}
    )
    path = f"{API}/sessions/{session.json()['id']}"
    mark = {"person_id": member, "present": True, "reason": "arrived after the photo"}
    assert (await client.post(f"{path}/marks", headers=teacher, json=mark)).status_code == 204
    detail = (await client.get(path, headers=teacher)).json()
    assert [(m["person_id"], m["source"], m["reason"]) for m in detail["present"]] == [
        (member, "manual", "arrived after the photo")
    ]
    assert detail["absent"] == []
    wrong = {"person_id": outsider, "present": True, "reason": "not in this class"}
    assert_problem(await client.post(f"{path}/marks", headers=teacher, json=wrong), 409)
    taken_back = {"person_id": member, "present": False, "reason": "left at once"}
    assert (await client.post(f"{path}/marks", headers=teacher, json=taken_back)).status_code == 204
    detail = (await client.get(path, headers=teacher)).json()
    assert (detail["present"], [p["id"] for p in detail["absent"]]) == ([], [member])
    audit = await client.get("/api/v1/audit-events", headers=headers)
    actions = [e["action"] for e in audit.json()["items"]]
    assert actions.count("attendance.session.marked_by_hand") == 2


async def test_a_class_imported_from_csv_with_a_report_of_refused_rows(
    client: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    headers = tenant_a.headers
    await client.post(f"{API}/groups", headers=headers, json={"name": "10A"})
    await person(client, tenant_a, "SV009", consent=False)
    csv = (
        "code,full_name,contact,group\n"
        "SV001,An Nguyen,+84 90 000 0001,10A\n"
        "SV002,Binh Tran,,\n"
        "SV001,Again Same Code,,10A\n"
        "SV009,Already There,,\n"
        "SV003,Unknown Group,,11B\n"
        "bad code!,Bad Code,,\n"
        "SV004,,,\n"
    )
    imported = await client.post(
        f"{API}/people-imports", headers=headers, files={"file": ("class.csv", csv, "text/csv")}
    )
    assert imported.status_code == 200, imported.text
    report = imported.json()
    assert report["created"] == 2
    assert [(r["line"], r["code"]) for r in report["refused"]] == [
        (4, "SV001"),
        (5, "SV009"),
        (6, "SV003"),
        (7, "bad code!"),
        (8, "SV004"),
    ]
    assert "exists" in report["refused"][0]["reason"]
    assert "11B" in report["refused"][2]["reason"]
    listed = await client.get(f"{API}/people", headers=headers, params={"search": "SV001"})
    (first,) = listed.json()["items"]
    assert first["full_name"] == "An Nguyen"
    assert len(first["group_ids"]) == 1
    not_csv = await client.post(
        f"{API}/people-imports",
        headers=headers,
        files={"file": ("x.png", b"\x89PNG\xff", "image/png")},
    )
    assert_problem(not_csv, 422)
