"""Timetables: weekly slots in local time, sessions generated once, late marks, group owners."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from tests.attendance.conftest import API, person
from tests.conftest import Tenant, add_member, assert_problem
from touchstone.core.permissions import Role

WEEK = [
    {"weekday": 1, "starts_at": "08:00", "ends_at": "09:00", "late_after_minutes": 10},
    {"weekday": 3, "starts_at": "13:00", "ends_at": "14:30", "label": "Lab"},
]


async def group(client: httpx.AsyncClient, tenant: Tenant, name: str = "10A") -> str:
    made = await client.post(f"{API}/groups", headers=tenant.headers, json={"name": name})
    assert made.status_code == 201, made.text
    group_id: str = made.json()["id"]
    return group_id


async def test_sessions_come_from_the_timetable_once_in_local_time(
    client: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    headers = tenant_a.headers
    group_id = await group(client, tenant_a)
    zone = await client.patch(
        f"{API}/org-settings", headers=headers, json={"timezone": "Asia/Ho_Chi_Minh"}
    )
    assert zone.json() == {"timezone": "Asia/Ho_Chi_Minh", "evidence_retention_days": None}
    recognition = await client.get(f"{API}/recognition-settings", headers=headers)
    assert recognition.json()["is_default"] is True  # the zone leaves recognition as it was
    put = await client.put(
        f"{API}/groups/{group_id}/timetable", headers=headers, json={"slots": WEEK}
    )
    assert put.status_code == 200, put.text
    table = put.json()
    assert (table["timezone"], table["timezone_source"]) == ("Asia/Ho_Chi_Minh", "org")
    assert [(s["weekday"], s["starts_at"], s["label"]) for s in table["slots"]] == [
        (1, "08:00:00", "08:00"),
        (3, "13:00:00", "Lab"),
    ]
    assert table["slots"][1]["late_after_minutes"] == 10  # the default

    # The group's own zone wins; London changes to summer time on 2026-03-29.
    moved = await client.patch(
        f"{API}/groups/{group_id}", headers=headers, json={"timezone": "Europe/London"}
    )
    assert moved.json()["timezone"] == "Europe/London"
    span = {"date_from": "2026-03-23", "date_to": "2026-04-05"}
    path = f"{API}/groups/{group_id}/timetable/sessions"
    first = await client.post(path, headers=headers, json=span)
    assert first.status_code == 200, first.text
    made = first.json()
    assert (made["created"], made["existing"]) == (4, 0)
    assert [(s["label"], s["starts_at"], s["late_after"]) for s in made["sessions"]] == [
        ("08:00 2026-03-23", "2026-03-23T08:00:00Z", "2026-03-23T08:10:00Z"),
        ("Lab 2026-03-25", "2026-03-25T13:00:00Z", "2026-03-25T13:10:00Z"),
        ("08:00 2026-03-30", "2026-03-30T07:00:00Z", "2026-03-30T07:10:00Z"),
        ("Lab 2026-04-01", "2026-04-01T12:00:00Z", "2026-04-01T12:10:00Z"),
    ]
    again = (await client.post(path, headers=headers, json=span)).json()
    assert (again["created"], again["existing"], again["sessions"]) == (0, 4, [])
    keyed = {**headers, "Idempotency-Key": "generate-march"}
    fresh_span = {"date_from": "2026-04-06", "date_to": "2026-04-12"}
    once = await client.post(path, headers=keyed, json=fresh_span)
    replayed = await client.post(path, headers=keyed, json=fresh_span)
    assert once.json()["created"] == 2
    assert replayed.headers["Idempotent-Replayed"] == "true"
    assert replayed.json() == once.json()
    wider = (
        await client.post(path, headers=headers, json={**span, "date_to": "2026-04-08"})
    ).json()
    assert (wider["created"], wider["existing"]) == (0, 6)
    relabelled = [{**WEEK[0], "label": "Maths"}, {**WEEK[1], "ends_at": "15:00"}]
    put_again = await client.put(
        f"{API}/groups/{group_id}/timetable", headers=headers, json={"slots": relabelled}
    )
    assert [s["id"] for s in put_again.json()["slots"]] == [s["id"] for s in table["slots"]]
    regenerated = (await client.post(path, headers=headers, json=span)).json()
    assert (regenerated["created"], regenerated["existing"]) == (0, 4)  # still the same slots
    dropped = await client.put(
        f"{API}/groups/{group_id}/timetable", headers=headers, json={"slots": WEEK[:1]}
    )
    assert len(dropped.json()["slots"]) == 1
    after_drop = (await client.post(path, headers=headers, json=span)).json()
    assert (after_drop["created"], after_drop["existing"]) == (0, 2)
    shown = await client.get(f"{API}/groups/{group_id}/timetable", headers=headers)
    assert (shown.json()["timezone"], shown.json()["timezone_source"]) == ("Europe/London", "group")
    assert shown.json()["slots"] == dropped.json()["slots"]


async def test_a_mark_after_the_cut_off_is_late(
    client: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    headers = tenant_a.headers
    group_id = await group(client, tenant_a)
    member = await person(client, tenant_a, "SV001", consent=False)
    other = await person(client, tenant_a, "SV002", consent=False)
    await client.post(
        f"{API}/groups/{group_id}/members", headers=headers, json={"person_ids": [member, other]}
    )
    started = datetime.now(UTC) - timedelta(minutes=30)
    sessions = f"{API}/groups/{group_id}/sessions"
    past_cut_off = await client.post(
        sessions,
        headers=headers,
        json={"label": "P1", "starts_at": started.isoformat(), "late_after_minutes": 15},
    )
    assert past_cut_off.status_code == 201, past_cut_off.text
    session_path = f"{API}/sessions/{past_cut_off.json()['id']}"
    late = {"person_id": member, "present": True, "reason": "came in at 08:40"}
    assert (
        await client.post(f"{session_path}/marks", headers=headers, json=late)
    ).status_code == 204
    excused = {"person_id": other, "present": True, "reason": "bus strike", "status": "present"}
    await client.post(f"{session_path}/marks", headers=headers, json=excused)
    detail = (await client.get(session_path, headers=headers)).json()
    assert [(m["person_id"], m["status"]) for m in detail["present"]] == [
        (member, "late"),
        (other, "present"),
    ]
    on_time = await client.post(
        sessions, headers=headers, json={"label": "P2", "late_after_minutes": 15}
    )
    path = f"{API}/sessions/{on_time.json()['id']}"
    await client.post(f"{path}/marks", headers=headers, json={**late, "reason": "there"})
    assert (await client.get(path, headers=headers)).json()["present"][0]["status"] == "present"


async def test_bad_timetables_and_owners_are_refused(
    client: httpx.AsyncClient, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    headers = tenant_a.headers
    group_id = await group(client, tenant_a)
    timetable = f"{API}/groups/{group_id}/timetable"
    backwards = [{"weekday": 2, "starts_at": "10:00", "ends_at": "09:00"}]
    assert_problem(await client.put(timetable, headers=headers, json={"slots": backwards}), 422)
    twice = [WEEK[0], {**WEEK[0], "ends_at": "10:00"}]
    assert_problem(await client.put(timetable, headers=headers, json={"slots": twice}), 422)
    sunday8 = [{"weekday": 8, "starts_at": "10:00", "ends_at": "11:00"}]
    assert_problem(await client.put(timetable, headers=headers, json={"slots": sunday8}), 422)
    offset = [{"weekday": 2, "starts_at": "10:00+02:00", "ends_at": "11:00+02:00"}]
    assert_problem(await client.put(timetable, headers=headers, json={"slots": offset}), 422)
    nowhere = await client.patch(
        f"{API}/groups/{group_id}", headers=headers, json={"timezone": "Mars/Olympus"}
    )
    assert_problem(nowhere, 422)
    assert_problem(
        await client.patch(f"{API}/org-settings", headers=headers, json={"timezone": None}), 422
    )
    generate = f"{timetable}/sessions"
    too_long = {"date_from": "2026-01-01", "date_to": "2027-01-02"}
    assert_problem(await client.post(generate, headers=headers, json=too_long), 422)
    reversed_range = {"date_from": "2026-01-02", "date_to": "2026-01-01"}
    assert_problem(await client.post(generate, headers=headers, json=reversed_range), 422)

    teacher_id, teacher = await add_member(client, tenant_a, Role.TEACHER)
    foreign_user, _ = await add_member(client, tenant_b, Role.TEACHER)
    refused = await client.patch(
        f"{API}/groups/{group_id}", headers=headers, json={"owner_id": foreign_user}
    )
    assert_problem(refused, 422)
    owned = await client.patch(
        f"{API}/groups/{group_id}", headers=headers, json={"owner_id": teacher_id}
    )
    assert owned.json()["owner_id"] == teacher_id
    assert (await client.get(timetable, headers=teacher)).status_code == 200
    assert_problem(await client.put(timetable, headers=teacher, json={"slots": WEEK}), 403)
    for method, path, body in (
        ("GET", timetable, None),
        ("PUT", timetable, {"slots": WEEK}),
        ("POST", generate, {"date_from": "2026-01-01", "date_to": "2026-01-07"}),
        ("PATCH", f"{API}/groups/{group_id}", {"description": "theirs"}),
    ):
        response = await client.request(method, path, headers=tenant_b.headers, json=body)
        assert_problem(response, 404)
