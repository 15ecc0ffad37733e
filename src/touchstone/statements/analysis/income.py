"""Salary coming in and loan repayments going out, found by rhythm and by wording.

Both start from `categorise.find_recurring`: one counterparty, similar amounts, a regular
interval. Salary is a monthly credit no rule put elsewhere (or one a rule called salary);
a repayment is a recurring debit to a lender, or a row a rule called a loan or EMI.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections.abc import Sequence
from decimal import Decimal
from itertools import chain

from touchstone.statements.analysis import vocabulary
from touchstone.statements.analysis.records import Income, Line, Obligation, money, ratio
from touchstone.statements.analysis.wording import Phrases, words
from touchstone.statements.categorise import find_recurring
from touchstone.statements.categorise.categories import (
    BILL_PAYMENT,
    LOAN_EMI,
    SALARY,
    TRANSFER,
    UNCATEGORISED,
)

MONTHLY = "monthly"
_MAY_BE_SALARY = frozenset({SALARY, UNCATEGORISED, TRANSFER})
"""A monthly credit in another category (interest, rent received, a refund) is no salary."""
_MAY_BE_REPAYMENT = frozenset({LOAN_EMI, UNCATEGORISED, TRANSFER, BILL_PAYMENT})
"""A recurring debit in another category (insurance, an investment, rent) repays no loan."""
_LENDERS = Phrases({"lender": chain(vocabulary.LENDERS, vocabulary.MANDATES)})


def find_salary(credits: Sequence[Line]) -> tuple[list[Line], bool]:
    """The salary credits among `credits`, and whether they are regular: a monthly run of
    at least three, within 10% of each other, from one payer."""
    line_of = {id(line.entry): line for line in credits}
    salary = {line.key: line for line in credits if line.entry.category == SALARY}
    regular = False
    for group in find_recurring(line.entry for line in credits):
        if group.interval != MONTHLY or not {m.category for m in group.members} <= _MAY_BE_SALARY:
            continue
        regular = True
        salary.update((line.key, line) for line in (line_of[id(m)] for m in group.members))
    return sorted(salary.values(), key=_order), regular


def income_of(salary: Sequence[Line], monthly: dict[dt.date, Decimal], regular: bool) -> Income:
    """Who pays the salary (the payer of most of it), and how steady it is month to month:
    the population standard deviation of the monthly totals over their mean."""
    paid: dict[str, Decimal] = {}
    for line in salary:
        if line.entry.counterparty:
            paid[line.entry.counterparty] = (
                paid.get(line.entry.counterparty, Decimal(0)) + line.amount
            )
    totals = [v for v in monthly.values() if v > 0]
    employer = min(paid, key=lambda name: (-paid[name], name)) if paid else None
    average = money(sum(totals, Decimal(0)) / len(totals)) if totals else None
    variation = None
    if len(totals) >= 2:
        variation = ratio(statistics.pstdev(totals), sum(totals, Decimal(0)) / len(totals))
    return Income(
        employer=employer,
        credits=tuple(line.item for line in salary),
        months=len(totals),
        average_monthly=average,
        regular=regular,
        variation=variation,
    )


def find_obligations(debits: Sequence[Line]) -> tuple[list[Obligation], set[tuple[str, int]]]:
    """Loan repayments among `debits`: recurring debits to a payee whose name or wording
    says lender (or a mandate: NACH, ECS, direct debit), and rows a rule called a loan or
    EMI, grouped by payee. Also the keys of the rows they hold."""
    line_of = {id(line.entry): line for line in debits}
    found: list[Obligation] = []
    taken: set[tuple[str, int]] = set()
    for group in find_recurring(line.entry for line in debits):
        categories = {m.category for m in group.members}
        if not categories <= _MAY_BE_REPAYMENT:
            continue
        named = any(
            _LENDERS.found_in(words(f"{m.counterparty or ''} {m.transaction.description}"))
            for m in group.members
        )
        if LOAN_EMI not in categories and not named:
            continue
        lines = [line_of[id(m)] for m in group.members]
        taken.update(line.key for line in lines)
        found.append(
            Obligation(
                group.counterparty,
                group.interval,
                group.typical_amount,
                tuple(line.item for line in lines),
            )
        )
    lone: dict[str, list[Line]] = {}
    for line in debits:
        if line.entry.category == LOAN_EMI and line.key not in taken:
            payee = line.entry.counterparty or line.entry.transaction.description
            lone.setdefault(payee, []).append(line)
    for payee, lines in lone.items():
        taken.update(line.key for line in lines)
        typical = statistics.median(-line.amount for line in lines)
        found.append(Obligation(payee, None, typical, tuple(line.item for line in lines)))
    found.sort(key=lambda o: (o.items[0].date, o.lender))
    return found, taken


def _order(line: Line) -> tuple[object, ...]:
    return line.date, line.position, line.entry.transaction.row
