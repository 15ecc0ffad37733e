"""Strategy L: a whole statement read as one ledger, whatever the bank's layout.

Every page's lines are sorted into rows (a date at the left, money at the right), their
continuations (text only, just below a row) and the rest (furniture, summary boxes). Money
columns are where the figures of dated rows line up; the rightmost one is the balance when
rows print two figures or the header names it. What no layout says for sure (which of two
columns is money out, the sign of an unmarked amount, whether the account is a card) is
tried every way, and the reading the balance chain and the printed summary agree with is
kept. A printed figure is never replaced by one the chain would like: a changed amount
breaks every reading, so it cannot come out verified.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field, replace
from decimal import Decimal
from itertools import combinations, pairwise

from touchstone.statements.extraction.columns import PageText
from touchstone.statements.extraction.layout import (
    HEADER_ROLES,
    Line,
    Role,
    header_key,
    header_role,
)
from touchstone.statements.extraction.metadata import read_period
from touchstone.statements.extraction.money import (
    Figure,
    Mark,
    glued_rest,
    leading_date,
    misread_date,
    trailing_figures,
)
from touchstone.statements.extraction.normalise import PartialDate, clean_text
from touchstone.statements.extraction.pdf import Word
from touchstone.statements.extraction.strategies import PageRows, RawTransaction

HEADER = "\x00header"  # marks a header line among the sorted lines
ALIGN_TOLERANCE = 2.0  # points: a figure this close to a money column belongs to it
MAX_FREE_SIGNS = 14  # rows between two balances whose signs may be searched (2^14 tries)
_DIGIT = re.compile(r"\d")
_UNIT = re.compile(r"\([^)]*\)?\S*")
_DAY_MONTH_WORD = re.compile(r"\d\d[/.\-]\d\d")
_LABEL_NOISE = re.compile(r"[^a-zà-ÿ/' ]+")
_OPENING = re.compile(
    r"(?:opening|previous|prior|beginning|starting|start|last statement|last month'?s?|old)"
    r" (?:statement )?balance|balance (?:brought forward|b/f|bf|forward)|brought forward|b/f"
    r"|anfangssaldo|alter saldo|saldo vortrag|saldovortrag|solde (?:précédent|initial|ancien)"
    r"|saldo (?:anterior|inicial|precedente)"
)
_CLOSING = re.compile(
    r"(?:closing|new|current|ending|end|final) (?:statement )?balance"
    r"|balance (?:carried forward|c/f|cf)|carried forward|c/f|total amount due|amount due"
    r"|total balance due|neuer saldo|endsaldo|solde (?:final|nouveau)"
    r"|saldo (?:final|actual|attuale)"
)
_TOTAL_IN = re.compile(
    r"total (?:credits?|deposits?(?: and (?:other )?credits)?|paid in|money in|receipts"
    r"|lodgements|payments in|amount credited)|(?:credits|deposits|money in|paid in) total"
    r"|summe haben|total des crédits"
)
_TOTAL_OUT = re.compile(
    r"total (?:debits?|withdrawals?(?: and (?:other )?debits)?|paid out|money out"
    r"|payments out|amount debited)|(?:debits|withdrawals|money out|paid out) total"
    r"|summe soll|total des débits"
)
_TOTAL = re.compile(r"(?:sub ?|grand )?totals?(?: amount)?|total (?:for|this) (?:period|page)")
"""A bare `Total`: which sum it is differs by bank, so it is kept out of the rows, unchecked."""
_CARD = re.compile(
    r"credit card|card statement|minimum (?:payment|amount|due)|payment due|credit limit"
    r"|card (?:number|no\b)|total amount due",
    re.IGNORECASE,
)


class Kind:
    OPENING = "opening"
    CLOSING = "closing"
    TOTAL_IN = "total in"
    TOTAL_OUT = "total out"
    TOTAL = "total"


def label_kind(text: str) -> str | None:
    """Which printed summary figure a label names, if any (the whole label must match)."""
    key = " ".join(_LABEL_NOISE.sub(" ", text.lower()).split())
    key = re.sub(r"^(?:your |the )", "", key)
    for kind, pattern in (
        (Kind.OPENING, _OPENING),
        (Kind.CLOSING, _CLOSING),
        (Kind.TOTAL_IN, _TOTAL_IN),
        (Kind.TOTAL_OUT, _TOTAL_OUT),
        (Kind.TOTAL, _TOTAL),
    ):
        if pattern.fullmatch(key):
            return kind
    return None


@dataclass(frozen=True)
class PrintedFigure:
    """A summary figure as printed, and how many rows came before it."""

    kind: str
    label: str
    figure: Figure
    position: int
    page: int
    boxed: bool = False
    """From a summary box (label over figure): it describes its statement wherever it sits."""


@dataclass
class _Row:
    page: int
    date: PartialDate | None
    text: str
    figures: list[Figure]
    bottom: float


@dataclass
class Ledger:
    """The reading kept: per page rows, the printed figures and what disagrees."""

    pages: dict[int, PageRows]
    opening: Decimal | None
    closing: Decimal | None
    card: bool
    issues: list[tuple[int | None, str]] = field(default_factory=list)
    """What disagrees: (statement row, message) for a balance, (None, message) for a figure."""
    furniture: list[Line] = field(default_factory=list)
    checks: int = 0
    statements: int = 1
    """Statements found one after the other in the file, each checked on its own."""

    @property
    def verified(self) -> bool:
        """Every balance and printed figure agrees, and there was at least one to check."""
        return not self.issues and self.checks > 0

    @property
    def figure_issues(self) -> bool:
        """A printed summary figure disagrees with the rows (whatever reading is kept)."""
        return any(row is None for row, _ in self.issues)


def _header(line: Line) -> dict[Role, tuple[float, float]] | None:
    """Column roles named on a header line (`Date Description Debit Credit Balance`): a line
    made mostly of header words, naming money and a date or description."""
    found: dict[Role, tuple[float, float]] = {}
    words = line.words
    if len(words) < 3 or sum(_DIGIT.search(w.text) is not None for w in words) * 3 > len(words):
        return None  # header words hold no figures; a row of figures is no header
    if sum(_header_token(w.text) for w in words) < 3:
        return None  # three roles need three words of header phrases
    covered = index = 0
    while index < len(words):
        for size in (3, 2, 1):
            group = words[index : index + size]
            if len(group) < size:
                continue
            role = _group_role(tuple(w.text for w in group))
            if role is not None and role not in found:
                found[role] = (group[0].x0, group[-1].x1)
                index += size
                covered += size
                break
        else:
            index += 1
    money = {Role.DEBIT, Role.CREDIT, Role.AMOUNT, Role.BALANCE} & found.keys()
    if covered * 3 < len(words) * 2 or len(found) < 3:
        return None
    if money and ({Role.DATE, Role.DESCRIPTION} & found.keys()):
        return found
    return None


_HEADER_TOKENS = frozenset(token for phrase in HEADER_ROLES for token in phrase.split())


@functools.lru_cache(maxsize=4096)
def _header_token(text: str) -> bool:
    """Whether a word, as header phrases are compared, is a word of one of them."""
    return header_key(_UNIT.sub("", text)) in _HEADER_TOKENS


@functools.lru_cache(maxsize=4096)
def _group_role(texts: tuple[str, ...]) -> Role | None:
    """The header role a run of words names (`Amount (SGD)` is `Amount`); cached, since every
    line of every page is asked and the same words come back on each page."""
    return header_role(_UNIT.sub("", " ".join(texts)).strip())


def _columns(rows: list[list[Figure]]) -> list[tuple[float, float]]:
    """Money columns: the x ranges where the figures of rows overlap."""
    spans = sorted((f.x0, f.x1) for figures in rows for f in figures)
    merged: list[list[float]] = []
    for x0, x1 in spans:
        if merged and x0 <= merged[-1][1] + ALIGN_TOLERANCE:
            merged[-1][1] = max(merged[-1][1], x1)
        else:
            merged.append([x0, x1])
    return [(a, b) for a, b in merged]


def _column_of(figure: Figure, columns: list[tuple[float, float]]) -> int | None:
    for index, (x0, x1) in enumerate(columns):
        if figure.x0 <= x1 + ALIGN_TOLERANCE and figure.x1 >= x0 - ALIGN_TOLERANCE:
            return index
    return None


@dataclass
class _Lines:
    """A statement's lines sorted into rows, printed summary figures and furniture."""

    rows: list[_Row] = field(default_factory=list)
    printed: list[PrintedFigure] = field(default_factory=list)
    furniture: list[Line] = field(default_factory=list)
    places: list[tuple[int, int]] = field(default_factory=list)
    """(rows before it, page) of each furniture line."""
    header: dict[Role, tuple[float, float]] = field(default_factory=dict)
    columns: list[tuple[float, float]] = field(default_factory=list)


