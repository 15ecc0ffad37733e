"""Attendance statistics, computed in PostgreSQL under the caller's row-level security.

Who was expected at a session: the members of its group (memberships carry no history, so
a person counts for the sessions of the groups they belong to now). A member with a mark is
`present` or `late` (the mark's status), one without is absent. Only sessions that have
started count, so a timetable generated ahead adds no absences. A session's day is its
local date in its group's zone (or the org's). Streaks are runs of absences in session
order: absences with the same number of attended sessions before them form one run, and the
current streak is the run after the person's last attended session. Window passes over one
sort give every person's figures in a single aggregate, joined once to the people: joined
to each other, per-person results made a nested loop over the people, quadratic in a
school's size.

The CTEs are `NOT MATERIALIZED`, so PostgreSQL plans over the tables and their statistics;
materialised (it has none for them), joining two of them made one query of the group
statistics of a 1,000-student school take over 10 s on this busy machine
(`bench.attendance_statistics`). The range is a range of instants (local midnights in
each group's zone), not a filter on the local date of each session: PostgreSQL guessed
that filter kept 25 of 13,000 sessions and chose nested loops over 320,000 rows.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import text

from touchstone.attendance.exceptions import GroupNotFound, PersonNotFound
from touchstone.attendance.schemas import (
    AbsenteeQuery,
    GroupStatistics,
    PeriodQuery,
    PeriodStatistics,
    PersonStatistics,
    RangeQuery,
    SessionStatistics,
    StatisticsQuery,
)
from touchstone.core.auth import Principal
from touchstone.core.errors import InvalidInput
from touchstone.core.pagination import Items, PageParams, PageQueries, read_page
from touchstone.core.reads import Statements, TenantRead, compile_query

_EXPECTED = """
WITH zone AS (
    SELECT coalesce(
        (SELECT timezone FROM attendance_settings WHERE org_id = CAST(:org_id AS uuid)), 'UTC'
    ) AS name
), in_range AS NOT MATERIALIZED (
    SELECT s.id, s.group_id, s.label, s.starts_at,
           CAST(s.starts_at AT TIME ZONE coalesce(g.timezone, zone.name) AS date) AS day
    FROM attendance_sessions s
    JOIN attendance_groups g ON g.id = s.group_id
    CROSS JOIN zone
    WHERE s.org_id = CAST(:org_id AS uuid)
      AND s.starts_at <= now()
      AND s.starts_at >= CAST(:date_from AS timestamp) AT TIME ZONE coalesce(g.timezone, zone.name)
      AND s.starts_at < (CAST(:date_to AS timestamp) + interval '1 day')
          AT TIME ZONE coalesce(g.timezone, zone.name)
      AND (CAST(:group_id AS uuid) IS NULL OR s.group_id = CAST(:group_id AS uuid))
), expected AS NOT MATERIALIZED (
    SELECT h.id AS session_id, h.group_id, h.day, h.starts_at, m.person_id,
           coalesce(k.status, 'absent') AS status
    FROM in_range h
    JOIN attendance_memberships m ON m.group_id = h.group_id
    LEFT JOIN attendance_marks k ON k.session_id = h.id AND k.person_id = m.person_id
)
"""

_COUNTS = """
    count(e.person_id) AS expected,
    count(*) FILTER (WHERE e.status = 'present') AS present,
    count(*) FILTER (WHERE e.status = 'late') AS late,
    count(*) FILTER (WHERE e.status = 'absent') AS absent,
    CAST(round(
        count(*) FILTER (WHERE e.status IN ('present', 'late'))::numeric
        / nullif(count(e.person_id), 0), 4
    ) AS float8) AS rate
"""

_PEOPLE = (
    _EXPECTED
    + """
, ordered AS (
    SELECT person_id, status,
           count(*) FILTER (WHERE status <> 'absent') OVER (
               PARTITION BY person_id ORDER BY starts_at, session_id
               ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
           ) AS attended_so_far,
           count(*) FILTER (WHERE status <> 'absent') OVER (PARTITION BY person_id) AS attended
    FROM expected
), runs AS (
    SELECT person_id, status, attended_so_far, attended,
           count(*) OVER (PARTITION BY person_id, status, attended_so_far) AS run
    FROM ordered
), totals AS (
    SELECT person_id, count(*) AS sessions, max(attended) AS attended,
           count(*) FILTER (WHERE status = 'late') AS late,
           count(*) FILTER (WHERE status = 'absent') AS absences,
           coalesce(max(run) FILTER (WHERE status = 'absent'), 0) AS longest,
           coalesce(max(run) FILTER (
               WHERE status = 'absent' AND attended_so_far = attended
           ), 0) AS current
    FROM runs GROUP BY person_id
)
SELECT p.id AS person_id, p.code, p.full_name,
       coalesce(t.sessions, 0) AS sessions,
       coalesce(t.attended, 0) AS attended,
       coalesce(t.late, 0) AS late,
       coalesce(t.absences, 0) AS absences,
       CAST(round(t.attended::numeric / nullif(t.sessions, 0), 4) AS float8) AS rate,
       coalesce(t.current, 0) AS current_absence_streak,
       coalesce(t.longest, 0) AS longest_absence_streak
