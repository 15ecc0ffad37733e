"""From words to text lines, tokens and phrases: what every strategy shares.

Tokens are words with the pieces banks print apart glued back: `123.45 CR`, `£ 12.00`,
`12 Jan 2025`. Phrases are tokens separated by no more than a normal space; a table's columns
are separated by more.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from itertools import pairwise

from touchstone.statements.extraction.normalise import MONTHS, parse_amount, parse_date
from touchstone.statements.extraction.pdf import Word

SUFFIXES = frozenset({"CR", "DR", "Cr", "Dr", "cr", "dr"})
PREFIXES = frozenset({"£", "€", "$", "¥", "₹"})


class Role(StrEnum):
    DATE = "date"
    DESCRIPTION = "description"
    DEBIT = "debit"
    CREDIT = "credit"
    AMOUNT = "amount"
    BALANCE = "balance"
    OTHER = "other"


MONEY_ROLES = frozenset({Role.DEBIT, Role.CREDIT, Role.AMOUNT, Role.BALANCE})

_HEADER_WORDS: dict[Role, tuple[str, ...]] = {
    Role.DATE: (
        "date",
        "txn date",
        "transaction date",
        "posting date",
        "post date",
        "booking date",
        "datum",
        "buchungstag",
        "fecha",
        "data",
        "date opération",
    ),
    Role.DESCRIPTION: (
        "description",
        "details",
        "transaction details",
        "particulars",
        "narrative",
        "narration",
        "transaction",
        "transactions",
        "memo",
        "payee",
        "beschreibung",
        "verwendungszweck",
        "buchungstext",
        "libellé",
        "libelle",
        "concepto",
        "descrizione",
    ),
    Role.DEBIT: (
        "debit",
        "debits",
        "paid out",
        "withdrawal",
        "withdrawals",
        "money out",
        "out",
        "dr",
        "payments",
        "soll",
        "débit",
        "cargo",
        "cargos",
        "uscite",
    ),
    Role.CREDIT: (
        "credit",
        "credits",
        "paid in",
        "deposit",
        "deposits",
        "money in",
        "in",
        "cr",
        "receipts",
        "haben",
        "crédit",
        "abono",
        "abonos",
        "entrate",
    ),
    Role.AMOUNT: ("amount", "betrag", "umsatz", "montant", "importe", "importo"),
    Role.BALANCE: (
        "balance",
        "running balance",
        "saldo",
        "kontostand",
        "solde",
        "balance (gbp)",
    ),
}
HEADER_ROLES = {phrase: role for role, phrases in _HEADER_WORDS.items() for phrase in phrases}
_NOT_LETTERS = re.compile(r"[^\w/ ]+")


@dataclass(frozen=True, slots=True)
class Line:
    words: list[Word]
    top: float
    bottom: float

    @property
    def middle(self) -> float:
        return (self.top + self.bottom) / 2

    @property
    def text(self) -> str:
        return " ".join(word.text for word in self.words)


def group_lines(words: list[Word]) -> list[Line]:
    """Words into lines by vertical overlap, each line's words left to right."""
    lines: list[Line] = []
    current: list[Word] = []
    top = bottom = 0.0
    for word in sorted(words, key=lambda w: w.middle):
        if current and top <= word.middle <= bottom:
            current.append(word)
            continue
        if current:
            lines.append(_line(current))
        current, top, bottom = [word], word.top, word.bottom
    if current:
        lines.append(_line(current))
    return lines


def _line(words: list[Word]) -> Line:
    words.sort(key=lambda w: w.x0)
    return Line(_tokens(words), min(w.top for w in words), max(w.bottom for w in words))


def _join(first: Word, last: Word, text: str) -> Word:
    return Word(text, first.x0, last.x1, min(first.top, last.top), max(first.bottom, last.bottom))


def _tokens(words: list[Word]) -> list[Word]:
    """Glue a CR/DR suffix or a detached currency symbol to its amount, and a date printed as
    several words (`12 Jan 2025`) into one token."""
    out: list[Word] = []
    index = 0
    while index < len(words):
        word = words[index]
        near = _space(word)
        merged = False
        for size in (3, 2) if _may_start_date(word.text) else ():
            group = words[index : index + size]
            if len(group) == size and all(b.x0 - a.x1 <= near for a, b in pairwise(group)):
                text = " ".join(w.text for w in group)
                if parse_date(text) is not None and parse_date(group[0].text) is None:
                    out.append(_join(group[0], group[-1], text))
                    index += size
                    merged = True
                    break
        if merged:
            continue
        if out and (word.text in SUFFIXES or _is_code(word.text)) and word.x0 - out[-1].x1 <= near:
            joined = f"{out[-1].text} {word.text}"
            if parse_amount(joined) is not None and parse_amount(out[-1].text) is not None:
                out[-1] = _join(out[-1], word, joined)
                index += 1
                continue
        if out and out[-1].text in PREFIXES and word.x0 - out[-1].x1 <= near:
            out[-1] = _join(out[-1], word, out[-1].text + word.text)
            index += 1
            continue
        out.append(word)
        index += 1
    return out


def _may_start_date(text: str) -> bool:
    """Cheap pre-check before trying to read a date out of several words."""
    return (text[:1].isdigit() and len(text) <= 4) or text[:3].lower() in MONTHS


def _is_code(text: str) -> bool:
    return len(text) == 3 and text.isupper() and text.isalpha()


def _space(word: Word) -> float:
    """The widest gap still read as a space inside a phrase: about half the font height."""
    return (word.bottom - word.top) * 0.55


def phrases(line: Line) -> list[Word]:
    """Tokens separated by a normal space, joined: a table cell's text on this line."""
    out: list[Word] = []
    for word in line.words:
        if out and word.x0 - out[-1].x1 <= _space(word) * 1.2:
            out[-1] = _join(out[-1], word, f"{out[-1].text} {word.text}")
        else:
            out.append(word)
    return out


def header_key(text: str) -> str:
    """A header phrase as `HEADER_ROLES` spells it: lower case, without punctuation."""
    return _NOT_LETTERS.sub("", text.lower()).strip()


def header_role(text: str) -> Role | None:
    return HEADER_ROLES.get(header_key(text))


def find_header(lines: list[Line]) -> tuple[int, list[tuple[Word, Role]]] | None:
    """The first line that names at least a date or description and a money column."""
    for index, line in enumerate(lines):
        named = [(p, role) for p in phrases(line) if (role := header_role(p.text)) is not None]
        roles = {role for _, role in named}
        if len(named) >= 3 and roles & MONEY_ROLES and roles & {Role.DATE, Role.DESCRIPTION}:
            return index, named
    return None
