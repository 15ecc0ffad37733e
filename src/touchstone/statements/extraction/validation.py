"""Balance checks in exact Decimal arithmetic: per page (to accept a strategy), per statement
(to set its status) and across the statements of one account in a batch."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from itertools import pairwise

from touchstone.statements.domain import (
    ExtractedStatement,
    StatementMeta,
    StatementStatus,
    Transaction,
    ValidationIssue,
)


def chain_breaks(
    rows: Sequence[tuple[Decimal, Decimal | None]], start: Decimal | None
) -> tuple[dict[int, Decimal], Decimal | None]:
    """Rows (amount, printed balance) whose balance does not follow from the last known one,
    each with the balance expected there, and the balance after the last row. Rows without a
    balance are carried across, so a statement printing only the day's last balance is
    checked over each gap."""
    running = start
    breaks: dict[int, Decimal] = {}
    for index, (amount, balance) in enumerate(rows):
        if running is not None:
            running += amount
        if balance is not None:
            if running is not None and running != balance:
                breaks[index] = running
            running = balance
    return breaks, running


def validate(
    meta: StatementMeta, transactions: list[Transaction]
) -> tuple[StatementStatus, list[ValidationIssue]]:
    """Status and the rows that break the chain; opening + credits - debits must be closing."""
    if not transactions:
        return StatementStatus.FAILED, [ValidationIssue(None, "no transactions could be read")]
    issues: list[ValidationIssue] = []
    rows = [(t.amount, t.balance) for t in transactions]
    breaks, _ = chain_breaks(rows, meta.opening_balance)
    for index, expected in breaks.items():
        txn = transactions[index]
        issues.append(
            ValidationIssue(
                txn.row,
                f"balance {txn.balance} does not follow from the previous one: "
                f"expected {expected} (amount {txn.amount})",
            )
        )
    if meta.opening_balance is not None and meta.closing_balance is not None:
        total = meta.opening_balance + sum((t.amount for t in transactions), Decimal(0))
        if total != meta.closing_balance:
            issues.append(
                ValidationIssue(
                    None,
                    f"opening {meta.opening_balance} plus credits minus debits is {total}, "
                    f"but the closing balance is {meta.closing_balance}",
                )
            )
    return (StatementStatus.REVIEW if issues else StatementStatus.VERIFIED), issues


def check_continuity(statements: Sequence[ExtractedStatement]) -> list[ValidationIssue]:
    """Consecutive statements of one account: each closing balance must be the next opening.

    Statements are grouped by masked account number and ordered by period; `row` is None and
    the message names both periods, since the break lies between two files.
    """
    issues: list[ValidationIssue] = []
    accounts: dict[str | None, list[StatementMeta]] = {}
    for statement in statements:
        accounts.setdefault(statement.meta.account_number_masked, []).append(statement.meta)
    for account, metas in accounts.items():
        dated = sorted(
            (m for m in metas if m.period_start is not None), key=lambda m: m.period_start or 0
        )
        for before, after in pairwise(dated):
            if before.closing_balance is None or after.opening_balance is None:
                continue
            if before.closing_balance != after.opening_balance:
                issues.append(
                    ValidationIssue(
                        None,
                        f"account {account or 'unknown'}: statement ending {before.period_end} "
                        f"closes at {before.closing_balance} but the one starting "
                        f"{after.period_start} opens at {after.opening_balance}",
                    )
                )
    return issues
