"""Where a page's columns are: from ruling lines, from text alignment, or inferred.

Inference is the seed's "AI columns": amount columns are where the right edges of amounts
cluster, named by the nearest header keyword; the date column is where dates start lines.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from itertools import pairwise

from touchstone.statements.extraction.layout import MONEY_ROLES, Line, Role, find_header, phrases
from touchstone.statements.extraction.normalise import parse_amount, parse_date
from touchstone.statements.extraction.pdf import Rule, Word

RULE_MERGE = 1.5  # points: rules closer than this are one rule
AMOUNT_EDGE_TOLERANCE = 5.0  # points: right edges of one right-aligned column
_AMOUNT_LIKE = re.compile(r"\d[.,]\d\d(?!\d)")


class Rejected(Exception):
    """A strategy cannot read this page; the message goes into the PageReport."""


@dataclass(frozen=True, slots=True)
class Column:
    role: Role
    left: float  # boundary, not text edge: words whose centre lies right of it belong here


@dataclass(frozen=True)
class PageText:
    """One page's lines and rules, shared by every strategy."""

    lines: list[Line]
    horizontal: list[Rule]
    vertical: list[Rule]
    header: tuple[int, list[tuple[Word, Role]]] | None

    @classmethod
    def of(cls, lines: list[Line], horizontal: list[Rule], vertical: list[Rule]) -> PageText:
        return cls(lines, horizontal, vertical, find_header(lines))

    @property
    def body(self) -> list[Line]:
        return self.lines[self.header[0] + 1 :] if self.header else self.lines

    def table_lines(self) -> list[Line]:
        """The header and body up to the last line holding an amount (footers excluded)."""
        start = self.header[0] if self.header else 0
        lines = self.lines[start:]
        last = max(
            (i for i, line in enumerate(lines) if any(is_amount(w.text) for w in line.words)),
            default=-1,
        )
        return lines[: last + 1]


def is_amount(text: str) -> bool:
    return _AMOUNT_LIKE.search(text) is not None and parse_amount(text) is not None


def cluster(values: list[float], tolerance: float) -> list[list[float]]:
    groups: list[list[float]] = []
    for value in sorted(values):
        if groups and value - groups[-1][-1] <= tolerance:
            groups[-1].append(value)
        else:
            groups.append([value])
    return groups


def intervals_from_rules(page: PageText) -> list[tuple[float, float]]:
    table = page.table_lines()
    if not table:
        raise Rejected("no table rows")
    top, bottom = table[0].top, table[-1].bottom
    tall = [r.position for r in page.vertical if r.end - r.start >= (bottom - top) * 0.3]
    xs = [sum(g) / len(g) for g in cluster(tall, RULE_MERGE)]
    if len(xs) < 4:
        raise Rejected(f"{len(xs)} vertical ruling lines; a table needs at least 4")
    return list(pairwise(xs))


def intervals_from_alignment(page: PageText) -> list[tuple[float, float]]:
    spans = sorted((p.x0, p.x1) for line in page.table_lines() for p in phrases(line))
    merged: list[list[float]] = []
    for x0, x1 in spans:
        if merged and x0 <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], x1)
        else:
            merged.append([x0, x1])
    if len(merged) < 3:
        raise Rejected(f"text aligns into {len(merged)} columns; a table needs at least 3")
    return [(a[0], a[1]) for a in merged]


def columns_with_roles(page: PageText, intervals: list[tuple[float, float]]) -> list[Column]:
    """Name each interval from the header phrase over it, or from what its cells hold."""
    roles: list[Role | None] = [None] * len(intervals)
    lefts = [x0 for x0, _ in intervals]
    for word, role in page.header[1] if page.header else ():
        index = max(0, bisect.bisect_right(lefts, (word.x0 + word.x1) / 2) - 1)
        if roles[index] not in (None, role):
            raise Rejected(f"one column holds the headers {roles[index]} and {role}")
        roles[index] = role
    if page.header is None:
        roles = _roles_from_content(page, lefts)
    if Role.DESCRIPTION not in roles:
        free = [i for i, role in enumerate(roles) if role is None]
        if free:
            widest = max(free, key=lambda i: intervals[i][1] - intervals[i][0])
            roles[widest] = Role.DESCRIPTION
    boundaries = [lefts[0] - 1e6] + [(a[1] + b[0]) / 2 for a, b in pairwise(intervals)]
    return [Column(role or Role.OTHER, left) for role, left in zip(roles, boundaries, strict=True)]


