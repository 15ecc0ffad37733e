"""Money and dates as they sit on a statement line, whatever the bank's layout.

`parse_amount` (normalise.py) is strict: exactly two decimals, so a reference number never
passes for an amount anywhere on a page. The figures at the right end of a table row are
read more widely here (`10158.4`, `90,350 CR`, `232.161,04 H`, `- S$ 0.00`): their position
already says they are money, and the reader keeps them only where they line up with a
column of strict amounts.

A figure keeps the mark printed with it; what the mark means (a `CR` balance on a current
account is money the holder has, on a card it is money the bank owes back) is decided by
`signed`, once the kind of account is known.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from touchstone.statements.extraction.normalise import (
    CURRENCY_CODES,
    SYMBOLS,
    PartialDate,
    parse_amount,
    parse_date,
)
from touchstone.statements.extraction.pdf import Word


class Mark(StrEnum):
    """How a printed figure says which way the money went."""

    CREDIT = "credit"  # CR, H (Haben)
    DEBIT = "debit"  # DR, S (Soll)
    PLUS = "plus"  # a plus sign, leading or trailing
    MINUS = "minus"  # a minus sign, leading or trailing, or parentheses
    NONE = "none"


AMBIGUOUS_SYMBOLS = frozenset({"$"})
_SUFFIX_MARKS = {"CR": Mark.CREDIT, "DR": Mark.DEBIT, "H": Mark.CREDIT, "S": Mark.DEBIT}
_LOOSE = re.compile(
    r"(?P<int>\d{1,2}(?:,\d\d)+,\d{3}|\d{1,3}(?:(?P<sep>[,.'\u00a0 ])\d{3})+|\d+)"
    r"(?:(?P<dec>[.,])(?P<frac>\d{1,2}))?"
)
_CURRENCY_TOKEN = re.compile(r"^(?:[A-Z]{1,2}\$|[£€$¥₹₦]|RM|Rs\.?)$")
_GLUED_DATE = re.compile(r"^(\d{1,2}[/.\-]\d{1,2}(?:[/.\-]\d{2,4})?)(?=[A-Za-z])")
_SEPARATOR = "/.-"
_DIGIT = re.compile(r"\d")
_MISREAD_SEPARATOR = re.compile(r"(\d\d)[1lI|](\d\d)")
"""`07107`: a `dd/mm` date whose slash a scan's text layer (OCR) read as a `1`, `l` or `|`."""


@dataclass(frozen=True, slots=True)
class Figure:
    """A printed money figure: its size, its mark and where it sits on the line."""

    value: Decimal  # never negative: the sign lives in `mark`
    mark: Mark
    x0: float
    x1: float
    strict: bool  # two decimals, as `parse_amount` demands
    currency: str | None = None

    def signed(self, card: bool) -> Decimal:
        """In the holder's view: money into a current account is positive. A card prints what
        is owed: an unmarked or `+` figure adds to the debt, `CR` or a minus is a credit."""
        if card:
            positive = self.mark in (Mark.CREDIT, Mark.MINUS)
        else:
            positive = self.mark in (Mark.CREDIT, Mark.PLUS, Mark.NONE)
        return self.value if positive else -self.value


def _currency(symbol: str) -> str | None:
    """An ISO code, or the code of an unambiguous symbol; `$` stays `$` (see `dollar`)."""
    if symbol in AMBIGUOUS_SYMBOLS:
        return symbol
    return SYMBOLS.get(symbol, symbol if symbol in CURRENCY_CODES else None)


def dollar(currency: str, statement_currency: str | None) -> str:
    """`$` is the statement's own currency when that is a dollar, else US dollars."""
    if currency not in AMBIGUOUS_SYMBOLS:
        return currency
    if statement_currency is not None and statement_currency.endswith("D"):
        return statement_currency
    return "USD"


def read_figure(text: str, x0: float = 0.0, x1: float = 0.0) -> Figure | None:
    """One money figure with its marks, currency and sign; None for anything else."""
    text = text.strip().replace("\u2212", "-").replace("\u2013", "-")
    if not text:
        return None
    mark = Mark.NONE
    currency: str | None = None
    parts = text.split()
    while len(parts) > 1:  # marks and currencies printed apart from the number
        head, tail = parts[0], parts[-1]
        if tail.upper() in _SUFFIX_MARKS and mark is Mark.NONE:
            mark = _SUFFIX_MARKS[tail.upper()]
            parts.pop()
        elif tail in ("+", "-") and mark is Mark.NONE:
            mark = Mark.MINUS if tail == "-" else Mark.PLUS
            parts.pop()
        elif head in ("+", "-") and mark is Mark.NONE:
            mark = Mark.MINUS if head == "-" else Mark.PLUS
            parts.pop(0)
        elif _is_currency(head):
            currency = currency or _currency(head)
            parts.pop(0)
        elif _is_currency(tail):
            currency = currency or _currency(tail)
            parts.pop()
        else:
            return None
    body = parts[0]
    upper = body.upper()
    for suffix in ("CR", "DR"):
        if upper.endswith(suffix) and len(body) > 2 and mark is Mark.NONE:
            mark, body = _SUFFIX_MARKS[suffix], body[:-2]
    if body.startswith("(") and body.endswith(")"):
        body, mark = body[1:-1], Mark.MINUS
    for _ in range(2):
        if body[:1] in "+-" and len(body) > 1:
            mark = Mark.MINUS if body[0] == "-" else Mark.PLUS
            body = body[1:]
        elif body[-1:] in "+-" and len(body) > 1:
            mark = Mark.MINUS if body[-1] == "-" else Mark.PLUS
            body = body[:-1]
        symbol = next((s for s in sorted(SYMBOLS, key=len, reverse=True) if body.startswith(s)), "")
        if symbol:
            currency, body = currency or _currency(symbol), body[len(symbol) :]
        elif (prefix := re.match(r"[A-Z]{1,2}\$", body)) is not None:
            body = body[prefix.end() :]
    strict = parse_amount(body)
    if strict is not None:
        return Figure(abs(strict.value), mark, x0, x1, True, currency or strict.currency)
    match = _LOOSE.fullmatch(body)
    if match is None or match["sep"] == match["dec"]:
        return None
    if match["frac"] is None and "," not in match["int"] and match["sep"] is None:
        return None  # a bare integer is a count or a reference, never money
    integer = re.sub(r"\D", "", match["int"])
    value = Decimal(f"{integer}.{match['frac'] or '0'}")
    return Figure(value, mark, x0, x1, False, currency)


