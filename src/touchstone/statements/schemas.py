"""Request and response models of the statements API."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints, field_validator, model_validator

from touchstone.core.schemas import Count, InputModel, NonBlank, OutputModel, PlainText
from touchstone.statements.analysis import BatchAnalysis
from touchstone.statements.categorise import Rule
from touchstone.statements.subscriptions import BillingChange

Category = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{1,59}$")]
RuleText = Annotated[str, StringConstraints(min_length=1, max_length=100), NonBlank]


class FindingOut(OutputModel):
    code: str = Field(
        description="`modified_after_creation`, `modified_before_creation`, "
        "`created_before_period_end`, `incremental_updates`, `content_changed`, "
        "`restyled_text` or `totals_disagree`"
    )
    message: str


class RestyledOut(OutputModel):
    page: int
    row: str = Field(description="The row's text, long digit runs masked")
    text: str = Field(description="The words drawn differently, masked the same way")
    typeface: str
    size: float = Field(description="Points, as drawn")
    neighbours_typeface: str
    neighbours_size: float


class SignalsOut(OutputModel):
    """What the file says about how it was made and changed: facts for a lender to weigh.
    Only `changed_pages` decides anything: a statement with any is not `verified`."""

    producer: str | None
    creator: str | None
    created: dt.datetime | None
    modified: dt.datetime | None
    pdf_version: str | None
    revisions: int = Field(description="Sections ending in `%%EOF` (a linearised file has two)")
    incremental_updates: int = Field(description="Saves that changed the file after it was written")
    changed_pages: list[int] = Field(
        default_factory=list,
        description="Pages whose text differs from the file's first revision (still inside "
        "it): changed after the file was written",
    )
    restyled: list[RestyledOut] = Field(
        description="Figures drawn at another size, or in a rare face, than the rest of their row"
    )
    findings: list[FindingOut]


class StatementOut(OutputModel):
    id: uuid.UUID
    position: int
    filename: str
    sha256: str
    size: int
    pages: int
    pages_done: int
    password_protected: bool
    status: str
    duplicate_of: uuid.UUID | None
    error_code: str | None
    error_detail: str | None
    meta: dict[str, Any]
    page_reports: list[Any]
    issues: list[Any]
    signals: SignalsOut | None = Field(description="None until the statement has been read")
    processed_at: dt.datetime | None

    @field_validator("signals", mode="before")
    @classmethod
    def _read_yet(cls, signals: object) -> object:
        return signals or None


class BatchOut(OutputModel):
    id: uuid.UUID
    label: str
    status: str
    job_id: uuid.UUID | None
    created_at: dt.datetime
    finished_at: dt.datetime | None
    summary: dict[str, Any]
    error_code: str | None = Field(description="Why the batch failed (status `failed`)")
    error_detail: str | None
    report_url: str | None = Field(
        default=None, description="Signed, time-limited download of the workbook"
    )
    statements: list[StatementOut] = []


class BatchSummaryOut(OutputModel):
    id: uuid.UUID
    label: str
    status: str
    created_at: dt.datetime
    finished_at: dt.datetime | None
    summary: dict[str, Any]


class TransactionOut(OutputModel):
    id: uuid.UUID
    statement_id: uuid.UUID
    row: int
    page: int
    txn_date: dt.date
    description: str
    amount: Decimal
    balance: Decimal | None
    category: str
    counterparty: str | None
    recurring: bool
    rule: str | None
    overridden: bool


class TransactionQuery(BaseModel):
    """The filters of a batch's transaction list, read as one model (`core.query_params`)."""

    statement_id: uuid.UUID | None = None
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    min_amount: Decimal | None = Field(None, ge=0, le=10**15)
    max_amount: Decimal | None = Field(None, ge=0, le=10**15)
    category: str | None = Field(None, max_length=60, pattern=r"^[a-z0-9_]+$")
    q: PlainText | None = Field(None, max_length=100)
    export: str | None = Field(None, alias="format", pattern="^(json|csv)$")


class CategoryOverride(InputModel):
    category: Category


class PasswordIn(InputModel):
    password: Annotated[str, StringConstraints(min_length=1, max_length=200)]


class RuleIn(InputModel):
    """A categorisation rule; checked by the same code that applies it."""

    name: RuleText
    category: Category
    priority: Count = Field(default=100, ge=0, le=10_000)
    keywords: list[RuleText] = Field(default=[], max_length=50)
    pattern: Annotated[str, StringConstraints(max_length=200)] | None = None
    min_amount: Decimal | None = Field(default=None, ge=0)
    max_amount: Decimal | None = Field(default=None, ge=0)
    direction: str | None = Field(default=None, pattern="^(credit|debit)$")

    def to_rule(self) -> Rule:
        """The engine's own validation (regex safety, empty rules, inverted ranges) -> 422."""
        return Rule.from_mapping(self.model_dump(exclude_none=True))

    @field_validator("keywords")
    @classmethod
    def _distinct(cls, keywords: list[str]) -> list[str]:
        return list(dict.fromkeys(keywords))


class RuleOut(OutputModel):
    id: uuid.UUID
    name: str
    definition: dict[str, Any]
    created_at: dt.datetime


class UsageOut(OutputModel):
    plan: str
    period_start: dt.date
    pages_used: int
    pages_quota: int | None = Field(description="None: unlimited")
    billing: str