def _roles_from_content(page: PageText, lefts: list[float]) -> list[Role | None]:
    dates = [0] * len(lefts)
    amounts = [0] * len(lefts)
    for line in page.body:
        for word in line.words:
            index = max(0, bisect.bisect_right(lefts, (word.x0 + word.x1) / 2) - 1)
            if parse_date(word.text) is not None:
                dates[index] += 1
            elif is_amount(word.text):
                amounts[index] += 1
    roles: list[Role | None] = [None] * len(lefts)
    if max(dates, default=0):
        roles[dates.index(max(dates))] = Role.DATE
    money = [i for i, count in enumerate(amounts) if count and roles[i] is None]
    for index, role in zip(money, _money_roles_by_order(len(money)), strict=True):
        roles[index] = role
    return roles


def _money_roles_by_order(count: int) -> tuple[Role, ...]:
    """Without a header: the usual order of money columns, balance last."""
    orders = {
        1: (Role.AMOUNT,),
        2: (Role.AMOUNT, Role.BALANCE),
        3: (Role.DEBIT, Role.CREDIT, Role.BALANCE),
    }
    if count not in orders:
        raise Rejected(f"{count} amount columns and no header to name them")
    return orders[count]


def inferred_columns(page: PageText) -> list[Column]:
    """The seed's "AI columns": amount columns are where right edges of amounts cluster, named
    by the nearest header keyword; the date column is where dates start the lines."""
    body = page.body
    edges = [w.x1 for line in body for w in line.words if is_amount(w.text)]
    groups = [g for g in cluster(edges, AMOUNT_EDGE_TOLERANCE) if len(g) >= 2 or len(edges) < 4]
    if not groups:
        raise Rejected("no column of amounts")
    spans: list[tuple[float, float]] = []
    for group in groups:
        low, high = group[0] - AMOUNT_EDGE_TOLERANCE, group[-1] + AMOUNT_EDGE_TOLERANCE
        lefts = [
            w.x0 for line in body for w in line.words if low <= w.x1 <= high and is_amount(w.text)
        ]
        spans.append((min(lefts), group[-1]))
    header = page.header[1] if page.header else []
    money_headers = [(w, role) for w, role in header if role in MONEY_ROLES]
    if money_headers:
        roles = [_nearest_header(span, money_headers) for span in spans]
    else:
        roles = list(_money_roles_by_order(len(spans)))
    date_tokens = [line.words[0] for line in body if parse_date(line.words[0].text) is not None]
    date_header = next((w for w, role in header if role is Role.DATE), None)
    if not date_tokens and date_header is None:
        raise Rejected("no column of dates")
    date_right = max([w.x1 for w in date_tokens] + ([date_header.x1] if date_header else []))
    description = next((w for w, role in header if role is Role.DESCRIPTION), None)
    description_left = (
        (date_right + description.x0) / 2
        if description and description.x0 > date_right
        else date_right + 1
    )
    columns = [Column(Role.DATE, -1e6), Column(Role.DESCRIPTION, description_left)]
    previous_right = None
    for (left, right), role in zip(spans, roles, strict=True):
        boundary = left - 1 if previous_right is None else (previous_right + left) / 2
        if boundary <= columns[-1].left:
            raise Rejected("amount columns overlap the description")
        columns.append(Column(role, boundary))
        previous_right = right
    return columns


def _nearest_header(span: tuple[float, float], headers: list[tuple[Word, Role]]) -> Role:
    def distance(item: tuple[Word, Role]) -> float:
        word = item[0]
        overlap = min(span[1], word.x1) - max(span[0], word.x0)
        return -overlap if overlap > 0 else abs(span[1] - word.x1)

    return min(headers, key=distance)[1]