def _is_currency(text: str) -> bool:
    return bool(_CURRENCY_TOKEN.match(text)) or text in CURRENCY_CODES


def _mark_or_currency(text: str) -> bool:
    return text.upper() in _SUFFIX_MARKS or text in ("+", "-") or _is_currency(text)


def trailing_figures(words: list[Word]) -> tuple[list[Figure], int]:
    """The money figures at the right end of a line, left to right, and the index of the
    first word that belongs to them (the words before it are the date and description)."""
    figures: list[Figure] = []
    end = len(words)
    while end > 0:
        last = words[end - 1].text
        if _DIGIT.search(last) is None and not _mark_or_currency(last):
            break  # a figure's words end in its digits or in a mark or currency
        found = None
        for size in (4, 3, 2, 1):
            start = end - size
            if start < 0:
                continue
            group = words[start:end]
            if size > 1:
                number = group_number(group)
                if number is None or not all(
                    _mark_or_currency(w.text) for w in group if w is not number
                ):
                    continue
            figure = read_figure(" ".join(w.text for w in group), group[0].x0, group[-1].x1)
            if figure is not None:
                found = (figure, start)
                break
        if found is None:
            break
        figures.insert(0, found[0])
        end = found[1]
    return figures, end


def group_number(group: list[Word]) -> Word | None:
    """The one word of a figure's words that holds digits."""
    digits = [w for w in group if _DIGIT.search(w.text) is not None]
    return digits[0] if len(digits) == 1 else None


def leading_date(words: list[Word], dayfirst: bool) -> tuple[PartialDate | None, int]:
    """The date a row starts with (a second, value date beside it is skipped) and the index
    of the first description word. A serial number before the date is allowed, and a date
    glued to the description (`09/07/2026ATM`) is cut off it."""
    if not words:
        return None, 0
    split = _split_date(words, dayfirst)
    if split is not None:
        return split, _past_value_date(words, 2, dayfirst)
    index = 0
    first = words[0].text
    if (
        first.isdigit()
        and len(first) <= 4
        and len(words) > 1
        and parse_date(first, dayfirst=dayfirst) is None
    ):
        index = 1
    date = parse_date(words[index].text.rstrip(","), dayfirst=dayfirst)
    if date is None:
        glued = _GLUED_DATE.match(words[index].text)
        if glued is None:
            return None, 0
        date = parse_date(glued[1], dayfirst=dayfirst)
        if date is None:
            return None, 0
        return date, index  # the description starts inside this word; the caller trims it
    return date, _past_value_date(words, index + 1, dayfirst)


def _past_value_date(words: list[Word], index: int, dayfirst: bool) -> int:
    if index < len(words) and parse_date(words[index].text, dayfirst=dayfirst) is not None:
        index += 1
    return index


def _split_date(words: list[Word], dayfirst: bool) -> PartialDate | None:
    """A date the text layer cut in two at its separator (`21` `/07`, as OCR'd scans do):
    the two words touch (closer than the line is high) and together read as a date."""
    if len(words) < 2:
        return None
    first, second = words[0], words[1]
    if not (
        (first.text[-1:] in _SEPARATOR and second.text[:1].isdigit())
        or (first.text[-1:].isdigit() and second.text[:1] in _SEPARATOR)
    ):
        return None
    if second.x0 - first.x1 > first.bottom - first.top or read_figure(second.text) is not None:
        return None  # a number and a signed amount (`12` `-5.00`) are not a date
    return parse_date((first.text + second.text).rstrip(","), dayfirst=dayfirst)


def misread_date(text: str, dayfirst: bool) -> PartialDate | None:
    """`07107` read as `07/07`; the caller accepts it only where the rows' order allows it."""
    match = _MISREAD_SEPARATOR.fullmatch(text)
    return parse_date(f"{match[1]}/{match[2]}", dayfirst=dayfirst) if match else None


def glued_rest(word: Word) -> str:
    """What follows a date glued to the description in one word."""
    glued = _GLUED_DATE.match(word.text)
    return word.text[glued.end() :] if glued else word.text
