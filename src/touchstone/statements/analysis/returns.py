"""Bounced and returned items, and the charges they caused, found by their wording.

A row is a return when it says so (`vocabulary.RETURNED`), or says "return" beside an
instrument ("ECS RETURN", "CHQ RTN"), or the rules put it in the `returned` category. A
debit that also names a charge is the charge, not the item. Each charge debit (charge
wording, or the `fees_charges` category) goes to the nearest return of its account within
`charge_days`; a return charge with no return near it stands for a return the statement
printed only as its charge.
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain

from touchstone.statements.analysis import vocabulary
from touchstone.statements.analysis.records import (
    Line,
    ReturnDirection,
    ReturnedItem,
    ReturnKind,
)
from touchstone.statements.analysis.wording import Phrases, words
from touchstone.statements.categorise.categories import FEES_CHARGES, RETURNED

_RETURNED = Phrases(chain.from_iterable(vocabulary.RETURNED.values()))
_RETURN_WORDS = Phrases(vocabulary.RETURN_WORDS)
_CHEQUES = Phrases(vocabulary.CHEQUES)
_MANDATES = Phrases(vocabulary.MANDATES)
_INWARD = Phrases(vocabulary.INWARD)
_OUTWARD = Phrases(vocabulary.OUTWARD)
_CHARGES = Phrases(vocabulary.CHARGES)


@dataclass(frozen=True, slots=True)
class _Wording:
    returned: bool
    charge: bool
    kind: ReturnKind
    inward: bool
    outward: bool


@functools.lru_cache(maxsize=16384)
def _wording(description: str) -> _Wording:
    """What a description says, worked out once: a row is asked several times."""
    text = words(description)
    cheque, mandate = _CHEQUES.found_in(text), _MANDATES.found_in(text)
    return _Wording(
        returned=_RETURNED.found_in(text) or (_RETURN_WORDS.found_in(text) and (cheque or mandate)),
        charge=_CHARGES.found_in(text),
        kind=ReturnKind.CHEQUE if cheque else ReturnKind.MANDATE if mandate else ReturnKind.OTHER,
        inward=_INWARD.found_in(text),
        outward=_OUTWARD.found_in(text),
    )


def _of(line: Line) -> _Wording:
    return _wording(line.entry.transaction.description)


def says_returned(line: Line) -> bool:
    return line.entry.category == RETURNED or _of(line).returned


def _is_charge(line: Line) -> bool:
    return line.amount < 0 and (line.entry.category == FEES_CHARGES or _of(line).charge)


def _direction(line: Line, charge_only: bool) -> ReturnDirection:
    """From the wording; else a returned debit takes back money paid in (outward) and a
    returned credit gives back money paid out (inward); a lone charge is the customer's."""
    wording = _of(line)
    if wording.inward:
        return ReturnDirection.INWARD
    if wording.outward:
        return ReturnDirection.OUTWARD
    if charge_only or line.amount > 0:
        return ReturnDirection.INWARD
    return ReturnDirection.OUTWARD


def find_returns(lines: Sequence[Line], charge_days: int) -> list[ReturnedItem]:
    """The account's returned items in date order, each with the charges assigned to it."""
    returns: list[Line] = []
    charges: list[Line] = []
    return_charges: set[tuple[str, int]] = set()
    for line in lines:
        if _is_charge(line):
            charges.append(line)
            if says_returned(line):
                return_charges.add(line.key)
        elif says_returned(line):
            returns.append(line)
    assigned: dict[int, list[Line]] = {i: [] for i in range(len(returns))}
    alone: dict[dt.date, list[Line]] = {}
    dates = [r.date for r in returns]  # in date order, as the lines
    window = dt.timedelta(days=charge_days)
    for charge in charges:
        first = bisect.bisect_left(dates, charge.date - window)
        last = bisect.bisect_right(dates, charge.date + window)
        near = [
            (abs((charge.date - dates[i]).days), charge.date < dates[i], i)
            for i in range(first, last)
        ]
        if near:
            assigned[min(near)[2]].append(charge)
        elif charge.key in return_charges:
            alone.setdefault(charge.date, []).append(charge)
    found = [
        ReturnedItem(
            date=r.date,
            kind=_of(r).kind,
            direction=_direction(r, charge_only=False),
            returned=r.item,
            charges=tuple(c.item for c in assigned[i]),
        )
        for i, r in enumerate(returns)
    ]
    found.extend(
        ReturnedItem(
            date=group[0].date,
            kind=_of(group[0]).kind,
            direction=_direction(group[0], charge_only=True),
            returned=None,
            charges=tuple(c.item for c in group),
        )
        for group in alone.values()
    )
    found.sort(key=lambda r: (r.date, r.returned is None))
    return found
