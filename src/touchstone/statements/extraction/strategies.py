"""The seed's page strategies: find the columns, cut the rows, read the transactions.

A: columns and rows from ruling lines.      B: columns from text alignment, rows from text lines.
C: inferred columns (header keywords and clusters of amount right edges), rows from rules.
D: inferred columns, rows from text lines.  E: D then B on words read by OCR.

Every strategy ends in the same row reader and the same balance check, so they differ only in
where the column boundaries and row breaks come from.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import pairwise

from touchstone.statements.extraction.layout import (
    MONEY_ROLES,
    Line,
    Role,
    find_header,
    phrases,
)
from touchstone.statements.extraction.normalise import (
    Amount,
    PartialDate,
    clean_text,
    parse_amount,
    parse_date,
)
from touchstone.statements.extraction.pdf import Rule, Word
from touchstone.statements.extraction.validation import chain_breaks

RULE_MERGE = 1.5  # points: rules closer than this are one rule
AMOUNT_EDGE_TOLERANCE = 5.0  # points: right edges of one right-aligned column
_OPENING = re.compile(
    r"brought\s+forward|\bb/f\b|\bbfwd\b|opening\s+balance|balance\s+forward|previous\s+balance"
    r"|saldo\s*vortrag|anfangssaldo|alter\s+saldo|solde\s+(?:précédent|initial)",
    re.IGNORECASE,
)
_CLOSING = re.compile(
    r"carried\s+forward|\bc/f\b|\bcfwd\b|closing\s+balance|new\s+balance|end(?:ing)?\s+balance"
    r"|endsaldo|neuer\s+saldo|solde\s+final",
    re.IGNORECASE,
)


_AMOUNT_LIKE = re.compile(r"\d[.,]\d\d(?!\d)")


class Rejected(Exception):
    """A strategy cannot read this page; the message goes into the PageReport."""


@dataclass(frozen=True, slots=True)
class Column:
    role: Role
    left: float  # boundary, not text edge: words whose centre lies right of it belong here


@dataclass(slots=True)
class RawTransaction:
    """A row before the statement's period is known (its date may lack a year)."""

    date: PartialDate
    description: str
    amount: Decimal
    balance: Decimal | None


@dataclass
class PageRows:
    transactions: list[RawTransaction] = field(default_factory=list)
    opening: Decimal | None = None  # printed "brought forward" balance
    closing: Decimal | None = None  # printed "carried forward" / closing balance
    currencies: set[str] = field(default_factory=set)


@dataclass
class Candidate:
    strategy: str
    rows: PageRows
    breaks: int  # balances on the page that do not follow from the previous one
    end_balance: Decimal | None


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
            (i for i, line in enumerate(lines) if any(_is_amount(w.text) for w in line.words)),
            default=-1,
        )
        return lines[: last + 1]


@dataclass(slots=True)
class _Unit:
    cells: dict[Role, list[str]]
    top: float
    bottom: float

    def text(self, role: Role) -> str:
        return clean_text(" ".join(self.cells.get(role, ())))


def _is_amount(text: str) -> bool:
    return _AMOUNT_LIKE.search(text) is not None and parse_amount(text) is not None


def _cluster(values: list[float], tolerance: float) -> list[list[float]]:
    groups: list[list[float]] = []
    for value in sorted(values):
        if groups and value - groups[-1][-1] <= tolerance:
            groups[-1].append(value)
        else:
            groups.append([value])
    return groups


# --- columns ------------------------------------------------------------------------------


def _intervals_from_rules(page: PageText) -> list[tuple[float, float]]:
    table = page.table_lines()
    if not table:
        raise Rejected("no table rows")
    top, bottom = table[0].top, table[-1].bottom
    tall = [r.position for r in page.vertical if r.end - r.start >= (bottom - top) * 0.3]
    xs = [sum(g) / len(g) for g in _cluster(tall, RULE_MERGE)]
    if len(xs) < 4:
        raise Rejected(f"{len(xs)} vertical ruling lines; a table needs at least 4")
    return list(pairwise(xs))


def _intervals_from_alignment(page: PageText) -> list[tuple[float, float]]:
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