def _split(line: Line, dayfirst: bool) -> tuple[PartialDate | None, str, list[Figure]]:
    words = line.words
    date, start = leading_date(words, dayfirst)
    figures, end = trailing_figures(words[start:])
    body = words[start : start + end]
    text = " ".join(w.text for w in body)
    if date is not None and body and body[0] is words[start] and start < len(words):
        first = glued_rest(body[0])
        text = " ".join([first, *(w.text for w in body[1:])]) if first != body[0].text else text
    return date, clean_text(text), figures


def _sort_lines(pages: list[tuple[int, PageText]], dayfirst: bool) -> _Lines:
    out = _Lines()
    split: list[tuple[int, Line, PartialDate | None, str, list[Figure], bool]] = []
    for number, page in pages:
        named = {index: h for index, line in enumerate(page.lines) if (h := _header(line))}
        top = min(named, default=-1)
        if named and not out.header:
            out.header = named[top]
        for index, line in enumerate(page.lines):
            if index in named:
                split.append((number, line, None, HEADER, [], True))
                continue
            date, text, figures = _split(line, dayfirst)
            split.append((number, line, date, text, figures, index > top))
    _repair_misread_dates(split, dayfirst)
    # The money columns: where the figures of dated rows inside tables line up, widened by
    # undated rows whose last figure (the balance) sits in one of them.
    candidates = [
        (d, f) for _, _, d, t, f, inside in split if inside and f and label_kind(t) is None
    ]
    spans = [f for d, f in candidates if d is not None]
    columns = _columns(spans)
    spans += [f for d, f in candidates if d is None and _column_of(f[-1], columns) is not None]
    columns = _columns(spans)
    out.columns = columns
    pending: tuple[PartialDate | None, str] | None = None
    last_date: PartialDate | None = None
    last_bottom: float | None = None
    for number, line, date, text, figures, inside in split:
        if text == HEADER:
            pending, last_bottom = None, None
            continue
        kind = label_kind(text) if text else None
        if kind is not None and figures:
            out.printed.append(PrintedFigure(kind, text, figures[-1], len(out.rows), number))
            last_bottom = None
            continue
        if not inside:
            out.furniture.append(line)
            out.places.append((len(out.rows), number))
            continue
        aligned = bool(figures) and all(_column_of(f, columns) is not None for f in figures)
        if aligned:
            if date is None and pending is not None:
                date, text = pending[0] or last_date, clean_text(f"{pending[1]} {text}")
            date = date or last_date
            if date is not None:
                out.rows.append(_Row(number, date, text, figures, line.bottom))
                last_date, last_bottom, pending = date, line.bottom, None
                continue
        if not figures and (date is not None or text):
            height = line.bottom - line.top
            near = last_bottom is not None and line.top - last_bottom <= height * 1.6
            if date is not None:
                pending, last_bottom = (date, text), line.bottom
                continue
            if near:
                if pending is not None:
                    pending = (pending[0], clean_text(f"{pending[1]} {text}"))
                elif out.rows and out.rows[-1].page == number:
                    out.rows[-1].text = clean_text(f"{out.rows[-1].text} {text}")
                last_bottom = line.bottom
                continue
        out.furniture.append(line)
        out.places.append((len(out.rows), number))
    out.printed += _boxed_figures(out.furniture, out.places)
    return out


