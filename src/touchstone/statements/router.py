"""HTTP routes of the statements module (authenticated; mounted under /api/v1 by main.py).

`public_router` holds the one unauthenticated route: the billing provider's signed webhook.
Billing is changed only by the provider and the platform (see `subscriptions`): a tenant
may ask the platform to create its provider customer, never name one or a plan.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import uuid
from typing import Annotated

from fastapi import Depends, File, Form, Request, Response, UploadFile, status
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic_core import to_json

from touchstone.core.auth import Principal
from touchstone.core.deps import SessionDep, SettingsDep, SystemSessionDep, rate_limit, require
from touchstone.core.errors import Conflict, InvalidInput, NotFound
from touchstone.core.idempotency import IdempotencyDep
from touchstone.core.jobs import accepted
from touchstone.core.jobs.router import JobOut
from touchstone.core.pagination import Page, PageDep, page_response
from touchstone.core.query_params import query_model
from touchstone.core.reads import TenantRead, tenant_read
from touchstone.core.routing import ApiRouter, upload_limit
from touchstone.core.schemas import PlainText
from touchstone.core.storage import StorageDep, request_storage
from touchstone.core.storage.removal import delete_after_commit
from touchstone.statements import service, subscriptions
from touchstone.statements.engines.billing import BillingEngine, billing_engine
from touchstone.statements.schemas import (
    AnalysisOut,
    BatchOut,
    BatchSummaryOut,
    BillingChangeIn,
    CategoryOverride,
    PasswordIn,
    RuleIn,
    RuleOut,
    StatementOut,
    SubscriptionOut,
    TransactionOut,
    TransactionQuery,
    UsageOut,
)

router = ApiRouter(tags=["statements"])
public_router = ApiRouter(tags=["billing"])

Read = Annotated[TenantRead, Depends(tenant_read("statements:read"))]
Writer = Annotated[Principal, Depends(require("statements:write"))]
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def get_billing(request: Request) -> BillingEngine:
    """One engine per app (a Stripe client keeps its connection pool)."""
    state = request.app.state
    if not hasattr(state, "billing"):
        state.billing = billing_engine(state.settings)
    engine: BillingEngine = state.billing
    return engine


BillingDep = Annotated[BillingEngine, Depends(get_billing)]


@router.post(
    "/batches",
    response_model=BatchOut,
    status_code=status.HTTP_202_ACCEPTED,
    dependencies=[Depends(rate_limit("uploads"))],
)
@upload_limit(
    # every file at its largest, and the form fields and multipart framing around them
    lambda s: s.statements_max_files * s.statements_max_file_bytes + s.max_body_bytes
)
async def create_batch(
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    storage: StorageDep,
    principal: Writer,
    idempotency: IdempotencyDep,
    files: Annotated[list[UploadFile], File(description="One or more statement PDFs")],
    passwords: Annotated[
        str | None, Form(description='JSON: {"file name": "password"}', max_length=20_000)
    ] = None,
    label: Annotated[PlainText, Form(max_length=200)] = "",
) -> BatchOut:
    """Upload statements; `202` with the batch and `Location` of the job that reads them."""
    uploads = await service.read_uploads(
        [(f.filename or "statement.pdf", f.size, f) for f in files], passwords, settings
    )
    batch, record = await service.create_batch(
        session, principal, settings, storage, uploads, label
    )
    statements = await service.statements_of(session, batch)
    out = _batch_out(batch, statements, None)
    location = {"Location": f"/api/v1/jobs/{record.id}"}
    response.headers.update(location)
    return idempotency.remember(out, status.HTTP_202_ACCEPTED, location)


def _batch_out(batch: object, statements: object, report_url: str | None) -> BatchOut:
    out = BatchOut.model_validate(batch)
    out.statements = [StatementOut.model_validate(s) for s in statements]  # type: ignore[attr-defined]
    out.report_url = report_url
    return out


@router.get("/batches", response_model=Page[BatchSummaryOut])
async def list_batches(read: Read, page: PageDep) -> Response:
    items, total = await service.list_batches(read, page)
    return page_response(items, total, page)


@router.get("/batches/{batch_id}", response_model=BatchOut)
async def get_batch(batch_id: uuid.UUID, read: Read, request: Request) -> BatchOut:
    """Status, each statement's progress and findings, the summary and the workbook link."""
    batch, statements = await service.read_batch(read, batch_id)
    report_key = batch.pop("report_key")
    report_url = None
    if report_key:
        assert read.principal is not None  # the fetch confirmed the caller
        report_url = await request_storage(request).signed_url(read.principal.org_id, report_key)
    return BatchOut.model_validate({**batch, "statements": statements, "report_url": report_url})


