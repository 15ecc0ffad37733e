"""Statistics against figures worked out by hand.

Class 10A (SV001, SV002, SV003), five sessions in November 2026 (p present, l late, - absent):

    session   Mon 2  Tue 3  Wed 4  Mon 9  Tue 10
    SV001       p      l      p      p      p     5/5 attended, 1 late, rate 1.0
    SV002       -      -      p      -      -     1/5, rate 0.2, absence runs 2 and 2 (current 2)
    SV003       p      -      -      -      l     2/5, 1 late, rate 0.4, run of 3, current 0

Class 10B (SV004) keeps New York time: a session at 03:00 UTC on 1 November is 31 October
there (outside November), one at 03:00 UTC on 1 December is 30 November (inside). SV004
misses it: 1 session, rate 0.0, streak 1. A session of 10A in October and one tomorrow
count for nothing.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from openpyxl import load_workbook

from tests.attendance.conftest import API, person
from tests.conftest import Tenant, add_member, assert_problem
from touchstone.core.permissions import Role

NOVEMBER = {"date_from": "2026-11-01", "date_to": "2026-11-30"}
STATS = f"{API}/statistics"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


async def session_with(
    client: httpx.AsyncClient,
    tenant: Tenant,
    group_id: str,
    starts_at: str,
    marks: dict[str, str],
) -> str:
    made = await client.post(
        f"{API}/groups/{group_id}/sessions",
        headers=tenant.headers,
        json={"label": starts_at[:10], "starts_at": starts_at},
    )
    assert made.status_code == 201, made.text
    session_id: str = made.json()["id"]
    for person_id, status in marks.items():
        mark = {"person_id": person_id, "present": True, "reason": "register", "status": status}
        response = await client.post(
            f"{API}/sessions/{session_id}/marks", headers=tenant.headers, json=mark
        )
        assert response.status_code == 204, response.text
    return session_id


async def school(client: httpx.AsyncClient, tenant: Tenant) -> dict[str, str]:
    headers = tenant.headers
    ids = {}
    for name in ("10A", "10B"):
        ids[name] = (
            await client.post(f"{API}/groups", headers=headers, json={"name": name})
        ).json()["id"]
    for code in ("SV001", "SV002", "SV003", "SV004"):
        ids[code] = await person(client, tenant, code, consent=False)
    a, b, c, d = (ids[code] for code in ("SV001", "SV002", "SV003", "SV004"))
    await client.post(
        f"{API}/groups/{ids['10A']}/members", headers=headers, json={"person_ids": [a, b, c]}
    )
    await client.post(
        f"{API}/groups/{ids['10B']}/members", headers=headers, json={"person_ids": [d]}
    )
    await client.patch(
        f"{API}/groups/{ids['10B']}", headers=headers, json={"timezone": "America/New_York"}
    )
    g = ids["10A"]
    await session_with(client, tenant, g, "2026-11-02T08:00:00Z", {a: "present", c: "present"})
    await session_with(client, tenant, g, "2026-11-03T08:00:00Z", {a: "late"})
    await session_with(client, tenant, g, "2026-11-04T08:00:00Z", {a: "present", b: "present"})
    await session_with(client, tenant, g, "2026-11-09T08:00:00Z", {a: "present"})
    await session_with(client, tenant, g, "2026-11-10T08:00:00Z", {a: "present", c: "late"})
    await session_with(client, tenant, g, "2026-10-20T08:00:00Z", {})
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    await session_with(client, tenant, g, tomorrow, {})
    await session_with(client, tenant, ids["10B"], "2026-11-01T03:00:00Z", {})
    await session_with(client, tenant, ids["10B"], "2026-12-01T03:00:00Z", {})
    return ids


def rows(response: httpx.Response, *fields: str) -> list[tuple[Any, ...]]:
    assert response.status_code == 200, response.text
    return [tuple(item[f] for f in fields) for item in response.json()["items"]]


PERSON_FIELDS = (
    "code",
    "sessions",
    "attended",
    "late",
    "absences",
    "rate",
    "current_absence_streak",
    "longest_absence_streak",
)
COUNTS = ("expected", "present", "late", "absent", "rate")


async def test_statistics_match_the_register_worked_by_hand(
    client: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    ids = await school(client, tenant_a)
    _, viewer = await add_member(client, tenant_a, Role.VIEWER)  # reading needs attendance:read
    people = await client.get(f"{STATS}/people", headers=viewer, params=NOVEMBER)
    assert rows(people, *PERSON_FIELDS) == [
        ("SV001", 5, 5, 1, 0, 1.0, 0, 0),
        ("SV002", 5, 1, 0, 4, 0.2, 2, 2),
        ("SV003", 5, 2, 1, 3, 0.4, 0, 3),
        ("SV004", 1, 0, 0, 1, 0.0, 1, 1),
    ]
    assert people.json()["total"] == 4
    one = await client.get(
        f"{API}/people/{ids['SV002']}/statistics", headers=viewer, params=NOVEMBER
    )
    assert one.json()["longest_absence_streak"] == 2
    assert one.json()["rate"] == 0.2
    paged = await client.get(
        f"{STATS}/people", headers=viewer, params={**NOVEMBER, "limit": 2, "sort": "-absences"}
    )
    assert (rows(paged, "code"), paged.json()["total"]) == ([("SV002",), ("SV003",)], 4)
    in_10a = await client.get(
        f"{STATS}/people", headers=viewer, params={**NOVEMBER, "group_id": ids["10A"]}
    )
    assert [code for (code,) in rows(in_10a, "code")] == ["SV001", "SV002", "SV003"]

    chronic = await client.get(
        f"{STATS}/chronic-absentees", headers=viewer, params={**NOVEMBER, "below": 0.5}
    )
    assert rows(chronic, "code", "rate") == [("SV004", 0.0), ("SV002", 0.2), ("SV003", 0.4)]
    regular = await client.get(
        f"{STATS}/chronic-absentees",
        headers=viewer,
        params={**NOVEMBER, "below": 0.5, "min_sessions": 2},
    )
    assert rows(regular, "code") == [("SV002",), ("SV003",)]

    groups = await client.get(f"{STATS}/groups", headers=viewer, params=NOVEMBER)
    assert rows(groups, "name", "members", "sessions", *COUNTS) == [
        ("10A", 3, 5, 15, 6, 2, 7, 0.5333),
        ("10B", 1, 1, 1, 0, 0, 1, 0.0),
    ]
    one_group = await client.get(
        f"{API}/groups/{ids['10B']}/statistics", headers=viewer, params=NOVEMBER
    )
    assert one_group.json()["sessions"] == 1

    sessions = await client.get(
        f"{STATS}/sessions", headers=viewer, params={**NOVEMBER, "group_id": ids["10A"]}
    )
    assert rows(sessions, "day", *COUNTS) == [
        ("2026-11-02", 3, 2, 0, 1, 0.6667),
        ("2026-11-03", 3, 0, 1, 2, 0.3333),
        ("2026-11-04", 3, 2, 0, 1, 0.6667),
        ("2026-11-09", 3, 1, 0, 2, 0.3333),
        ("2026-11-10", 3, 1, 1, 1, 0.6667),
    ]
    weeks = await client.get(
        f"{STATS}/periods", headers=viewer, params={**NOVEMBER, "group_id": ids["10A"]}
    )
    assert rows(weeks, "period_start", "sessions", *COUNTS) == [
        ("2026-11-02", 3, 9, 4, 1, 4, 0.5556),
        ("2026-11-09", 2, 6, 2, 1, 3, 0.5),
    ]
    months = await client.get(
        f"{STATS}/periods", headers=viewer, params={**NOVEMBER, "period": "month"}
    )
    assert rows(months, "period_start", "sessions", *COUNTS) == [
        ("2026-11-01", 6, 16, 6, 2, 8, 0.5)
    ]
    days = await client.get(
        f"{STATS}/periods",
        headers=viewer,
        params={"date_from": "2026-11-30", "date_to": "2026-11-30", "period": "day"},
    )
    assert rows(days, "period_start", "sessions", "absent") == [("2026-11-30", 1, 1)]


async def test_statistics_refuse_bad_ranges_and_other_tenants_ids(
    client: httpx.AsyncClient, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    ids = await school(client, tenant_a)
    theirs = tenant_b.headers
    for path in (
        f"{API}/people/{ids['SV001']}/statistics",
        f"{API}/groups/{ids['10A']}/statistics",
    ):
        assert_problem(await client.get(path, headers=theirs), 404)
    for kind in ("people", "sessions", "groups", "periods", "chronic-absentees"):
        foreign = await client.get(
            f"{STATS}/{kind}", headers=theirs, params={"group_id": ids["10A"]}
        )
        assert_problem(foreign, 404)
    mine = await client.get(f"{STATS}/people", headers=theirs, params=NOVEMBER)
    assert mine.json()["items"] == []
    bad = [
        {"date_from": "2026-11-30", "date_to": "2026-11-01"},
        {"date_from": "2025-01-01", "date_to": "2026-11-01"},
        {"sort": "password"},
        {"below": 2},
        {"period": "decade"},
    ]
    for params in bad:
        kind = "chronic-absentees" if "below" in params else "periods"
        assert_problem(
            await client.get(f"{STATS}/{kind}", headers=tenant_a.headers, params=params), 422
        )


async def test_a_months_export_as_csv_and_xlsx(
    client: httpx.AsyncClient, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    ids = await school(client, tenant_a)
    renamed = await client.patch(
        f"{API}/people/{ids['SV003']}", headers=tenant_a.headers, json={"full_name": "=1+2"}
    )
    assert renamed.status_code == 204
    path = f"{API}/groups/{ids['10A']}/exports/month"
    as_csv = await client.get(
        path, headers=tenant_a.headers, params={"month": "2026-11", "format": "csv"}
    )
    assert as_csv.status_code == 200, as_csv.text
    assert as_csv.headers["content-type"] == "text/csv; charset=utf-8"
    assert as_csv.headers["content-disposition"] == (
        'attachment; filename="attendance-10A-2026-11.csv"'
    )
    table = list(csv.reader(io.StringIO(as_csv.text)))
    assert table[0][:3] == ["person_id", "code", "full_name"]
    assert [(r[1], r[2], r[3], r[6], r[7], r[9]) for r in table[1:]] == [
        ("SV001", "Student SV001", "5", "0", "1.0", "0"),
        ("SV002", "Student SV002", "5", "4", "0.2", "2"),
        ("SV003", "'=1+2", "5", "3", "0.4", "3"),
    ]

    as_xlsx = await client.get(path, headers=tenant_a.headers, params={"month": "2026-11"})
    assert as_xlsx.headers["content-type"] == XLSX
    assert as_xlsx.headers["content-disposition"].endswith('-2026-11.xlsx"')
    book = load_workbook(io.BytesIO(as_xlsx.content))
    assert book.sheetnames == ["Members", "Sessions", "Register"]
    register = [list(row) for row in book["Register"].iter_rows(values_only=True)]
    assert register[0][2:] == [
        "02 Nov 2026-11-02",
        "03 Nov 2026-11-03",
        "04 Nov 2026-11-04",
        "09 Nov 2026-11-09",
        "10 Nov 2026-11-10",
    ]
    assert register[1:] == [
        ["SV001", "Student SV001", "P", "L", "P", "P", "P"],
        ["SV002", "Student SV002", "A", "A", "P", "A", "A"],
        ["SV003", "=1+2", "P", "A", "A", "A", "L"],
    ]
    assert book["Register"]["B4"].data_type == "s"  # a name, never a formula
    members = list(book["Members"].iter_rows(values_only=True))
    assert members[2][1:8] == ("SV002", "Student SV002", 5, 1, 0, 4, 0.2)

    # The ETag names the content: unchanged, a 304; changed, a new file, never a stale one.
    etag = as_xlsx.headers["etag"]
    month = {"month": "2026-11"}
    again = await client.get(
        path, headers={**tenant_a.headers, "If-None-Match": etag}, params=month
    )
    assert (again.status_code, again.content, again.headers["etag"]) == (304, b"", etag)
    assert (await client.get(path, headers=tenant_a.headers, params=month)).content == (
        as_xlsx.content
    )
    renamed = await client.patch(
        f"{API}/people/{ids['SV001']}", headers=tenant_a.headers, json={"full_name": "Asha"}
    )
    assert renamed.status_code == 204
    changed = await client.get(
        path, headers={**tenant_a.headers, "If-None-Match": etag}, params=month
    )
    assert changed.status_code == 200
    assert changed.headers["etag"] != etag
    changed_book = load_workbook(io.BytesIO(changed.content))
    assert changed_book["Register"]["B2"].value == "Asha"

    for params, status in (
        ({"month": "2026-13"}, 422),
        ({"month": "2026-11", "format": "pdf"}, 422),
    ):
        assert_problem(await client.get(path, headers=tenant_a.headers, params=params), status)
    foreign = await client.get(path, headers=tenant_b.headers, params={"month": "2026-11"})
    assert_problem(foreign, 404)
