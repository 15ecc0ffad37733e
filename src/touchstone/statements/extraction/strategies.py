"""The seed's page strategies: find the columns, cut the rows, read the transactions.

A: columns and rows from ruling lines.      B: columns from text alignment, rows from text lines.
C: inferred columns (header keywords and clusters of amount right edges), rows from rules.
D: inferred columns, rows from text lines.  E: D then B on words read by OCR.

Every strategy ends in the same row reader and the same balance check, so they differ only in
where the column boundaries (`columns.py`) and the row breaks come from.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from touchstone.statements.extraction.columns import (
    RULE_MERGE,
    Column,
    Header,
    PageText,
    Rejected,
    cluster,
    columns_with_roles,
    inferred_columns,
    intervals_from_alignment,
    intervals_from_rules,
    is_amount,
)
from touchstone.statements.extraction.layout import MONEY_ROLES, Line, Role
from touchstone.statements.extraction.normalise import (
    Amount,
    PartialDate,
    clean_text,
    parse_amount,
    parse_date,
)
from touchstone.statements.extraction.validation import chain_breaks

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


@dataclass(frozen=True)
class Context:
    """How to read a page, and what it inherits from the page before: the balance that page
    ended on (the start of this page's chain) and its last date (for an undated first row)."""

    dayfirst: bool = True
    balance: Decimal | None = None
    date: PartialDate | None = None
    header: Header = field(default_factory=list)


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


@dataclass(slots=True)
class _Unit:
    cells: dict[Role, list[str]]
    top: float
    bottom: float

    def text(self, role: Role) -> str:
        return clean_text(" ".join(self.cells.get(role, ())))


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
    ys = [sum(g) / len(g) for g in cluster(wide, RULE_MERGE)]
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


def read_rows(units: list[_Unit], context: Context) -> PageRows:
    """Transactions from row units: dates carried down, descriptions joined across lines,
    brought/carried-forward lines kept apart."""
    page = PageRows()
    current: RawTransaction | None = None
    current_bottom = 0.0
    last_date = context.date
    for unit in units:
        started = bool(page.transactions) or page.opening is not None
        money = _money(unit, started)
        if money is None:
            continue
        text = clean_text(f"{unit.text(Role.DESCRIPTION)} {unit.text(Role.OTHER)}")
        opening, closing = _OPENING.search(text), _CLOSING.search(text)
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
        date = parse_date(date_text, dayfirst=context.dayfirst) if date_text else None
        if date_text and date is None:
            if not started:
                continue
            raise Rejected(f"unreadable date {date_text!r}")
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


def looks_like_a_table(page: PageText) -> bool:
    """Whether a page no strategy could read seems to hold transactions (it is then flagged):
    a line that starts with a date and holds an amount, or a brought/carried-forward line."""
    for line in page.lines:
        text = line.text
        amounts = any(is_amount(word.text) for word in line.words)
        if amounts and (
            parse_date(line.words[0].text) is not None
            or _OPENING.search(text)
            or _CLOSING.search(text)
        ):
            return True
    return False


def _candidate(letter: str, rows: PageRows, anchor: Decimal | None) -> Candidate:
    start = rows.opening if rows.opening is not None else anchor
    breaks, end = chain_breaks([(t.amount, t.balance) for t in rows.transactions], start)
    count = len(breaks)
    if rows.closing is not None:
        if end is not None and end != rows.closing:
            count += 1
        end = rows.closing
    return Candidate(letter, rows, count, end)


Strategy = Callable[[PageText, Context], PageRows]


def _ruled(page: PageText, context: Context) -> PageRows:
    columns = columns_with_roles(page, intervals_from_rules(page))
    return read_rows(_units_from_rules(page, columns), context)


def _aligned(page: PageText, context: Context) -> PageRows:
    columns = columns_with_roles(page, intervals_from_alignment(page))
    return read_rows(_units_from_text(page, columns), context)


def _inferred_ruled(page: PageText, context: Context) -> PageRows:
    return read_rows(_units_from_rules(page, inferred_columns(page)), context)


def _inferred_text(page: PageText, context: Context) -> PageRows:
    return read_rows(_units_from_text(page, inferred_columns(page)), context)


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
    letters: dict[str, Sequence[Strategy]], page: PageText, context: Context
) -> PageOutcome:
    """The first strategy whose rows pass the balance check; failing that, the readable one
    with the fewest breaks (a forged or misprinted statement still yields its rows)."""
    rejected: dict[str, str] = {}
    best: Candidate | None = None
    for letter, strategies in letters.items():
        reasons = []
        for strategy in strategies:
            try:
                candidate = _candidate(letter, strategy(page, context), context.balance)
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
