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
from collections.abc import Sequence
from itertools import chain

from touchstone.statements.analysis import vocabulary
from touchstone.statements.analysis.records import (
    Line,
    ReturnDirection,
    ReturnedItem,
    ReturnKind,
    Wording,
)
from touchstone.statements.analysis.wording import Phrases, words
from touchstone.statements.categorise.categories import FEES_CHARGES, RETURNED

_PHRASES = Phrases(
    {
        "returned": chain.from_iterable(vocabulary.RETURNED.values()),
        "return word": vocabulary.RETURN_WORDS,
        "cheque": vocabulary.CHEQUES,
        "mandate": vocabulary.MANDATES,
        "inward": vocabulary.INWARD,
        "outward": vocabulary.OUTWARD,
        "charge": vocabulary.CHARGES,
    }
)


def read_wording(description: str) -> Wording:
    found = _PHRASES.found_in(words(description))
    cheque, mandate = "cheque" in found, "mandate" in found
    return Wording(
        returned="returned" in found or ("return word" in found and (cheque or mandate)),
        charge="charge" in found,
        kind=ReturnKind.CHEQUE if cheque else ReturnKind.MANDATE if mandate else ReturnKind.OTHER,
        inward="inward" in found,
        outward="outward" in found,
    )


def says_returned(line: Line) -> bool:
    return line.entry.category == RETURNED or line.wording.returned


def _is_charge(line: Line) -> bool:
    return line.amount < 0 and (line.entry.category == FEES_CHARGES or line.wording.charge)


def _direction(line: Line, charge_only: bool) -> ReturnDirection:
    """From the wording; else a returned debit takes back money paid in (outward) and a
    returned credit gives back money paid out (inward); a lone charge is the customer's."""
    wording = line.wording
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
            kind=r.wording.kind,
            direction=_direction(r, charge_only=False),
            returned=r.item,
            charges=tuple(c.item for c in assigned[i]),
        )
        for i, r in enumerate(returns)
    ]
    found.extend(
        ReturnedItem(
            date=group[0].date,
            kind=group[0].wording.kind,
            direction=_direction(group[0], charge_only=True),
            returned=None,
            charges=tuple(c.item for c in group),
        )
        for group in alone.values()
    )
    found.sort(key=lambda r: (r.date, r.returned is None))
    return found