_Split = tuple[int, Line, PartialDate | None, str, list[Figure], bool]


def _repair_misread_dates(split: list[_Split], dayfirst: bool) -> None:
    """A row whose `dd/mm` date a scan's text layer misread (`07107`) gets it back when the
    rows on either side print their dates the same way and the date falls between theirs."""
    dated = [i for i, (_, line, date, *_) in enumerate(split) if date is not None and line.words]
    for before, after in pairwise(dated):
        if not (
            _DAY_MONTH_WORD.fullmatch(split[before][1].words[0].text)
            and _DAY_MONTH_WORD.fullmatch(split[after][1].words[0].text)
        ):
            continue
        low, high = split[before][2], split[after][2]
        assert low is not None
        assert high is not None
        for index in range(before + 1, after):
            number, line, date, text, figures, inside = split[index]
            if date is not None or not figures or not inside or text == HEADER:
                continue
            first = line.words[0]
            found = misread_date(first.text, dayfirst)
            if found is None or not (
                (low.month, low.day) <= (found.month, found.day) <= (high.month, high.day)
            ):
                continue
            fixed = (
                f"{found.day:02d}/{found.month:02d}"
                if dayfirst
                else (f"{found.month:02d}/{found.day:02d}")
            )
            words = [Word(fixed, first.x0, first.x1, first.top, first.bottom), *line.words[1:]]
            line = Line(words, line.top, line.bottom)
            date, text, figures = _split(line, dayfirst)
            split[index] = (number, line, date, text, figures, inside)