FROM attendance_people p
LEFT JOIN totals t ON t.person_id = p.id
WHERE p.org_id = CAST(:org_id AS uuid)
  AND (CAST(:person_id AS uuid) IS NULL OR p.id = CAST(:person_id AS uuid))
  AND (CAST(:group_id AS uuid) IS NULL OR p.id IN (
      SELECT person_id FROM attendance_memberships WHERE group_id = CAST(:group_id AS uuid)
  ))
  AND (CAST(:below AS float8) IS NULL OR (
      t.sessions >= CAST(:min_sessions AS int)
      AND t.attended::float8 / t.sessions < CAST(:below AS float8)
  ))
"""
)

_GROUPS = (
    _EXPECTED
    + f"""
SELECT g.id AS group_id, g.name,
       (SELECT count(*) FROM attendance_memberships m WHERE m.group_id = g.id) AS members,
       coalesce(h.sessions, 0) AS sessions,
       coalesce(e.expected, 0) AS expected,
       coalesce(e.present, 0) AS present,
       coalesce(e.late, 0) AS late,
       coalesce(e.absent, 0) AS absent,
       e.rate
FROM attendance_groups g
LEFT JOIN (SELECT group_id, count(*) AS sessions FROM in_range GROUP BY group_id) h
       ON h.group_id = g.id
LEFT JOIN (SELECT e.group_id, {_COUNTS} FROM expected e GROUP BY e.group_id) e
       ON e.group_id = g.id
WHERE g.org_id = CAST(:org_id AS uuid)
  AND (CAST(:group_id AS uuid) IS NULL OR g.id = CAST(:group_id AS uuid))
"""
)
"""Sessions and member-sessions are counted apart and met per group: joining the
member-sessions back to the sessions costs more than both counts."""

_SESSIONS = (
    _EXPECTED
    + f"""
SELECT h.id AS session_id, h.group_id, h.label, h.starts_at, h.day,
       {_COUNTS}
FROM in_range h
LEFT JOIN expected e ON e.session_id = h.id
GROUP BY h.id, h.group_id, h.label, h.starts_at, h.day
"""
)

_PERIODS = (
    _EXPECTED
    + f"""
SELECT p.period_start, p.sessions,
       coalesce(e.expected, 0) AS expected,
       coalesce(e.present, 0) AS present,
       coalesce(e.late, 0) AS late,
       coalesce(e.absent, 0) AS absent,
       e.rate
