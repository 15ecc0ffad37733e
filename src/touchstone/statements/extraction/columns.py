"""Where a page's columns are: from ruling lines, from text alignment, or inferred.

Inference is the seed's "AI columns": amount columns are where the right edges of amounts
cluster, named by the nearest header keyword; the date column is where dates start lines.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, replace
from functools import cached_property
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


Header = list[tuple[Word, Role]]


@dataclass(frozen=True)
class PageText:
    """One page's lines and rules, shared by every strategy."""

    lines: list[Line]
    horizontal: list[Rule]
    vertical: list[Rule]
    header_line: int | None
    """Index of this page's own header line."""
    header: Header
    """The named header phrases: this page's own, or the previous page's on a continuation
    page that prints none (the table goes on in the same columns)."""

    @classmethod
    def of(cls, lines: list[Line], horizontal: list[Rule], vertical: list[Rule]) -> PageText:
        found = find_header(lines)
        return cls(lines, horizontal, vertical, *(found or (None, [])))

    def inheriting(self, header: Header) -> PageText:
        return self if self.header_line is not None else replace(self, header=header)

    @cached_property
    def body(self) -> list[Line]:
        """The lines after the header; without one, from the first line with an amount."""
        if self.header_line is not None:
            return self.lines[self.header_line + 1 :]
        start = next((i for i, line in enumerate(self.lines) if _has_amount(line)), 0)
        return self.lines[start:]

    @cached_property
    def table_lines(self) -> list[Line]:
        """The header and body up to the last line holding an amount (footers excluded)."""
        own_header = [] if self.header_line is None else [self.lines[self.header_line]]
        lines = own_header + self.body
        last = max((i for i, line in enumerate(lines) if _has_amount(line)), default=-1)
        return lines[: last + 1]


def _has_amount(line: Line) -> bool:
    return any(is_amount(word.text) for word in line.words)


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
    table = page.table_lines
    if not table:
        raise Rejected("no table rows")
    top, bottom = table[0].top, table[-1].bottom
    tall = [r.position for r in page.vertical if r.end - r.start >= (bottom - top) * 0.3]
    xs = [sum(g) / len(g) for g in cluster(tall, RULE_MERGE)]
    if len(xs) < 4:
        raise Rejected(f"{len(xs)} vertical ruling lines; a table needs at least 4")
    return list(pairwise(xs))


def intervals_from_alignment(page: PageText) -> list[tuple[float, float]]:
    # A continuation page's inherited header counts as if printed: a column may be empty here.
    header = [(w.x0, w.x1) for w, _ in page.header]
    spans = sorted([(p.x0, p.x1) for line in page.table_lines for p in phrases(line)] + header)
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
    for word, role in page.header:
        index = max(0, bisect.bisect_right(lefts, (word.x0 + word.x1) / 2) - 1)
        if roles[index] not in (None, role):
            raise Rejected(f"one column holds the headers {roles[index]} and {role}")
        roles[index] = role
    if not page.header:
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
    header = page.header
    money_headers = [(w, role) for w, role in header if role in MONEY_ROLES]
    spans: list[tuple[float, float]] = []
    for group in cluster(edges, AMOUNT_EDGE_TOLERANCE):
        low, high = group[0] - AMOUNT_EDGE_TOLERANCE, group[-1] + AMOUNT_EDGE_TOLERANCE
        lefts = [
            w.x0 for line in body for w in line.words if low <= w.x1 <= high and is_amount(w.text)
        ]
        span = (min(lefts), group[-1])
        # A lone amount makes a column only under a money header, not as a description stray.
        if (
            len(group) >= 2
            or len(edges) < 4
            or any(_overlap(span, w) > 0 for w, _ in money_headers)
        ):
            spans.append(span)
    if not spans:
        raise Rejected("no column of amounts")
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


def _overlap(span: tuple[float, float], word: Word) -> float:
    return min(span[1], word.x1) - max(span[0], word.x0)


def _nearest_header(span: tuple[float, float], headers: Header) -> Role:
    def distance(item: tuple[Word, Role]) -> float:
        overlap = _overlap(span, item[0])
        return -overlap if overlap > 0 else abs(span[1] - item[0].x1)

    return min(headers, key=distance)[1]