def _boxed_figures(lines: list[Line], places: list[tuple[int, int]]) -> list[PrintedFigure]:
    """Summary boxes that print the label over the figure (`Previous Balance` / `S$ 3,245.60`):
    each figure below a label line pairs with the label it overlaps."""
    found: list[PrintedFigure] = []
    for (above, below), (position, page) in zip(pairwise(lines), places[1:], strict=True):
        figures, end = trailing_figures(below.words)
        if not figures or end != 0 or below.top - above.bottom > (above.bottom - above.top) * 2:
            continue
        labels = _phrases(above)
        for figure in figures:
            for x0, x1, text in labels:
                if min(x1, figure.x1) - max(x0, figure.x0) > 0 or abs(x0 - figure.x0) < 4:
                    kind = label_kind(text)
                    if kind is not None:
                        found.append(PrintedFigure(kind, text, figure, position, page, True))
                    break
    return found


def _phrases(line: Line) -> list[tuple[float, float, str]]:
    out: list[list[object]] = []
    for word in line.words:
        gap = (word.bottom - word.top) * 0.8
        if out and word.x0 - float(str(out[-1][1])) <= gap:
            out[-1][1] = word.x1
            out[-1][2] = f"{out[-1][2]} {word.text}"
        else:
            out.append([word.x0, word.x1, word.text])
    return [(float(str(a)), float(str(b)), str(c)) for a, b, c in out]


@dataclass
class _Reading:
    amounts: list[Decimal]
    balances: list[Decimal | None]
    start: Decimal | None
    issues: list[tuple[int | None, str]]
    checks: int
    starts: list[Decimal | None] = field(default_factory=list)
    """Each statement's opening, when the file holds several."""


def _balance_column(
    rows: list[_Row], columns: list[tuple[float, float]], header: dict[Role, tuple[float, float]]
) -> int | None:
    """The balance column: the one under a `Balance` header, else the rightmost when rows
    print two figures (an amount and the balance after it)."""
    if Role.BALANCE in header:
        x0, x1 = header[Role.BALANCE]
        for index, (c0, c1) in enumerate(columns):
            if min(c1, x1) - max(c0, x0) > -ALIGN_TOLERANCE * 4:
                return index
        return len(columns) - 1
    if sum(len(row.figures) >= 2 for row in rows) * 4 >= len(rows):
        return len(columns) - 1
    return None


