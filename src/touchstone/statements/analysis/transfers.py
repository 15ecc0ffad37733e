"""Money the customer moved between their own accounts within the batch."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from touchstone.statements.analysis.records import Line, OwnTransfer
from touchstone.statements.analysis.returns import says_returned
from touchstone.statements.categorise.categories import (
    CASH_DEPOSIT,
    CASH_WITHDRAWAL,
    FEES_CHARGES,
    INTEREST,
)

_NEVER = frozenset({CASH_DEPOSIT, CASH_WITHDRAWAL, FEES_CHARGES, INTEREST})
"""Cash out of one account and into another, a fee, interest: same sums, no transfer."""


def _candidate(line: Line) -> bool:
    return line.entry.category not in _NEVER and not says_returned(line)


def match_own_transfers(lines: Sequence[Line], days: int) -> list[OwnTransfer]:
    """Each debit of one account matched with a credit of the same amount on another
    account of the batch, at most `days` apart: the nearest in time, the earliest on a tie;
    a credit is matched once."""
    credits: dict[Decimal, list[Line]] = {}
    for line in lines:
        if line.amount > 0 and _candidate(line):
            credits.setdefault(line.amount, []).append(line)
    used: set[tuple[str, int]] = set()
    found: list[OwnTransfer] = []
    debits = sorted(
        (line for line in lines if line.amount < 0 and _candidate(line)),
        key=lambda line: (line.date, line.position, line.entry.transaction.row),
    )
    for debit in debits:
        options = [
            credit
            for credit in credits.get(-debit.amount, ())
            if credit.account != debit.account
            and credit.key not in used
            and abs((credit.date - debit.date).days) <= days
        ]
        if not options:
            continue
        credit = min(
            options,
            key=lambda c: (abs((c.date - debit.date).days), c.date, c.position, c.key[1]),
        )
        used.add(credit.key)
        found.append(
            OwnTransfer(-debit.amount, debit.item, credit.item, debit.account, credit.account)
        )
    return found
