"""The first sheets: the underwriting analysis (`statements.analysis`), as a lender reads a
batch: each account's months, each account in one line, and the rows behind the figures."""

from __future__ import annotations

from typing import Any

from touchstone.statements.analysis import AccountAnalysis, BatchAnalysis
from touchstone.statements.workbook.writer import Column, Writer

MONTH_COLUMNS = (
    Column("Account", 26),
    Column("Currency", 9),
    Column("Month", 10, "month"),
    Column("Days", 6, "int"),
    Column("Average balance", 15, "money"),
    Column("Minimum balance", 15, "money"),
    Column("Negative days", 9, "int"),
    Column("Credits", 15, "money"),
    Column("Debits", 15, "money"),
    Column("Salary", 14, "money"),
    Column("Salary change", 9, "percent"),
    Column("EMI and loans", 14, "money"),
    Column("FOIR", 8, "percent"),
    Column("Cash in", 14, "money"),
    Column("Cash in share", 9, "percent"),
    Column("Cash out", 14, "money"),
    Column("Cash out share", 9, "percent"),
    Column("Returned inward", 9, "int"),
    Column("Returned outward", 9, "int"),
    Column("Return charges", 12, "money"),
    Column("Large credits", 8, "int"),
    Column("Round credits", 8, "int"),
    Column("Own transfers in", 14, "money"),
    Column("Own transfers out", 14, "money"),
)
ACCOUNT_COLUMNS = (
    Column("Account", 26),
    Column("Currency", 9),
    Column("Statements", 30),
    Column("First day", 12, "date"),
    Column("Last day", 12, "date"),
    Column("Employer", 24),
    Column("Salary months", 8, "int"),
    Column("Average salary", 14, "money"),
    Column("Salary regular", 9, "bool"),
    Column("Salary variation", 9, "percent"),
    Column("Lenders", 8, "int"),
    Column("EMI and loans", 14, "money"),
    Column("FOIR", 8, "percent"),
    Column("Returned items", 9, "int"),
    Column("Return charges", 12, "money"),
    Column("Median credit", 14, "money"),
    Column("Large credits", 8, "int"),
    Column("Round credits", 8, "int"),
    Column("Cash in share", 9, "percent"),
    Column("Cash out share", 9, "percent"),
    Column("Negative days", 9, "int"),
)
DETAIL_COLUMNS = (
    Column("Account", 26),
    Column("Finding", 18),
    Column("Date", 12, "date"),
    Column("Statement", 24),
    Column("Description", 48),
    Column("Amount", 14, "money"),
    Column("Detail", 40),
)
SHEETS = ("Analysis", "Analysis by account", "Analysis details")


def write_analysis(writer: Writer, analysis: BatchAnalysis) -> None:
    accounts = analysis.accounts
    writer.table(
        "Analysis",
        MONTH_COLUMNS,
        (
            (
                a.account,
                a.currency,
                m.month,
                m.days,
                m.average_balance,
                m.minimum_balance,
                m.negative_days,
                m.credits,
                m.debits,
                m.salary,
                m.salary_change,
                m.obligations,
                m.foir,
                m.cash_deposits,
                m.cash_deposit_share,
                m.cash_withdrawals,
                m.cash_withdrawal_share,
                m.returned_inward,
                m.returned_outward,
                m.return_charges,
                m.large_credits,
                m.round_credits,
                m.own_transfers_in,
                m.own_transfers_out,
            )
            for a in accounts
            for m in a.months
        ),
    )
    writer.table("Analysis by account", ACCOUNT_COLUMNS, [_account_line(a) for a in accounts])
    writer.table("Analysis details", DETAIL_COLUMNS, _details(analysis))


def _account_line(a: AccountAnalysis) -> tuple[Any, ...]:
    return (
        a.account,
        a.currency,
        ", ".join(a.statements),
        a.first_day,
        a.last_day,
        a.income.employer,
        a.income.months,
        a.income.average_monthly,
        a.income.regular,
        a.income.variation,
        len(a.obligations),
        sum(o.total for o in a.obligations),
        a.foir,
        len(a.returned),
        sum(r.charged for r in a.returned),
        a.median_credit,
        len(a.large_credits),
        len(a.round_credits),
        a.cash_deposit_share,
        a.cash_withdrawal_share,
        len(a.negative_days),
    )


def _details(analysis: BatchAnalysis) -> list[tuple[Any, ...]]:
    """One line per row behind a figure, by account, then kind of finding, then date."""
    lines: list[tuple[Any, ...]] = []
    for a in analysis.accounts:
        for item in a.income.credits:
            lines.append(
                (
                    a.account,
                    "Salary",
                    item.date,
                    item.statement,
                    item.description,
                    item.amount,
                    a.income.employer,
                )
            )
        for o in a.obligations:
            for item in o.items:
                detail = f"{o.lender} ({o.interval or 'irregular'})"
                lines.append(
                    (
                        a.account,
                        "EMI or loan",
                        item.date,
                        item.statement,
                        item.description,
                        item.amount,
                        detail,
                    )
                )
        for r in a.returned:
            kind = f"{r.direction.value} {r.kind.value} return"
            if r.returned is not None:
                i = r.returned
                lines.append(
                    (a.account, "Returned item", i.date, i.statement, i.description, i.amount, kind)
                )
            for c in r.charges:
                lines.append(
                    (a.account, "Return charge", c.date, c.statement, c.description, c.amount, kind)
                )
        for item in a.large_credits:
            lines.append(
                (
                    a.account,
                    "Large credit",
                    item.date,
                    item.statement,
                    item.description,
                    item.amount,
                    f"median credit {a.median_credit}",
                )
            )
        for item in a.round_credits:
            lines.append(
                (
                    a.account,
                    "Round-figure credit",
                    item.date,
                    item.statement,
                    item.description,
                    item.amount,
                    None,
                )
            )
        for day in a.negative_days:
            lines.append(
                (a.account, "Negative balance", day, None, None, None, "the day ended below zero")
            )
    for t in analysis.own_transfers:
        lines.append(
            (
                t.from_account,
                "Own transfer out",
                t.debit.date,
                t.debit.statement,
                t.debit.description,
                t.debit.amount,
                f"to {t.to_account}",
            )
        )
        lines.append(
            (
                t.to_account,
                "Own transfer in",
                t.credit.date,
                t.credit.statement,
                t.credit.description,
                t.credit.amount,
                f"from {t.from_account}",
            )
        )
    return lines