def read_ledger(pages: list[tuple[int, PageText]], dayfirst: bool) -> Ledger | None:
    """The statement's rows and the reading the chain and printed figures agree with; None
    when no page holds dated rows with money."""
    sorted_lines = _sort_lines(pages, dayfirst)
    rows = sorted_lines.rows
    if not rows:
        return None
    columns = sorted_lines.columns
    card = any(_CARD.search(line.text) for line in sorted_lines.furniture)
    balance = _balance_column(rows, columns, sorted_lines.header)
    amount_columns = [i for i in range(len(columns)) if i != balance]
    orientations: list[dict[int, int]] = [{}]
    if len(amount_columns) >= 2:
        left, right = amount_columns[-2], amount_columns[-1]
        named = _named_out_first(sorted_lines.header, columns, left, right)
        first, second = ({left: -1, right: 1}, {left: 1, right: -1})
        orientations = [first, second] if named else [second, first]
        if card:
            orientations.reverse()
    whole = [(0, len(rows))]
    split = list(pairwise([*_statement_starts(rows, sorted_lines, dayfirst), len(rows)]))
    best: _Reading | None = None
    bounds = whole
    for candidate in [whole, split] if len(split) > 1 else [whole]:
        for orientation in orientations:
            reading = _read_each(rows, candidate, columns, balance, orientation, card, sorted_lines)
            if best is None or (len(reading.issues), -reading.checks) < (
                len(best.issues),
                -best.checks,
            ):
                best, bounds = reading, candidate
    assert best is not None
    ledger = Ledger(
        {}, best.start, None, card, best.issues, sorted_lines.furniture, best.checks, len(bounds)
    )
    running = best.start
    starts = dict(zip((start for start, _ in bounds), best.starts, strict=True))
    for index, (row, amount, bal) in enumerate(zip(rows, best.amounts, best.balances, strict=True)):
        running = starts.get(index, running)
        page = ledger.pages.setdefault(row.page, PageRows())
        page.transactions.append(
            RawTransaction(row.date or PartialDate(1, 1, None), row.text, amount, bal)
        )
        page.currencies.update(f.currency for f in row.figures if f.currency)
        running = None if running is None else running + amount
        if bal is not None:
            running = bal
    ledger.closing = running
    return ledger


def _statement_starts(rows: list[_Row], lines: _Lines, dayfirst: bool) -> list[int]:
    """Where each statement of the file may begin: the first row, and every first row of a
    page that prints, above it, an opening balance and either a closing balance or a
    statement period of its own (a bundle of statements, one after the other). The caller
    keeps the split only when its statements agree with their own figures better than the
    file read as one (a summary repeated on every page of one statement does not)."""
    starts = [0]
    for index in range(1, len(rows)):
        page = rows[index].page
        if rows[index - 1].page == page:
            continue
        kinds = {p.kind for p in lines.printed if p.position == index and p.page == page}
        if Kind.OPENING not in kinds:
            continue
        above = [
            line
            for line, place in zip(lines.furniture, lines.places, strict=True)
            if place == (index, page)
        ]
        if Kind.CLOSING in kinds or read_period(above, dayfirst) is not None:
            starts.append(index)
    return starts


def _read_each(
    rows: list[_Row],
    bounds: list[tuple[int, int]],
    columns: list[tuple[float, float]],
    balance: int | None,
    orientation: dict[int, int],
    card: bool,
    lines: _Lines,
) -> _Reading:
    """Each statement of the file read and checked on its own chain and its own printed
    figures (those printed above its first row belong to it, not to the one before)."""
    out = _Reading([], [], None, [], 0)
    for number, (start, end) in enumerate(bounds):
        own = [
            replace(p, position=p.position - start)
            for p in lines.printed
            if start <= p.position <= end
            and (p.position != start or start == 0 or p.page == rows[start].page)
            and (p.position != end or end == len(rows) or p.page != rows[end].page)
        ]
        part = _read(rows[start:end], columns, balance, orientation, card, own)
        where = (
            f"statement {number + 1} of {len(bounds)} in the file (from page {rows[start].page}): "
            if len(bounds) > 1
            else ""
        )
        out.issues += [
            (None if row is None else row + start, where + message) for row, message in part.issues
        ]
        out.amounts += part.amounts
        out.balances += part.balances
        out.checks += part.checks
        out.starts.append(part.start)
    out.start = out.starts[0]
    return out


def _named_out_first(
    header: dict[Role, tuple[float, float]],
    columns: list[tuple[float, float]],
    left: int,
    right: int,
) -> bool:
    """Whether the header puts money out left of money in (or names neither)."""
    if Role.DEBIT in header and Role.CREDIT in header:
        return header[Role.DEBIT][0] < header[Role.CREDIT][0]
    return True


