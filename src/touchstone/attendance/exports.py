"""A group's month as a file: CSV (one row per member) or XLSX (members, sessions and the
register of who came to what), read in one round trip under the caller's tenant.

Every text cell a person typed (a name, a label) is written as text: the CSV prefixes one
that starts like a formula with an apostrophe, and the workbook never turns strings into
formulas, so a student named `=HYPERLINK(…)` stays a name in Excel.

Building a workbook costs milliseconds a member, and a month's register rarely changes once
the month is over, so a file is built once per distinct content: the report's digest names
it (the same register gives the same bytes), in the tenant's part of the app's cache, and is
the response's ETag.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import uuid
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any

import anyio
import xlsxwriter

from touchstone.attendance import statistics
from touchstone.attendance.exceptions import GroupNotFound
from touchstone.attendance.schemas import PersonStatistics, SessionStatistics, StatisticsQuery
from touchstone.core.auth import Principal
from touchstone.core.cache import Cache, tenant_key
from touchstone.core.reads import Statements, TenantRead

CSV_TYPE = "text/csv; charset=utf-8"
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
MAX_ROWS = 100_000
WORKBOOK_TTL_S = 3600.0
PERSON_COLUMNS = tuple(PersonStatistics.model_fields)
SESSION_COLUMNS = tuple(SessionStatistics.model_fields)
REGISTER_LETTERS = {"present": "P", "late": "L", "absent": "A"}
BOOK_OPTIONS = {
    "in_memory": True,
    "strings_to_formulas": False,
    "strings_to_numbers": False,
    "strings_to_urls": False,
}


@dataclass(frozen=True)
class MonthReport:
    group_name: str
    month: date
    people: list[dict[str, Any]]
    sessions: list[dict[str, Any]]
    register: list[tuple[uuid.UUID, uuid.UUID, str]]
    """(session, person, status) for every member expected at every session held."""

    @property
    def digest(self) -> str:
        """What the file shows, hashed: reports with equal digests make equal files."""
        shown = (self.group_name, self.month, self.people, self.sessions, self.register)
        return hashlib.blake2b(repr(shown).encode(), digest_size=16).hexdigest()

    @property
    def stem(self) -> str:
        safe = re.sub(r"[^A-Za-z0-9_-]+", "_", self.group_name).strip("_") or "group"
        return f"attendance-{safe[:60]}-{self.month:%Y-%m}"


async def month_report(read: TenantRead, group_id: uuid.UUID, month: date) -> MonthReport:
    first, last = statistics.month_range(month)
    people = statistics.PEOPLE.queries("code")
    sessions = statistics.SESSIONS.queries("starts_at")
    everything = {"limit": MAX_ROWS, "offset": 0}

    def plan(principal: Principal) -> Statements:
        query = StatisticsQuery(date_from=first, date_to=last, group_id=group_id)
        values = statistics.values(principal, query)
        return [
            (statistics.GROUP_NAME, values),
            (people.page, {**values, **everything}),
            (sessions.page, {**values, **everything}),
            (statistics.REGISTER, values),
        ]

    found, person_rows, session_rows, register = await read.fetch(plan)
    if not found:
        raise GroupNotFound()
    return MonthReport(
        group_name=found[0][0],
        month=first,
        people=[dict(zip(people.fields, row, strict=False)) for row in person_rows],
        sessions=[dict(zip(sessions.fields, row, strict=False)) for row in session_rows],
        register=[(row[0], row[1], row[2]) for row in register],
    )


def _defused(value: Any) -> str:
    text = "" if value is None else str(value)
    return f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def as_csv(report: MonthReport) -> bytes:
    """One row per member (the figures of `GET /statistics/people` for the month)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(PERSON_COLUMNS)
    for person in report.people:
        writer.writerow(
            [
                _defused(person[c]) if isinstance(person[c], str) else person[c]
                for c in PERSON_COLUMNS
            ]
        )
    return buffer.getvalue().encode("utf-8")


def _workbook(report: MonthReport) -> bytes:
    buffer = io.BytesIO()
    book = xlsxwriter.Workbook(buffer, BOOK_OPTIONS)
    # Dated by the month it reports, not by the clock: the same register, the same bytes.
    book.set_properties(
        {
            "title": f"Attendance {report.group_name} {report.month:%Y-%m}",
            "created": datetime.combine(report.month, time()),
        }
    )
    bold = book.add_format({"bold": True})
    percent = book.add_format({"num_format": "0.0%"})
    when = book.add_format({"num_format": "yyyy-mm-dd hh:mm"})

    def table(name: str, columns: tuple[str, ...], rows: list[dict[str, Any]]) -> None:
        sheet = book.add_worksheet(name)
        sheet.write_row(0, 0, columns, bold)
        sheet.freeze_panes(1, 0)
        for r, row in enumerate(rows, start=1):
            for c, column in enumerate(columns):
                value = row[column]
                if column == "rate" and value is not None:
                    sheet.write_number(r, c, value, percent)
                elif hasattr(value, "tzinfo") and value is not None:
                    sheet.write_datetime(r, c, value.replace(tzinfo=None), when)
                elif isinstance(value, int | float):
                    sheet.write_number(r, c, value)
                else:
                    sheet.write_string(r, c, "" if value is None else str(value))
        sheet.autofit()

    table("Members", PERSON_COLUMNS, report.people)
    table("Sessions", SESSION_COLUMNS, report.sessions)
    register = book.add_worksheet("Register")
    register.write_row(0, 0, ("code", "full_name"), bold)
    column_of = {}
    for column, held in enumerate(report.sessions, start=2):
        column_of[held["session_id"]] = column
        register.write_string(0, column, f"{held['day']:%d %b} {held['label']}", bold)
    row_of = {}
    for row, member in enumerate(report.people, start=1):
        row_of[member["person_id"]] = row
        register.write_string(row, 0, member["code"])
        register.write_string(row, 1, member["full_name"])
    for session, person, status in report.register:
        if session in column_of and person in row_of:
            register.write_string(row_of[person], column_of[session], REGISTER_LETTERS[status])
    register.freeze_panes(1, 2)
    register.autofit()
    book.close()
    return buffer.getvalue()


async def as_xlsx(report: MonthReport, digest: str, org_id: uuid.UUID, cache: Cache) -> bytes:
    """Sheets Members, Sessions (times in UTC) and Register (P present, L late, A absent);
    built in a thread on the first request for this content, then served from the cache."""
    key = tenant_key(org_id, "attendance-month-xlsx", digest)
    return await cache.get_or_set(
        key, WORKBOOK_TTL_S, lambda: anyio.to_thread.run_sync(_workbook, report)
    )
