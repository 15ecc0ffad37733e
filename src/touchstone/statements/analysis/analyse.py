"""The analysis of a batch: each account's months, then what runs across accounts."""

from __future__ import annotations

import datetime as dt
import statistics
from collections.abc import Sequence
from decimal import Decimal

from touchstone.statements.analysis.balances import end_of_day_balances
from touchstone.statements.analysis.income import find_obligations, find_salary, income_of
from touchstone.statements.analysis.records import (
    AccountAnalysis,
    BatchAnalysis,
    Line,
    Month,
    OwnTransfer,
    ReturnDirection,
    Settings,
    StatementRecords,
    money,
    ratio,
)
from touchstone.statements.analysis.returns import find_returns, read_wording, says_returned
from touchstone.statements.analysis.transfers import match_own_transfers
from touchstone.statements.categorise.categories import CASH_DEPOSIT, CASH_WITHDRAWAL
from touchstone.statements.domain import Transaction

DEFAULT_SETTINGS = Settings()


def month_of(day: dt.date) -> dt.date:
    return day.replace(day=1)


def analyse(
    statements: Sequence[StatementRecords], settings: Settings = DEFAULT_SETTINGS
) -> BatchAnalysis:
    """Every account of the batch (statements sharing `account`, in batch order) and the
    transfers between them. A statement whose rows repeat an earlier one of its account
    exactly (the same file uploaded twice) counts once."""
    accounts: dict[str, list[tuple[int, StatementRecords]]] = {}
    lines: dict[str, list[Line]] = {}
    seen: set[tuple[str, tuple[Transaction, ...]]] = set()
    for position, statement in enumerate(statements):
        rows = (statement.account, tuple(e.transaction for e in statement.transactions))
        if rows[1] and rows in seen:
            continue
        seen.add(rows)
        accounts.setdefault(statement.account, []).append((position, statement))
        lines.setdefault(statement.account, []).extend(
            Line(
                statement.name,
                position,
                statement.account,
                entry,
                read_wording(entry.transaction.description),
            )
            for entry in statement.transactions
        )
    for account_lines in lines.values():
        account_lines.sort(key=lambda line: (line.date, line.position, line.entry.transaction.row))
    transfers = match_own_transfers(
        [line for account_lines in lines.values() for line in account_lines],
        settings.transfer_days,
    )
    return BatchAnalysis(
        accounts=[
            _account(name, held, lines[name], transfers, settings)
            for name, held in accounts.items()
        ],
        own_transfers=transfers,
    )


def _account(
    name: str,
    statements: list[tuple[int, StatementRecords]],
    lines: list[Line],
    transfers: Sequence[OwnTransfer],
    settings: Settings,
) -> AccountAnalysis:
    own_in = {(t.credit.statement, t.credit.row): t for t in transfers if t.to_account == name}
    own_out = {(t.debit.statement, t.debit.row): t for t in transfers if t.from_account == name}
    credits = [line for line in lines if line.amount > 0]
    income_credits = [c for c in credits if c.key not in own_in and not says_returned(c)]
    salary, regular = find_salary(income_credits)
    salary_keys = {line.key for line in salary}
    obligations, repayments = find_obligations(
        [line for line in lines if line.amount < 0 and line.key not in own_out]
    )
    returned = find_returns(lines, settings.charge_days)
    median = statistics.median(line.amount for line in credits) if credits else None
    unexplained = [line for line in income_credits if line.key not in salary_keys]
    large = [
        line
        for line in unexplained
        if median is not None and line.amount > settings.large_credit_multiple * median
    ]
    unit = settings.round_figure
    round_figures = [line for line in unexplained if line.amount >= unit and not line.amount % unit]
    balances = end_of_day_balances(statements, lines)

    months: dict[dt.date, Month] = {}

    def month(day: dt.date) -> Month:
        key = month_of(day)
        if key not in months:
            months[key] = Month(key)
        return months[key]

    summed: dict[dt.date, Decimal] = {}
    for day, balance in balances.items():
        m = month(day)
        m.days += 1
        summed[m.month] = summed.get(m.month, Decimal(0)) + balance
        lowest = m.minimum_balance
        m.minimum_balance = balance if lowest is None else min(lowest, balance)
        m.negative_days += balance < 0
    for line in lines:
        m = month(line.date)
        if line.amount > 0:
            m.credits += line.amount
            if line.entry.category == CASH_DEPOSIT:
                m.cash_deposits += line.amount
        else:
            m.debits -= line.amount
            if line.entry.category == CASH_WITHDRAWAL:
                m.cash_withdrawals -= line.amount
        if line.key in salary_keys:
            m.salary += line.amount
        if line.key in repayments:
            m.obligations -= line.amount
        if line.key in own_in:
            m.own_transfers_in += line.amount
        if line.key in own_out:
            m.own_transfers_out -= line.amount
    for line in large:
        month(line.date).large_credits += 1
    for line in round_figures:
        month(line.date).round_credits += 1
    for item in returned:
        m = month(item.date)
        if item.direction is ReturnDirection.INWARD:
            m.returned_inward += 1
        else:
            m.returned_outward += 1
        for charge in item.charges:
            month(charge.date).return_charges -= charge.amount

    ordered = [months[key] for key in sorted(months)]
    previous: Month | None = None
    for m in ordered:
        if m.days:
            m.average_balance = money(summed[m.month] / m.days)
        m.foir = ratio(m.obligations, m.salary)
        m.cash_deposit_share = ratio(m.cash_deposits, m.credits)
        m.cash_withdrawal_share = ratio(m.cash_withdrawals, m.debits)
        if previous is not None and previous.month == month_of(m.month - dt.timedelta(days=1)):
            m.salary_change = ratio(m.salary - previous.salary, previous.salary)
        previous = m

    total = {
        field: sum((getattr(m, field) for m in ordered), Decimal(0))
        for field in ("credits", "debits", "salary", "obligations")
    }
    cash_in = sum((m.cash_deposits for m in ordered), Decimal(0))
    cash_out = sum((m.cash_withdrawals for m in ordered), Decimal(0))
    days = sorted(balances) or sorted(line.date for line in lines)
    return AccountAnalysis(
        account=name,
        currency=next((s.currency for _, s in statements if s.currency), None),
        statements=tuple(s.name for _, s in statements),
        first_day=days[0] if days else None,
        last_day=days[-1] if days else None,
        months=ordered,
        income=income_of(salary, {m.month: m.salary for m in ordered}, regular),
        obligations=tuple(obligations),
        foir=ratio(total["obligations"], total["salary"]),
        returned=tuple(returned),
        large_credits=tuple(line.item for line in large),
        round_credits=tuple(line.item for line in round_figures),
        median_credit=None if median is None else money(median),
        cash_deposit_share=ratio(cash_in, total["credits"]),
        cash_withdrawal_share=ratio(cash_out, total["debits"]),
        negative_days=tuple(day for day, balance in balances.items() if balance < 0),
    )