def _read(
    rows: list[_Row],
    columns: list[tuple[float, float]],
    balance: int | None,
    orientation: dict[int, int],
    card: bool,
    printed: list[PrintedFigure],
) -> _Reading:
    default = -1 if card else 1
    amounts: list[Decimal] = []
    balances: list[Decimal | None] = []
    free: list[bool] = []
    for row in rows:
        value = Decimal(0)
        unmarked = True
        bal: Decimal | None = None
        for figure in row.figures:
            column = _column_of(figure, columns)
            if column is not None and column == balance:
                bal = figure.signed(card)
                continue
            if figure.mark is not Mark.NONE:
                value += figure.signed(card)
                unmarked = False
            elif column in orientation:
                value += orientation[column] * figure.value
                unmarked = False
            else:
                value += default * figure.value
        amounts.append(value)
        balances.append(bal)
        free.append(unmarked and value != 0 and not orientation)
    openings = [p for p in printed if p.kind == Kind.OPENING]
    start = _start(amounts, balances, openings, card)
    _fix_free_signs(amounts, balances, free, start)
    issues: list[tuple[int | None, str]] = []
    checks = 0
    running = start
    after: list[Decimal | None] = [start]
    for index, (amount, bal) in enumerate(zip(amounts, balances, strict=True)):
        running = None if running is None else running + amount
        if bal is not None:
            checks += 1
            if running is not None and running != bal:
                issues.append(
                    (
                        index,
                        f"balance {bal} on page {rows[index].page} does not follow from the "
                        f"previous one: expected {running} (amount {amount})",
                    )
                )
            running = bal
        after.append(running)
    if start is not None and running is not None and rows:
        checks += 1
        total = start + sum(amounts, Decimal(0))
        if total != running:
            issues.append(
                (
                    None,
                    f"opening {start} plus credits minus debits is {total}, but the closing "
                    f"balance is {running}",
                )
            )
    total_in = sum((a for a in amounts if a > 0), Decimal(0))
    total_out = sum((-a for a in amounts if a < 0), Decimal(0))
    for item in printed:
        value = item.figure.signed(card)
        if item.kind == Kind.TOTAL:
            continue
        if item.kind in (Kind.OPENING, Kind.CLOSING):
            edge = item.boxed or item.position in (0, len(rows))
            if item.kind == Kind.OPENING:
                expected = start if edge else after[item.position]
            else:
                expected = after[-1] if edge else after[item.position]
        else:
            value = item.figure.value
            expected = total_in if item.kind == Kind.TOTAL_IN else total_out
        if expected is None:
            continue
        checks += 1
        if value != expected:
            issues.append((None, f"printed {item.label!r} is {value} but the rows give {expected}"))
    return _Reading(amounts, balances, start, issues, checks)


def _start(
    amounts: list[Decimal],
    balances: list[Decimal | None],
    openings: list[PrintedFigure],
    card: bool,
) -> Decimal | None:
    """The balance before the first row: the first printed balance less the rows up to it,
    else the printed opening balance."""
    total = Decimal(0)
    for amount, bal in zip(amounts, balances, strict=True):
        total += amount
        if bal is not None:
            return bal - total
    first = next((p for p in openings if p.position == 0 or p.boxed), None)
    return first.figure.signed(card) if first else None


def _fix_free_signs(
    amounts: list[Decimal],
    balances: list[Decimal | None],
    free: list[bool],
    start: Decimal | None,
) -> None:
    """Unmarked amounts in a single amount column take the signs that carry the balance from
    one printed balance to the next (fewest changes from the default)."""
    previous = start
    group: list[int] = []
    for index, bal in enumerate(balances):
        group.append(index)
        if bal is None:
            continue
        if previous is not None:
            delta = bal - previous - sum((amounts[i] for i in group if not free[i]), Decimal(0))
            loose = [i for i in group if free[i]]
            if loose and sum(amounts[i] for i in loose) != delta and len(loose) <= MAX_FREE_SIGNS:
                _search_signs(amounts, loose, delta)
        previous, group = bal, []


def _search_signs(amounts: list[Decimal], loose: list[int], delta: Decimal) -> None:
    values = [amounts[i] for i in loose]
    best: tuple[int, ...] | None = None
    for flips in range(1, len(values) + 1):
        for combo in combinations(range(len(values)), flips):
            total = sum((-v if i in combo else v for i, v in enumerate(values)), Decimal(0))
            if total == delta:
                best = combo
                break
        if best is not None:
            break
    if best is not None:
        for i in best:
            amounts[loose[i]] = -amounts[loose[i]]
