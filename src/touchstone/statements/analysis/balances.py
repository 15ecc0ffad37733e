"""End-of-day balances of an account, every day of its statements, quiet days included."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal

from touchstone.statements.analysis.records import Line, StatementRecords

ONE_DAY = dt.timedelta(days=1)


def _opening(statement: StatementRecords) -> Decimal | None:
    """The printed opening balance, else the one the first row's running balance implies."""
    if statement.opening_balance is not None or not statement.transactions:
        return statement.opening_balance
    first = min(statement.transactions, key=lambda e: (e.transaction.date, e.transaction.row))
    t = first.transaction
    return None if t.balance is None else t.balance - t.amount


def end_of_day_balances(
    statements: Sequence[tuple[int, StatementRecords]], lines: Sequence[Line]
) -> dict[dt.date, Decimal]:
    """Each day from the account's first to its last, with the balance after its last row,
    or the day before's when it has none; days before any balance is known are left out.

    The balance is the one the statement printed after the row; a row printed without one
    (balances shown once a day) moves the last balance by its amount. A statement's opening
    balance stands from its first day.
    """
    # (day, opening before rows, position in the batch, row), then the value or the line
    events: list[tuple[dt.date, int, int, int, Decimal | Line | None]] = []
    ends: list[dt.date] = []
    for position, statement in statements:
        dates = [e.transaction.date for e in statement.transactions]
        start = statement.period_start or (min(dates) if dates else None)
        end = statement.period_end or (max(dates) if dates else None)
        if start is None or end is None:
            continue
        events.append((start, 0, position, -1, _opening(statement)))
        ends.append(end)
    events.extend((line.date, 1, line.position, line.entry.transaction.row, line) for line in lines)
    if not events:
        return {}
    events.sort(key=lambda e: e[:4])
    ends.extend(e[0] for e in events)
    balance: Decimal | None = None
    balances: dict[dt.date, Decimal] = {}
    day, last, at = events[0][0], max(ends), 0
    while day <= last:
        while at < len(events) and events[at][0] <= day:
            event = events[at][4]
            if isinstance(event, Line):
                printed = event.entry.transaction.balance
                if printed is not None:
                    balance = printed
                elif balance is not None:
                    balance += event.amount
            elif event is not None:
                balance = event
            at += 1
        if balance is not None:
            balances[day] = balance
        day += ONE_DAY
    return balances