FROM (
    SELECT CAST(date_trunc(CAST(:period AS text), CAST(h.day AS timestamp)) AS date)
               AS period_start,
           count(*) AS sessions
    FROM in_range h GROUP BY 1
) p
LEFT JOIN (
    SELECT CAST(date_trunc(CAST(:period AS text), CAST(e.day AS timestamp)) AS date)
               AS period_start,
           {_COUNTS}
    FROM expected e GROUP BY 1
) e ON e.period_start = p.period_start
"""
)


@dataclass(frozen=True, eq=False)
class StatisticsList:
    """One statistics list: its SQL (selecting the item's fields in order), the sorts a
    client may ask for, and its pages compiled once per sort (hashed by identity: each is
    a module constant)."""

    body: str
    item: type[BaseModel]
    sorts: Mapping[str, str]
    default_sort: str
    tiebreak: str

    def queries(self, sort: str | None) -> PageQueries:
        return _compiled(self, sort or self.default_sort)


@functools.lru_cache(maxsize=64)
def _compiled(shape: StatisticsList, sort: str) -> PageQueries:
    name = sort.removeprefix("-")
    if name not in shape.sorts:
        raise InvalidInput(
            f"Cannot sort by '{name}'; choose one of: {', '.join(sorted(shape.sorts))}"
        )
    direction = "DESC NULLS LAST" if sort.startswith("-") else "ASC NULLS LAST"
    fields = tuple(shape.item.model_fields)
    columns = ", ".join(f"q.{field}" for field in fields)
    page = text(
        f"SELECT {columns}, count(*) OVER () AS total FROM ({shape.body}) q "
        f"ORDER BY {shape.sorts[name]} {direction}, {shape.tiebreak} "
        "LIMIT CAST(:limit AS int) OFFSET CAST(:offset AS int)"
    )
    total = text(f"SELECT count(*) FROM ({shape.body}) q")
    return PageQueries(compile_query(page), compile_query(total), fields, total_in_rows=True)


PEOPLE = StatisticsList(
    _PEOPLE,
    PersonStatistics,
    {
        name: f"q.{name}"
        for name in (
            "code",
            "full_name",
            "rate",
            "absences",
            "late",
            "current_absence_streak",
            "longest_absence_streak",
        )
    },
    "code",
    "q.code, q.person_id",
)
GROUPS = StatisticsList(
    _GROUPS,
    GroupStatistics,
    {name: f"q.{name}" for name in ("name", "rate", "absent", "late")},
    "name",
    "q.group_id",
)
SESSIONS = StatisticsList(
    _SESSIONS,
    SessionStatistics,
    {name: f"q.{name}" for name in ("starts_at", "rate", "absent", "late")},
    "starts_at",
    "q.session_id",
)
PERIODS = StatisticsList(
    _PERIODS, PeriodStatistics, {"period_start": "q.period_start"}, "period_start", "q.sessions"
)
REGISTER = compile_query(
    text(
        _EXPECTED
        + """
SELECT e.session_id, e.person_id, e.status FROM expected e ORDER BY e.starts_at, e.session_id
"""
    )
)
"""Who was expected at which session and how they came: the cells of an export's register."""
GROUP_NAME = compile_query(
    text(
        "SELECT name FROM attendance_groups "
        "WHERE org_id = CAST(:org_id AS uuid) AND id = CAST(:group_id AS uuid)"
    )
)


def values(principal: Principal, query: StatisticsQuery, **extra: Any) -> dict[str, Any]:
    """Every value the statistics queries bind (the ones a query does not use included)."""
    date_from, date_to = query.span(datetime.now(UTC).date())
    return {
        "org_id": principal.org_id,
        "group_id": query.group_id,
        "date_from": date_from,
        "date_to": date_to,
        "person_id": None,
        "below": None,
        "min_sessions": 1,
        "period": "week",
        **extra,
    }


async def _check_group(read: TenantRead, group_id: uuid.UUID | None) -> None:
    """Another org's group is a 404, not an empty page."""
    if group_id is None:
        return

    def plan(principal: Principal) -> Statements:
        return [(GROUP_NAME, {"org_id": principal.org_id, "group_id": group_id})]

    (rows,) = await read.fetch(plan)
    if not rows:
        raise GroupNotFound()


async def _page(
    read: TenantRead,
    shape: StatisticsList,
    page: PageParams,
    query: StatisticsQuery,
    **extra: Any,
) -> tuple[Items, int]:
    await _check_group(read, query.group_id)

    def plan(principal: Principal) -> tuple[PageQueries, dict[str, Any]]:
        return shape.queries(page.sort), values(principal, query, **extra)

    return await read_page(read, plan, page)


async def people(read: TenantRead, page: PageParams, query: StatisticsQuery) -> tuple[Items, int]:
    return await _page(read, PEOPLE, page, query)


async def chronic_absentees(
    read: TenantRead, page: PageParams, query: AbsenteeQuery
) -> tuple[Items, int]:
    """People whose rate is under `below` (lowest first unless sorted otherwise)."""
    if page.sort is None:
        page = page.model_copy(update={"sort": "rate"})
    return await _page(
        read, PEOPLE, page, query, below=query.below, min_sessions=query.min_sessions
    )


async def person(read: TenantRead, person_id: uuid.UUID, span: RangeQuery) -> dict[str, Any]:
    """Across all the person's groups."""
    query = StatisticsQuery(**span.model_dump())
    items, _ = await _page(read, PEOPLE, PageParams(limit=1), query, person_id=person_id)
    if not items:
        raise PersonNotFound()
    return items[0]


async def groups(read: TenantRead, page: PageParams, query: StatisticsQuery) -> tuple[Items, int]:
    return await _page(read, GROUPS, page, query)


async def group(read: TenantRead, group_id: uuid.UUID, span: RangeQuery) -> dict[str, Any]:
    query = StatisticsQuery(**span.model_dump(), group_id=group_id)
    items, _ = await _page(read, GROUPS, PageParams(limit=1), query)
    if not items:
        raise GroupNotFound()
    return items[0]


async def sessions(read: TenantRead, page: PageParams, query: StatisticsQuery) -> tuple[Items, int]:
    return await _page(read, SESSIONS, page, query)


async def periods(read: TenantRead, page: PageParams, query: PeriodQuery) -> tuple[Items, int]:
    return await _page(read, PERIODS, page, query, period=query.period)


def month_range(month: date) -> tuple[date, date]:
    """The first and last day of `month`'s month."""
    first = month.replace(day=1)
    following = (
        first.replace(year=first.year + 1, month=1)
        if first.month == 12
        else (first.replace(month=first.month + 1))
    )
    return first, date.fromordinal(following.toordinal() - 1)