def _columns_with_roles(page: PageText, intervals: list[tuple[float, float]]) -> list[Column]:
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
            elif _is_amount(word.text):
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


def _inferred_columns(page: PageText) -> list[Column]:
    """The seed's "AI columns": amount columns are where right edges of amounts cluster, named
    by the nearest header keyword; the date column is where dates start the lines."""
    body = page.body
    edges = [w.x1 for line in body for w in line.words if _is_amount(w.text)]
    groups = [g for g in _cluster(edges, AMOUNT_EDGE_TOLERANCE) if len(g) >= 2 or len(edges) < 4]
    if not groups:
        raise Rejected("no column of amounts")
    spans: list[tuple[float, float]] = []
    for group in groups:
        low, high = group[0] - AMOUNT_EDGE_TOLERANCE, group[-1] + AMOUNT_EDGE_TOLERANCE
        lefts = [
            w.x0 for line in body for w in line.words if low <= w.x1 <= high and _is_amount(w.text)
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


# --- rows ---------------------------------------------------------------------------------


def _cells(lines: Sequence[Line], columns: list[Column]) -> _Unit:
    lefts = [c.left for c in columns]
    cells: dict[Role, list[str]] = {}
    for line in lines:
        for word in line.words:
            role = columns[max(0, bisect.bisect_right(lefts, (word.x0 + word.x1) / 2) - 1)].role
            cells.setdefault(role, []).append(word.text)
    return _Unit(cells, lines[0].top, lines[-1].bottom)


def _units_from_text(page: PageText, columns: list[Column]) -> list[_Unit]:
    return [_cells([line], columns) for line in page.body]


def _units_from_rules(page: PageText, columns: list[Column]) -> list[_Unit]:
    body = page.body
    if not body:
        raise Rejected("no table rows")
    left = min(w.x0 for line in body for w in line.words)
    right = max(w.x1 for line in body for w in line.words)
    wide = [r.position for r in page.horizontal if r.end - r.start >= (right - left) * 0.5]
    ys = [sum(g) / len(g) for g in _cluster(wide, RULE_MERGE)]
    if len(ys) < 3:
        raise Rejected(f"{len(ys)} horizontal ruling lines; rows need at least 3")
    bands: dict[int, list[Line]] = {}
    for line in body:
        band = bisect.bisect_right(ys, line.middle)
        key = band if 0 < band < len(ys) else -1 - len(bands)  # outside the rules: on its own
        bands.setdefault(key, []).append(line)
    return [_cells(lines, columns) for lines in sorted(bands.values(), key=lambda ls: ls[0].top)]


# --- reading rows -------------------------------------------------------------------------


def _money(unit: _Unit, started: bool) -> dict[Role, Amount] | None:
    """The unit's parsed money cells; None for unreadable text before the table starts."""
    money: dict[Role, Amount] = {}
    for role in MONEY_ROLES:
        text = unit.text(role)
        if not text:
            continue
        amount = parse_amount(text)
        if amount is None:
            if not started:
                return None
            raise Rejected(f"unreadable {role} {text!r}")
        money[role] = amount
    return money


def _signed(money: dict[Role, Amount]) -> Decimal | None:
    debit, credit, amount = money.get(Role.DEBIT), money.get(Role.CREDIT), money.get(Role.AMOUNT)
    if sum(x is not None for x in (debit, credit, amount)) > 1:
        raise Rejected("a row with amounts in two columns")
    if debit is not None:
        return -abs(debit.value)
    if credit is not None:
        return abs(credit.value)
    return amount.value if amount is not None else None


def read_rows(units: list[_Unit], dayfirst: bool) -> PageRows:
    """Transactions from row units: dates carried down, descriptions joined across lines,
    brought/carried-forward lines kept apart."""
    page = PageRows()
    current: RawTransaction | None = None
    current_bottom = 0.0
    last_date: PartialDate | None = None
    for unit in units:
        started = bool(page.transactions) or page.opening is not None
        money = _money(unit, started)
        if money is None:
            continue
        description = unit.text(Role.DESCRIPTION)
        other = unit.text(Role.OTHER)
        label = f"{description} {other}"
        opening, closing = _OPENING.search(label), _CLOSING.search(label)
        if opening or closing:
            value = money.get(Role.BALANCE) or next(iter(money.values()), None)
            if value is not None:
                if opening and not page.transactions and page.opening is None:
                    page.opening = value.value
                elif closing:
                    page.closing = value.value
            current = None
            continue
        page.currencies.update(a.currency for a in money.values() if a.currency)
        signed = _signed(money)
        date_text = unit.text(Role.DATE)
        date = parse_date(date_text, dayfirst=dayfirst) if date_text else None
        if date_text and date is None:
            if not started:
                continue
            raise Rejected(f"unreadable date {date_text!r}")
        text = clean_text(f"{description} {other}")
        if signed is None:
            near = (
                current is not None and unit.top - current_bottom <= (unit.bottom - unit.top) * 1.5
            )
            if current is not None and near and not date and text:
                current.description = clean_text(f"{current.description} {text}")
                current_bottom = unit.bottom
            elif date is not None and text:
                raise Rejected(f"a dated row without an amount: {text!r}")
            continue
        date = date or last_date
        if date is None:
            if not started:
                continue
            raise Rejected(f"a row without a date: {text!r}")
        balance = money.get(Role.BALANCE)
        current = RawTransaction(date, text, signed, balance.value if balance else None)
        current_bottom = unit.bottom
        page.transactions.append(current)
        last_date = date
    if not page.transactions:
        raise Rejected("no transaction rows")
    return page


def _candidate(letter: str, rows: PageRows, anchor: Decimal | None) -> Candidate:
    start = rows.opening if rows.opening is not None else anchor
    breaks, end = chain_breaks([(t.amount, t.balance) for t in rows.transactions], start)
    count = len(breaks)
    if rows.closing is not None:
        if end is not None and end != rows.closing:
            count += 1
        end = rows.closing
    return Candidate(letter, rows, count, end)


Strategy = Callable[[PageText, bool], PageRows]


def _ruled(page: PageText, dayfirst: bool) -> PageRows:
    columns = _columns_with_roles(page, _intervals_from_rules(page))
    return read_rows(_units_from_rules(page, columns), dayfirst)


def _aligned(page: PageText, dayfirst: bool) -> PageRows:
    columns = _columns_with_roles(page, _intervals_from_alignment(page))
    return read_rows(_units_from_text(page, columns), dayfirst)


def _inferred_ruled(page: PageText, dayfirst: bool) -> PageRows:
    return read_rows(_units_from_rules(page, _inferred_columns(page)), dayfirst)


def _inferred_text(page: PageText, dayfirst: bool) -> PageRows:
    return read_rows(_units_from_text(page, _inferred_columns(page)), dayfirst)


TEXT_STRATEGIES: dict[str, Strategy] = {
    "A": _ruled,
    "B": _aligned,
    "C": _inferred_ruled,
    "D": _inferred_text,
}
OCR_STRATEGIES: tuple[Strategy, ...] = (_inferred_text, _aligned)


@dataclass
class PageOutcome:
    chosen: Candidate | None
    rejected: dict[str, str]
    readable: bool  # some strategy produced well-formed rows (balances aside)


def run_strategies(
    letters: dict[str, Sequence[Strategy]], page: PageText, dayfirst: bool, anchor: Decimal | None
) -> PageOutcome:
    """The first strategy whose rows pass the balance check; failing that, the readable one
    with the fewest breaks (a forged or misprinted statement still yields its rows)."""
    rejected: dict[str, str] = {}
    best: Candidate | None = None
    for letter, strategies in letters.items():
        reasons = []
        for strategy in strategies:
            try:
                candidate = _candidate(letter, strategy(page, dayfirst), anchor)
            except Rejected as exc:
                reasons.append(str(exc))
                continue
            if candidate.breaks == 0:
                return PageOutcome(candidate, rejected, True)
            reasons.append(f"{candidate.breaks} balance(s) do not follow")
            if best is None or candidate.breaks < best.breaks:
                best = candidate
        rejected[letter] = "; ".join(reasons)
    return PageOutcome(best, rejected, best is not None)