CustomerId = Annotated[str, StringConstraints(pattern=r"^cus_[A-Za-z0-9]{1,64}$")]
PlanName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{1,39}$")]
SubscriptionStatus = Literal[
    "none",
    "active",
    "trialing",
    "past_due",
    "canceled",
    "unpaid",
    "incomplete",
    "incomplete_expired",
    "paused",
]


class BillingChangeIn(InputModel):
    """A platform administrator's change; fields left out stay as they are."""

    reason: Annotated[PlainText, StringConstraints(min_length=3, max_length=500)]
    customer_id: CustomerId | None = Field(
        default=None, description="A provider customer (checked with it); null unlinks"
    )
    plan: PlanName | None = None
    status: SubscriptionStatus | None = Field(
        default=None, description="Only `active` and `trialing` put the plan in force"
    )

    @model_validator(mode="after")
    def _changes_something(self) -> BillingChangeIn:
        if not self.model_fields_set & {"customer_id", "plan", "status"}:
            raise ValueError("set customer_id, plan or status")
        for name in ("plan", "status"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} may be omitted but not null")
        return self

    def to_change(self) -> BillingChange:
        given = self.model_fields_set
        return BillingChange(
            reason=self.reason,
            customer_id=self.customer_id if "customer_id" in given else ...,
            plan=self.plan if self.plan is not None else ...,
            status=self.status if self.status is not None else ...,
        )


class SubscriptionOut(OutputModel):
    plan: str
    status: str
    external_customer_id: str | None
    current_period_end: dt.datetime | None


# --- underwriting analysis (`analysis.analyse`; each figure in docs/statements.md) ---------

Share = Annotated[Decimal | None, Field(description="A fraction to four places; None: no base")]


class AnalysisItemOut(OutputModel):
    """A transaction a finding points at."""

    statement: str = Field(description="The statement's file name, long digit runs masked")
    row: int
    date: dt.date
    description: str
    amount: Decimal = Field(description="Signed: credits positive, debits negative")


class MonthOut(OutputModel):
    month: dt.date = Field(description="The month's first day")
    days: int = Field(description="Days of the month with a known end-of-day balance")
    average_balance: Decimal | None = Field(description="Mean end-of-day balance over `days`")
    minimum_balance: Decimal | None
    negative_days: int = Field(description="Days ending with a negative balance")
    credits: Decimal
    debits: Decimal
    salary: Decimal
    salary_change: Share = Field(description="Against the month before, when it had salary")
    obligations: Decimal = Field(description="EMIs and loan repayments paid")
    foir: Share = Field(description="obligations / salary")
    cash_deposits: Decimal
    cash_deposit_share: Share = Field(description="cash_deposits / credits")
    cash_withdrawals: Decimal
    cash_withdrawal_share: Share = Field(description="cash_withdrawals / debits")
    returned_inward: int = Field(description="The customer's own payments returned unpaid")
    returned_outward: int = Field(description="Payments to the customer returned unpaid")
    return_charges: Decimal
    large_credits: int
    round_credits: int
    own_transfers_in: Decimal
    own_transfers_out: Decimal


class IncomeOut(OutputModel):
    employer: str | None = Field(description="The payer of most of the salary")
    credits: list[AnalysisItemOut]
    months: int = Field(description="Months with a salary credit")
    average_monthly: Decimal | None = Field(description="Salary over `months`")
    regular: bool = Field(description="Monthly, similar amounts, one payer, three times or more")
    variation: Share = Field(description="Std. deviation / mean of the monthly salary")


class ObligationOut(OutputModel):
    lender: str
    interval: str | None = Field(description="`monthly`, ... when the debits are regular")
    typical_amount: Decimal
    total: Decimal
    items: list[AnalysisItemOut]


class ReturnedItemOut(OutputModel):
    date: dt.date
    kind: Literal["cheque", "mandate", "other"] = Field(
        description="`mandate`: ECS, NACH, ACH, direct debit"
    )
    direction: Literal["inward", "outward"] = Field(
        description="`inward`: the customer's payment went unpaid; `outward`: a payment to them"
    )
    returned: AnalysisItemOut | None = Field(description="None when only the charge is printed")
    charges: list[AnalysisItemOut]
    charged: Decimal


class AccountAnalysisOut(OutputModel):
    account: str = Field(description="Bank and masked number, or the statement's file name")
    currency: str | None
    statements: list[str]
    first_day: dt.date | None
    last_day: dt.date | None
    months: list[MonthOut]
    income: IncomeOut
    obligations: list[ObligationOut]
    foir: Share = Field(description="All obligations / all salary")
    returned: list[ReturnedItemOut]
    large_credits: list[AnalysisItemOut]
    round_credits: list[AnalysisItemOut]
    median_credit: Decimal | None
    cash_deposit_share: Share
    cash_withdrawal_share: Share
    negative_days: list[dt.date]


class OwnTransferOut(OutputModel):
    amount: Decimal
    from_account: str
    to_account: str
    debit: AnalysisItemOut
    credit: AnalysisItemOut


class AnalysisOut(OutputModel):
    """What a lender reads a batch for, per account and month."""

    batch_id: uuid.UUID
    accounts: list[AccountAnalysisOut]
    own_transfers: list[OwnTransferOut]

    @classmethod
    def document(cls, batch_id: uuid.UUID, analysis: BatchAnalysis) -> dict[str, Any]:
        """The response as JSON-ready data: what the batch stores and the API serves."""
        out = cls.model_validate(
            {
                "batch_id": batch_id,
                "accounts": analysis.accounts,
                "own_transfers": analysis.own_transfers,
            }
        )
        return out.model_dump(mode="json")
