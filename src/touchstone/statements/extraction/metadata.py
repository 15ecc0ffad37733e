"""Who, which account, which bank, which period, which currency: read from the text above the
table on the first page. The account number is masked here, so the full number never leaves
the extraction."""

from __future__ import annotations

import datetime as dt
import re

from touchstone.statements.domain import StatementMeta, mask_account_number
from touchstone.statements.extraction.layout import Line
from touchstone.statements.extraction.normalise import (
    CURRENCY_CODES,
    SYMBOLS,
    clean_text,
    parse_date,
)

_BANK = re.compile(
    r"\b(bank|banque|banco|bancorp|sparkasse|credit union|building society|savings)\b", re.I
)
_HOLDER = re.compile(
    r"\b(?:account\s+holder|account\s+name|customer\s+name|kontoinhaber|titulaire|name)\s*[:\-]\s*(.+)",
    re.I,
)
_ACCOUNT = re.compile(
    r"\b(?:account\s*(?:number|no\.?|#)|a/c\s*(?:no\.?)?|acct\.?\s*(?:no\.?)?|kontonummer|iban)"
    r"\s*[:\-]?\s*([A-Z]{2}\d{2}[A-Z0-9 ]{8,32}|\d[\d \-*xX]{2,24}\d)",
    re.I,
)
_OTHER_LABEL = re.compile(
    r"^(?:account|a/c|acct|currency|iban|bic|swift|ifsc|micr|branch|sort|customer|client|cif"
    r"|address|statement|period|date|page|phone|tel|email|e-mail|pan|gstin|nominee|type|no)\b",
    re.I,
)
_LONG_NUMBER = re.compile(r"\d(?:[\d \-]{4,}\d)")
_PERIOD = re.compile(r"\b(period|from|zeitraum|période|periodo)\b", re.I)
_PERIOD_SPLIT = re.compile(r"\s+(?:to|until|through|bis|au|al|-|\u2013)\s+", re.I)
_DECLARED_CURRENCY = re.compile(r"\b(?:currency|währung|devise|moneda)\b\W*([A-Z]{3})\b", re.I)


def _date_at(words: list[str], *, end: bool, dayfirst: bool) -> dt.date | None:
    for size in (3, 2, 1):
        chunk = words[-size:] if end else words[:size]
        parsed = parse_date(" ".join(chunk).rstrip(",."), dayfirst=dayfirst)
        if parsed is not None and parsed.year is not None:
            return dt.date(parsed.year, parsed.month, parsed.day)
    return None


def read_period(lines: list[Line], dayfirst: bool) -> tuple[dt.date, dt.date] | None:
    """`Statement period: 01 Dec 2025 to 31 Jan 2026` and the like."""
    for line in lines:
        text = line.text
        if not _PERIOD.search(text):
            continue
        parts = _PERIOD_SPLIT.split(text, maxsplit=1)
        if len(parts) != 2:
            continue
        start = _date_at(parts[0].split(), end=True, dayfirst=dayfirst)
        end = _date_at(parts[1].split(), end=False, dayfirst=dayfirst)
        if start and end and start <= end:
            return start, end
    return None


def latest_date(lines: list[Line], dayfirst: bool) -> dt.date | None:
    """The latest full date printed (a statement date, when no period is given)."""
    found: list[dt.date] = []
    for line in lines:
        for word in line.words:
            parsed = parse_date(word.text.rstrip(",."), dayfirst=dayfirst)
            if parsed is not None and parsed.year is not None:
                found.append(dt.date(parsed.year, parsed.month, parsed.day))
    return max(found, default=None)


def read_metadata(preamble: list[Line], dayfirst: bool) -> StatementMeta:
    """What the lines above the first page's table say about the statement."""
    meta = StatementMeta()
    for line in preamble:
        text = clean_text(line.text)
        if meta.account_number_masked is None and (found := _ACCOUNT.search(text)):
            meta.account_number_masked = mask_account_number(found[1])
        if meta.holder_name is None and (found := _HOLDER.search(text)):
            meta.holder_name = name_only(found[1])
        if meta.bank_name is None and _BANK.search(text) and len(text.split()) <= 8:
            meta.bank_name = without_numbers(text)
        if meta.currency is None and (found := _DECLARED_CURRENCY.search(text)):
            code = found[1].upper()
            meta.currency = code if code in CURRENCY_CODES else None
    if meta.bank_name is None and preamble:
        tallest = max(preamble, key=lambda line: line.bottom - line.top)
        if len(tallest.words) <= 6 and any(c.isalpha() for c in tallest.text):
            meta.bank_name = without_numbers(clean_text(tallest.text))
    if meta.currency is None:
        meta.currency = _currency_in(" ".join(line.text for line in preamble))
    if period := read_period(preamble, dayfirst):
        meta.period_start, meta.period_end = period
    return meta


def name_only(text: str) -> str | None:
    """A holder's name and nothing after it: the text stops at the next label (`Account No:`,
    `Currency:`), at anything with a digit, or at a word ending in a colon."""
    kept: list[str] = []
    for word in text.split():
        if any(c.isdigit() for c in word) or _OTHER_LABEL.match(word) or word.startswith(":"):
            break
        if word.endswith(":"):
            break
        kept.append(word)
    return " ".join(kept).strip(" ,;-") or None


def without_numbers(text: str) -> str:
    """Long digit runs (an account or card number printed beside a name) masked."""
    return _LONG_NUMBER.sub(lambda m: mask_account_number(m.group()), text)


def _currency_in(text: str) -> str | None:
    codes: list[str] = re.findall(r"\b[A-Z]{3}\b", text)
    known = [code for code in codes if code in CURRENCY_CODES]
    if known:
        return known[0]
    return next((code for symbol, code in SYMBOLS.items() if symbol in text), None)
