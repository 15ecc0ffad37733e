"""What the analysis reads and what it finds: plain records, no database.

The caller (the workbook, the API) turns its rows into `StatementRecords`, names each
statement and account as it may show them (masked), and gets a `BatchAnalysis` back.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum

from touchstone.statements.domain import CategorisedTransaction

CENT = Decimal("0.01")
RATIO = Decimal("0.0001")


def money(value: Decimal) -> Decimal:
    return value.quantize(CENT, ROUND_HALF_UP)


def ratio(part: Decimal, whole: Decimal) -> Decimal | None:
    """`part / whole` to four places; None when there is no whole to divide by."""
    return (part / whole).quantize(RATIO, ROUND_HALF_UP) if whole else None


@dataclass(frozen=True, slots=True)
class StatementRecords:
    """One statement of the batch: its categorised rows and what frames them."""

    name: str  # how findings name the statement (e.g. its file name, masked)
    account: str  # statements of one account share it (e.g. bank and masked number)
    transactions: Sequence[CategorisedTransaction]
    currency: str | None = None
    period_start: dt.date | None = None
    period_end: dt.date | None = None
    opening_balance: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Settings:
    """The thresholds lenders tune; the defaults are what `docs/statements.md` describes."""

    large_credit_multiple: Decimal = Decimal(5)
    round_figure: Decimal = Decimal(1000)
    transfer_days: int = 2
    charge_days: int = 3


@dataclass(frozen=True, slots=True)
class Item:
    """A transaction a finding points at."""

    statement: str
    row: int
    date: dt.date
    description: str
    amount: Decimal


class ReturnKind(StrEnum):
    CHEQUE = "cheque"
    MANDATE = "mandate"  # ECS, NACH, ACH, direct debit
    OTHER = "other"


class ReturnDirection(StrEnum):
    INWARD = "inward"  # the customer's own payment went unpaid
    OUTWARD = "outward"  # a payment to the customer went unpaid


@dataclass(frozen=True, slots=True)
class ReturnedItem:
    """A bounced or returned item and the charges it caused. `returned` is None when the
    statement shows only the charge for it."""

    date: dt.date
    kind: ReturnKind
    direction: ReturnDirection
    returned: Item | None
    charges: tuple[Item, ...] = ()

    @property
    def charged(self) -> Decimal:
        return sum((-c.amount for c in self.charges), Decimal(0))


@dataclass(frozen=True, slots=True)
class Obligation:
    """Repayments to one lender: an EMI or loan repayment."""

    lender: str
    interval: str | None  # monthly, ... when the payments are regular
    typical_amount: Decimal
    items: tuple[Item, ...]

    @property
    def total(self) -> Decimal:
        return sum((-i.amount for i in self.items), Decimal(0))


@dataclass(frozen=True, slots=True)
class OwnTransfer:
    """Money moved between two of the customer's accounts in the batch."""

    amount: Decimal
    debit: Item
    credit: Item
    from_account: str
    to_account: str


@dataclass(slots=True)
class Month:
    """One account's figures for one calendar month (`month` is its first day)."""

    month: dt.date
    days: int = 0  # days with a known balance
    average_balance: Decimal | None = None
    minimum_balance: Decimal | None = None
    negative_days: int = 0
    credits: Decimal = Decimal(0)
    debits: Decimal = Decimal(0)
    salary: Decimal = Decimal(0)
    salary_change: Decimal | None = None
    obligations: Decimal = Decimal(0)
    foir: Decimal | None = None
    cash_deposits: Decimal = Decimal(0)
    cash_deposit_share: Decimal | None = None
    cash_withdrawals: Decimal = Decimal(0)
    cash_withdrawal_share: Decimal | None = None
    returned_inward: int = 0
    returned_outward: int = 0
    return_charges: Decimal = Decimal(0)
    large_credits: int = 0
    round_credits: int = 0
    own_transfers_in: Decimal = Decimal(0)
    own_transfers_out: Decimal = Decimal(0)


@dataclass(slots=True)
class Income:
    """Salary found on an account: who pays it, how regularly, how steadily."""

    employer: str | None = None
    credits: tuple[Item, ...] = ()
    months: int = 0  # months with a salary credit
    average_monthly: Decimal | None = None
    regular: bool = False  # monthly, similar amounts, one payer (three times at least)
    variation: Decimal | None = None  # population std. deviation / mean of monthly totals


@dataclass(slots=True)
class AccountAnalysis:
    account: str
    currency: str | None
    statements: tuple[str, ...]
    first_day: dt.date | None = None
    last_day: dt.date | None = None
    months: list[Month] = field(default_factory=list)
    income: Income = field(default_factory=Income)
    obligations: tuple[Obligation, ...] = ()
    foir: Decimal | None = None
    returned: tuple[ReturnedItem, ...] = ()
    large_credits: tuple[Item, ...] = ()
    round_credits: tuple[Item, ...] = ()
    median_credit: Decimal | None = None
    cash_deposit_share: Decimal | None = None
    cash_withdrawal_share: Decimal | None = None
    negative_days: tuple[dt.date, ...] = ()


@dataclass(slots=True)
class BatchAnalysis:
    accounts: list[AccountAnalysis] = field(default_factory=list)
    own_transfers: list[OwnTransfer] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Wording:
    """What a row's description says about returns (`returns.read_wording`), read once."""

    returned: bool
    charge: bool
    kind: ReturnKind
    inward: bool
    outward: bool


@dataclass(frozen=True, slots=True)
class Line:
    """A row as the analysis walks it: the statement it came from, in batch order."""

    statement: str
    position: int  # the statement's place in the batch
    account: str
    entry: CategorisedTransaction
    wording: Wording

    @property
    def key(self) -> tuple[str, int]:
        return self.statement, self.entry.transaction.row

    @property
    def date(self) -> dt.date:
        return self.entry.transaction.date

    @property
    def amount(self) -> Decimal:
        return self.entry.transaction.amount

    @property
    def item(self) -> Item:
        t = self.entry.transaction
        return Item(self.statement, t.row, t.date, t.description, t.amount)