@router.delete("/batches/{batch_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_batch(batch_id: uuid.UUID, session: SessionDep, principal: Writer) -> Response:
    """Delete the batch, its rows and (by a job, once the rows are gone) its files."""
    keys: list[str] = []
    await service.delete_batch(session, principal, keys, batch_id)
    await delete_after_commit(session, principal, keys)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/batches/{batch_id}/transactions", response_model=Page[TransactionOut])
async def list_transactions(
    batch_id: uuid.UUID,
    read: Read,
    page: PageDep,
    filters: Annotated[TransactionQuery, Depends(query_model(TransactionQuery))],
) -> Response:
    """Filtered, paginated transactions; `format=csv` exports every match as CSV."""
    where = service.TransactionFilter(
        filters.statement_id,
        filters.date_from,
        filters.date_to,
        filters.min_amount,
        filters.max_amount,
        filters.category,
        filters.q,
    )
    date_from, date_to = filters.date_from, filters.date_to
    if filters.export == "csv":
        rows = await service.all_transactions(read, batch_id, where)
        _check(rows is not None, date_from, date_to)
        assert rows is not None
        return Response(
            _csv(rows),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{batch_id}.csv"'},
        )
    found = await service.list_transactions(read, batch_id, where, page)
    _check(found is not None, date_from, date_to)
    assert found is not None
    return page_response(*found, page)


def _check(batch_found: bool, date_from: dt.date | None, date_to: dt.date | None) -> None:
    """A reversed range is a 422, a missing batch a 404, in that order, and both after the
    read confirmed the caller's permission (a 403 first), as they always were."""
    if date_from and date_to and date_from > date_to:
        raise InvalidInput("date_from is after date_to")
    if not batch_found:
        raise NotFound("Batch not found")


_CSV_HEADER = service.EXPORT_COLUMNS
"""`service.all_transactions`'s columns, in its order: the CSV's."""


def _csv(rows: list[tuple[object, ...]]) -> str:
    """Text that spreadsheet programs cannot mistake for a formula."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(_CSV_HEADER)
    for row in rows:
        writer.writerow(["" if v is None else _defused(str(v)) for v in row])
    return buffer.getvalue()


def _defused(text: str) -> str:
    return f"'{text}" if text[:1] in ("=", "+", "@", "\t", "\r") else text


@router.patch("/batches/{batch_id}/transactions/{transaction_id}", response_model=TransactionOut)
async def override_category(
    batch_id: uuid.UUID,
    transaction_id: uuid.UUID,
    body: CategoryOverride,
    session: SessionDep,
    principal: Writer,
) -> TransactionOut:
    """Set a category by hand (audited); the workbook is rebuilt to show it."""
    batch = await service.get_batch(session, principal, batch_id)
    row = await service.override_category(session, principal, batch, transaction_id, body.category)
    return TransactionOut.model_validate(row)


@router.get("/batches/{batch_id}/report.xlsx", response_class=StreamingResponse)
async def download_report(batch_id: uuid.UUID, read: Read, request: Request) -> Response:
    """The workbook the batch's job built and stored, streamed from storage."""
    report_key = await service.read_report_key(read, batch_id)
    if not report_key:
        raise Conflict("The workbook is not ready yet; follow the batch's job")
    assert read.principal is not None  # the fetch confirmed the caller
    stream = await request_storage(request).open(read.principal.org_id, report_key)
    return stream.response(
        media_type=XLSX,
        headers={
            "Content-Length": str(stream.size),
            "Content-Disposition": f'attachment; filename="statements-{batch_id}.xlsx"',
        },
    )


@router.get("/batches/{batch_id}/analysis", response_model=AnalysisOut)
async def get_analysis(batch_id: uuid.UUID, read: Read) -> JSONResponse:
    """Underwriting figures per account and month: balances, salary, EMIs and FOIR, returned
    items, cash, large and round credits, own transfers. `409` until the batch has finished."""
    return JSONResponse(await service.read_analysis(read, batch_id))


@router.post(
    "/batches/{batch_id}/statements/{statement_id}/password",
    response_model=JobOut,
    status_code=status.HTTP_202_ACCEPTED,
)
async def supply_password(
    batch_id: uuid.UUID,
    statement_id: uuid.UUID,
    body: PasswordIn,
    session: SessionDep,
    settings: SettingsDep,
    storage: StorageDep,
    principal: Writer,
) -> Response:
    """Open a statement waiting in `needs_password`; a wrong password is 422, nothing changes."""
    record = await service.supply_password(
        session, principal, settings, storage, batch_id, statement_id, body.password
    )
    return accepted(record)


@router.post(
    "/batches/{batch_id}/statements/{statement_id}/reprocess",
    response_model=JobOut,
    status_code=status.HTTP_202_ACCEPTED,
)
async def reprocess(
    batch_id: uuid.UUID, statement_id: uuid.UUID, session: SessionDep, principal: Writer
) -> Response:
    return accepted(await service.reprocess(session, principal, batch_id, statement_id))


# --- rules ------------------------------------------------------------------------------

RuleWriter = Annotated[Principal, Depends(require("statement_rules:write"))]


@router.get("/statement-rules", response_model=list[RuleOut])
async def list_rules(read: Read) -> Response:
    """The org's own rules; they apply before the built-in ones to future processing."""
    # Serialised as read: the query selects exactly `RuleOut`'s fields (`item_query`).
    return Response(to_json(await service.list_rules(read)), media_type="application/json")


@router.post("/statement-rules", response_model=RuleOut, status_code=status.HTTP_201_CREATED)
async def create_rule(
    body: RuleIn, session: SessionDep, principal: RuleWriter, idempotency: IdempotencyDep
) -> RuleOut:
    rule = await service.create_rule(session, principal, body)
    return idempotency.remember(RuleOut.model_validate(rule))


@router.put("/statement-rules/{rule_id}", response_model=RuleOut)
async def replace_rule(
    rule_id: uuid.UUID, body: RuleIn, session: SessionDep, principal: RuleWriter
) -> RuleOut:
    return RuleOut.model_validate(await service.replace_rule(session, principal, rule_id, body))


@router.delete("/statement-rules/{rule_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_rule(rule_id: uuid.UUID, session: SessionDep, principal: RuleWriter) -> Response:
    await service.delete_rule(session, principal, rule_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# --- usage and billing ------------------------------------------------------------------


@router.get("/usage", response_model=UsageOut)
async def get_usage(
    read: Annotated[TenantRead, Depends(tenant_read("usage:read"))], request: Request
) -> UsageOut:
    """Pages processed this month against the plan's quota."""
    settings = request.app.state.settings
    usage = await service.read_usage(read, settings, get_billing(request))
    return UsageOut.model_validate(usage)


@router.post(
    "/billing/customer", response_model=SubscriptionOut, status_code=status.HTTP_201_CREATED
)
async def create_billing_customer(
    session: SessionDep,
    billing: BillingDep,
    principal: Annotated[Principal, Depends(require("billing:write"))],
) -> SubscriptionOut:
    """Have the platform create this org's customer at the billing provider (once; 409 after).

    The plan stays the default until the provider reports a subscription for it."""
    subscription = await subscriptions.create_customer(session, principal, billing)
    return SubscriptionOut.model_validate(subscription)


@router.patch("/platform/orgs/{org_id}/billing", response_model=SubscriptionOut)
async def change_org_billing(
    org_id: uuid.UUID,
    body: BillingChangeIn,
    session: SessionDep,
    settings: SettingsDep,
    billing: BillingDep,
    principal: Annotated[Principal, Depends(require("platform:billing"))],
) -> SubscriptionOut:
    """Platform administrators: link an org to a provider customer (checked with the
    provider), or set its plan and status by hand. Audited in the org, with the reason."""
    subscription = await subscriptions.change_by_platform(
        session, principal, org_id, body.to_change(), settings, billing
    )
    return SubscriptionOut.model_validate(subscription)


@public_router.post("/billing/webhooks/stripe", status_code=status.HTTP_200_OK)
async def stripe_webhook(
    request: Request, session: SystemSessionDep, settings: SettingsDep, billing: BillingDep
) -> dict[str, bool]:
    """Stripe's signed events: the signature is checked on the raw body, each event id is
    applied once (a replay answers 200 with `applied: false`), stale ones are refused."""
    event = billing.verify_webhook(await request.body(), request.headers.get("stripe-signature"))
    applied = await subscriptions.apply_billing_event(
        session, settings, event.id, event.type, event.data
    )
    return {"applied": applied}
