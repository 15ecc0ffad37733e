"""Dates and amounts as banks print them, to `datetime.date` and signed `Decimal`.

Amounts must carry exactly two decimals: that is what tells `1.234,56` from `1,234.56` without
a per-statement guess, and keeps reference numbers and years out of the amount columns.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from decimal import Decimal

MONTHS = {
    name: number
    for number, names in enumerate(
        (
            ("jan", "january", "janv", "januar", "ene", "gen"),
            ("feb", "february", "fev", "février", "februar", "febr"),
            ("mar", "march", "mars", "märz", "mär", "marz"),
            ("apr", "april", "avr", "abr", "apr."),
            ("may", "mai", "mayo", "mag"),
            ("jun", "june", "juin", "juni", "giu"),
            ("jul", "july", "juil", "juli", "lug"),
            ("aug", "august", "aout", "août", "ago"),
            ("sep", "sept", "september", "set"),
            ("oct", "october", "okt", "oktober", "ott"),
            ("nov", "november"),
            ("dec", "december", "dez", "dezember", "déc", "dic"),
        ),
        start=1,
    )
    for name in names
}
_MONTH = r"([A-Za-zÀ-ÿ]{3,9})\.?"
_DAY = r"(\d{1,2})(?:st|nd|rd|th)?"
_ISO = re.compile(r"(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})")
_NUMERIC = re.compile(r"(\d{1,2})[/.\-](\d{1,2})(?:[/.\-](\d{4}|\d{2}))?\.?")
_DAY_MONTH = re.compile(_DAY + r"[\s\-/]?" + _MONTH + r",?(?:[\s\-/]?(\d{4}|\d{2}))?")
_MONTH_DAY = re.compile(_MONTH + r"\s?" + _DAY + r"(?:,?\s(\d{4}))?")

SYMBOLS = {"£": "GBP", "€": "EUR", "$": "USD", "¥": "JPY", "₹": "INR", "₦": "NGN", "R$": "BRL"}
CURRENCY_CODES = frozenset(
    [
        "GBP",
        "EUR",
        "USD",
        "CHF",
        "JPY",
        "CNY",
        "INR",
        "AUD",
        "CAD",
        "NZD",
        "SGD",
        "HKD",
        "ZAR",
        "NGN",
        "KES",
        "GHS",
        "AED",
        "SAR",
        "SEK",
        "NOK",
        "DKK",
        "PLN",
        "CZK",
        "HUF",
        "BRL",
        "MXN",
        "TRY",
        "ILS",
        "THB",
        "MYR",
        "IDR",
        "PHP",
        "PKR",
        "BDT",
        "LKR",
        "EGP",
    ]
)
_AMOUNT = re.compile(
    r"(?P<int>\d{1,2}(?:,\d\d)+,\d{3}|\d{1,3}(?:(?P<sep>[,.'\u00a0 ])\d{3})(?:(?P=sep)\d{3})*|\d+)"
    r"(?P<dec>[.,])(?P<frac>\d{2})"
)
"""Thousands grouped by threes in any of the usual separators, or Indian lakh and crore
grouping (`12,34,567.50`)."""
_CURRENCY_AFFIX = re.compile(r"^(R\$|[£€$¥₹₦]|[A-Z]{3}(?=[\s\d(+\-]))|(\s?[A-Z]{3}|[£€$])$")


@dataclass(frozen=True, slots=True)
class PartialDate:
    """A date as printed: the year is missing on many statements (`12 Jan`)."""

    day: int
    month: int
    year: int | None


@dataclass(frozen=True, slots=True)
class Amount:
    value: Decimal  # signed by the marks printed with it (minus, brackets, DR)
    marked: bool  # an explicit sign or CR/DR was printed
    currency: str | None


def _year(text: str | None) -> int | None:
    if text is None:
        return None
    year = int(text)
    if len(text) == 2:
        year += 2000 if year < 70 else 1900
    return year


def _valid(day: int, month: int, year: int | None) -> PartialDate | None:
    try:
        dt.date(year or 2000, month, day)  # 2000 is a leap year: 29 Feb passes without a year
    except ValueError:
        return None
    return PartialDate(day, month, year)


def parse_date(text: str, *, dayfirst: bool = True) -> PartialDate | None:
    """A date in any common format, or None. `dayfirst` decides `03/04/2025` (3 April)."""
    text = text.strip()
    if not text or not text[0].isalnum():
        return None
    if match := _ISO.fullmatch(text):
        return _valid(int(match[3]), int(match[2]), int(match[1]))
    if match := _NUMERIC.fullmatch(text):
        first, second = int(match[1]), int(match[2])
        day, month = (first, second) if dayfirst else (second, first)
        return _valid(day, month, _year(match[3]))
    if match := _DAY_MONTH.fullmatch(text):
        named = MONTHS.get(match[2].lower())
        return _valid(int(match[1]), named, _year(match[3])) if named else None
    if match := _MONTH_DAY.fullmatch(text):
        named = MONTHS.get(match[1].lower())
        return _valid(int(match[2]), named, _year(match[3])) if named else None
    return None


def resolve_year(
    date: PartialDate, start: dt.date | None, end: dt.date | None, fallback_year: int
) -> dt.date:
    """The full date: a missing year is the one that puts the date inside the statement
    period (so `05 Jan` on a December-January statement lands in the later year)."""
    if date.year is not None:
        return dt.date(date.year, date.month, date.day)
    if start is not None and end is not None:
        best: dt.date | None = None
        for year in range(start.year - 1, end.year + 2):
            candidate = _safe_date(year, date.month, date.day)
            if candidate is None:
                continue
            distance = max((start - candidate).days, (candidate - end).days, 0)
            if best is None or distance < max((start - best).days, (best - end).days, 0):
                best = candidate
        if best is not None:
            return best
    return _safe_date(fallback_year, date.month, date.day) or dt.date(fallback_year, date.month, 28)


def _safe_date(year: int, month: int, day: int) -> dt.date | None:
    try:
        return dt.date(year, month, day)
    except ValueError:
        return None


def parse_amount(text: str) -> Amount | None:
    """`1,234.56`, `1.234,56`, `(123.45)`, `123.45 CR`/`DR`, `123.45-`, `-£12.00`, `12.00 EUR`."""
    text = text.strip().replace("\u2212", "-")
    if not text:
        return None
    negative = marked = False
    upper = text.upper()
    for suffix, debit in ((" DR", True), (" CR", False), ("DR", True), ("CR", False)):
        if upper.endswith(suffix) and len(text) > len(suffix):
            text, negative, marked = text[: -len(suffix)].rstrip(), debit, True
            break
    if text.startswith("(") and text.endswith(")"):
        text, negative, marked = text[1:-1].strip(), True, True
    currency: str | None = None
    for _ in range(2):
        if text[:1] in "-+" or text[-1:] in "-+":
            sign = text[0] if text[:1] in "-+" else text[-1]
            text = (text[1:] if text[:1] in "-+" else text[:-1]).strip()
            negative, marked = sign == "-", True
        affix = _CURRENCY_AFFIX.search(text)
        if affix is not None and currency is None:
            token = affix.group().strip()
            currency = SYMBOLS.get(token, token if token in CURRENCY_CODES else None)
            if currency is None:
                return None
            text = (text[: affix.start()] + text[affix.end() :]).strip()
        if not text:
            return None
    match = _AMOUNT.fullmatch(text)
    if match is None or match["sep"] == match["dec"]:
        return None
    if match["sep"] is None and "," in match["int"] and match["dec"] == ",":
        return None  # lakh grouping takes a decimal point
    integer = re.sub(r"\D", "", match["int"])
    value = Decimal(f"{integer}.{match['frac']}")
    return Amount(-value if negative else value, marked, currency)


def format_amount(
    value: Decimal, *, european: bool = False, style: str = "minus", symbol: str = ""
) -> str:
    """The inverse of `parse_amount` for one house style (minus, parens, crdr, trailing), for
    generated statements and tests."""
    text = f"{abs(value):,.2f}"
    if european:
        text = text.replace(",", " ").replace(".", ",").replace(" ", ".")
    text = symbol + text
    if value >= 0:
        return f"{text} CR" if style == "crdr" else text
    return {
        "minus": f"-{text}",
        "parens": f"({text})",
        "crdr": f"{text} DR",
        "trailing": f"{text}-",
    }[style]


def clean_text(text: str) -> str:
    return " ".join(text.split())
