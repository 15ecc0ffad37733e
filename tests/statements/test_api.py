"""The statements API end to end: upload, the job, reads, downloads, passwords, tenancy."""

from __future__ import annotations

import io
import re
import uuid
import zipfile
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from bench.corpus import Edit, edit_pdf
from bench.generators.statements import generate_statement
from fpdf import FPDF
from sqlalchemy import func, select

from tests.conftest import Tenant, add_member, assert_problem, committed_tenant
from tests.core.jobs.conftest import drain
from tests.statements.test_signals import Cell, append_revision, render, statement_lines
from touchstone.core.config import Settings
from touchstone.core.db import Database
from touchstone.core.pagination import Page
from touchstone.core.permissions import Role
from touchstone.core.postgres import DatabaseUrls
from touchstone.statements.models import Batch, UsageEvent
from touchstone.statements.schemas import TransactionOut

API = "/api/v1"


def pdf(name: str, data: bytes) -> tuple[str, tuple[str, bytes, str]]:
    return ("files", (name, data, "application/pdf"))


@pytest.fixture
def run_jobs(settings: Settings, database_urls: DatabaseUrls) -> Callable[[], Any]:
    async def run() -> None:
        await drain(settings, database_urls)

    return run


async def upload(
    client: httpx.AsyncClient, tenant: Tenant, files: list[Any], **form: str
) -> httpx.Response:
    return await client.post(f"{API}/batches", headers=tenant.headers, files=files, data=form)


async def test_batch_reads_verifies_and_reports(
    live_client: httpx.AsyncClient, tenant: Tenant, run_jobs: Callable[[], Any]
) -> None:
    first = generate_statement("ruled_uk", seed=1)
    second = generate_statement("borderless_signed", seed=2)
    response = await upload(
        live_client, tenant, [pdf("a.pdf", first.pdf), pdf("b.pdf", second.pdf)], label="Q1"
    )
    assert response.status_code == 202, response.text
    assert response.headers["Location"].startswith(f"{API}/jobs/")
    batch = response.json()
    assert [s["status"] for s in batch["statements"]] == ["queued", "queued"]

    await run_jobs()
    read = await live_client.get(f"{API}/batches/{batch['id']}", headers=tenant.headers)
    done = read.json()
    assert done["status"] == "done"
    assert [s["status"] for s in done["statements"]] == ["verified", "verified"]
    expected = len(first.transactions) + len(second.transactions)
    assert done["summary"]["transactions"] == expected
    assert done["report_url"]
    signals = done["statements"][0]["signals"]  # the file's facts; none of them worth a look
    assert signals["pdf_version"] is not None
    assert signals["created"] is not None
    assert (signals["revisions"], signals["incremental_updates"]) == (1, 0)
    assert signals["findings"] == []
    assert batch["statements"][0]["signals"] is None  # not read yet

    listed = await live_client.get(
        f"{API}/batches/{batch['id']}/transactions",
        headers=tenant.headers,
        params={"statement_id": done["statements"][0]["id"], "limit": 100, "sort": "row"},
    )
    rows = listed.json()
    assert rows["total"] == len(first.transactions)
    # The page is serialised from the rows as read: exactly what the model would send.
    assert (
        listed.content
        == Page[TransactionOut].model_validate_json(listed.content).model_dump_json().encode()
    )
    truth = first.transactions
    assert [(r["txn_date"], r["amount"]) for r in rows["items"]] == [
        (t.date.isoformat(), f"{t.amount:.2f}") for t in truth
    ]
    assert all(r["category"] for r in rows["items"])

    csv_text = (
        await live_client.get(
            f"{API}/batches/{batch['id']}/transactions",
            headers=tenant.headers,
            params={"format": "csv"},
        )
    ).text
    assert len(csv_text.strip().splitlines()) == expected + 1
    assert csv_text.splitlines()[0] == (
        "statement_id,row,txn_date,description,amount,balance,category,counterparty,recurring"
    )

    # The statement prints the full account number; only its masked form reaches the API.
    assert first.meta.account_number_masked is not None
    last_four = first.meta.account_number_masked[-4:]
    assert done["statements"][0]["meta"]["account_number_masked"] == f"XXXX{last_four}"
    for body in (read.text, listed.text, csv_text):
        assert f"4021{last_four}" not in body

    workbook = await live_client.get(
        f"{API}/batches/{batch['id']}/report.xlsx", headers=tenant.headers
    )
    assert workbook.status_code == 200
    with zipfile.ZipFile(io.BytesIO(workbook.content)) as book:
        sheets = book.read("xl/workbook.xml").decode().count("<sheet ")
    assert sheets >= 15


def drawn_statement(
    period: str, opening: str, rows: list[tuple[str, str, str | None, str | None, str]]
) -> bytes:
    """A statement of (date, narration, withdrawal, deposit, balance) rows that adds up."""
    lines: list[list[Cell]] = [
        [(10, "Statement of Account", "L")],
        [(10, f"Period: {period}", "L")],
        [(10, f"Opening Balance {opening}", "L")],
        [
            (10, "Date", "L"),
            (35, "Narration", "L"),
            (130, "Withdrawal", "R"),
            (160, "Deposit", "R"),
            (195, "Balance", "R"),
        ],
    ]
    for date, text, out, into, balance in rows:
        amount: Cell = (130, out, "R") if out else (160, into or "", "R")
        lines.append([(10, date, "L"), (35, text, "L"), amount, (195, balance, "R")])
    lines.append([(10, "Closing Balance", "L"), (195, rows[-1][4], "R")])
    return render(lines)


SALARIED = drawn_statement(
    "01/01/2024 to 31/03/2024",
    "1,000.00",
    [
        ("01/01/2024", "NEFT-ACME CORP-SALARY JAN", None, "50,000.00", "51,000.00"),
        ("05/01/2024", "NACH-DR-BAJAJ FINANCE LTD", "10,000.00", None, "41,000.00"),
        ("01/02/2024", "NEFT-ACME CORP-SALARY FEB", None, "50,000.00", "91,000.00"),
        ("05/02/2024", "NACH-DR-BAJAJ FINANCE LTD", "10,000.00", None, "81,000.00"),
        ("10/02/2024", "IMPS-TO SELF", "3,000.00", None, "78,000.00"),
        ("01/03/2024", "NEFT-ACME CORP-SALARY MAR", None, "50,000.00", "128,000.00"),
        ("05/03/2024", "NACH-DR-BAJAJ FINANCE LTD", "10,000.00", None, "118,000.00"),
    ],
)
OVERDRAWN = drawn_statement(
    "01/02/2024 to 29/02/2024",
    "500.00",
    [
        ("11/02/2024", "IMPS-FROM SELF", None, "3,000.00", "3,500.00"),
        ("20/02/2024", "CHQ 000123 LANDLORD", "4,500.00", None, "-1,000.00"),
        ("21/02/2024", "I/W CHQ RTN 000123 INSUFFICIENT FUNDS", None, "4,500.00", "3,500.00"),
        ("22/02/2024", "CHQ RTN CHGS", "590.00", None, "2,910.00"),
    ],
)


async def test_analysis_of_a_processed_batch(
    live_client: httpx.AsyncClient,
    tenant: Tenant,
    committed: Database,
    settings: Settings,
    run_jobs: Callable[[], Any],
) -> None:
    batch = (
        await upload(live_client, tenant, [pdf("a.pdf", SALARIED), pdf("b.pdf", OVERDRAWN)])
    ).json()
    url = f"{API}/batches/{batch['id']}/analysis"
    assert_problem(await live_client.get(url, headers=tenant.headers), 409)  # not read yet
    await run_jobs()

    response = await live_client.get(url, headers=tenant.headers)
    assert response.status_code == 200, response.text
    found = response.json()
    assert found["batch_id"] == batch["id"]
    salaried, overdrawn = found["accounts"]
    assert (salaried["account"], overdrawn["account"]) == ("a.pdf", "b.pdf")
    # Jan: 51,000 x 4 days + 41,000 x 27 = 1,311,000 / 31; Feb: 91,000 x 4 + 81,000 x 5 +
    # 78,000 x 20 = 2,329,000 / 29; Mar: 128,000 x 4 + 118,000 x 27 = 3,698,000 / 31
    assert [
        (m["month"], m["days"], m["average_balance"], m["minimum_balance"], m["foir"])
        for m in salaried["months"]
    ] == [
        ("2024-01-01", 31, "42290.32", "41000.00", "0.2000"),
        ("2024-02-01", 29, "80310.34", "78000.00", "0.2000"),
        ("2024-03-01", 31, "119290.32", "118000.00", "0.2000"),
    ]
    income = salaried["income"]
    assert (income["employer"], income["months"], income["regular"]) == ("ACME CORP", 3, True)
    assert (income["average_monthly"], income["variation"]) == ("50000.00", "0.0000")
    (emi,) = salaried["obligations"]
    assert (emi["lender"], emi["interval"], emi["typical_amount"], emi["total"]) == (
        "BAJAJ FINANCE LTD",
        "monthly",
        "10000.00",
        "30000.00",
    )
    assert salaried["foir"] == "0.2000"

    # Feb: 500 x 10 + 3,500 x 9 - 1,000 + 3,500 + 2,910 x 8 = 62,280 / 29
    (february,) = overdrawn["months"]
    assert (february["average_balance"], february["minimum_balance"]) == ("2147.59", "-1000.00")
    assert (february["negative_days"], february["returned_inward"]) == (1, 1)
    assert (february["return_charges"], february["own_transfers_in"]) == ("590.00", "3000.00")
    assert overdrawn["negative_days"] == ["2024-02-20"]
    (bounce,) = overdrawn["returned"]
    assert (bounce["kind"], bounce["direction"]) == ("cheque", "inward")
    assert bounce["charged"] == "590.00"
    assert bounce["returned"]["amount"] == "4500.00"
    (transfer,) = found["own_transfers"]
    assert (transfer["amount"], transfer["from_account"], transfer["to_account"]) == (
        "3000.00",
        "a.pdf",
        "b.pdf",
    )
    assert (transfer["debit"]["date"], transfer["credit"]["date"]) == ("2024-02-10", "2024-02-11")

    # Served as the job stored it; a batch finished before analyses were stored has it
    # computed from its rows, the same.
    async with committed.transaction(org_id=tenant.org_id) as session:
        stored = await session.get(Batch, uuid.UUID(batch["id"]))
        assert stored is not None
        assert stored.analysis == found
        stored.analysis = None
    assert (await live_client.get(url, headers=tenant.headers)).json() == found

    other = await committed_tenant(committed, settings, live_client)
    assert_problem(await live_client.get(url, headers=other.headers), 404)

    workbook = await live_client.get(
        f"{API}/batches/{batch['id']}/report.xlsx", headers=tenant.headers
    )
    with zipfile.ZipFile(io.BytesIO(workbook.content)) as book:
        names = re.findall(r'<sheet name="([^"]+)"', book.read("xl/workbook.xml").decode())
    assert names[0] == "Analysis"


async def test_password_protected_statement_waits_for_its_password(
    live_client: httpx.AsyncClient, tenant: Tenant, run_jobs: Callable[[], Any]
) -> None:
    locked = generate_statement("ruled_uk", seed=3, password="s3cret")
    batch = (await upload(live_client, tenant, [pdf("locked.pdf", locked.pdf)])).json()
    statement = batch["statements"][0]
    assert statement["status"] == "needs_password"
    path = f"{API}/batches/{batch['id']}/statements/{statement['id']}/password"

    wrong = await live_client.post(path, headers=tenant.headers, json={"password": "nope"})
    assert_problem(wrong, 422, "wrong_password")
    right = await live_client.post(path, headers=tenant.headers, json={"password": "s3cret"})
    assert right.status_code == 202, right.text
    await run_jobs()
    done = (await live_client.get(f"{API}/batches/{batch['id']}", headers=tenant.headers)).json()
    assert done["statements"][0]["status"] == "verified"
    assert "s3cret" not in str(done)


async def test_same_file_again_is_linked_not_read_or_metered_twice(
    live_client: httpx.AsyncClient,
    tenant: Tenant,
    run_jobs: Callable[[], Any],
    committed: Database,
) -> None:
    statement = generate_statement("ruled_uk", seed=4)
    first = (await upload(live_client, tenant, [pdf("one.pdf", statement.pdf)])).json()
    await run_jobs()
    again = (await upload(live_client, tenant, [pdf("copy.pdf", statement.pdf)])).json()
    original_id = first["statements"][0]["id"]
    assert again["statements"][0]["duplicate_of"] == original_id
    await run_jobs()
    copy = (await live_client.get(f"{API}/batches/{again['id']}", headers=tenant.headers)).json()
    assert copy["statements"][0]["status"] == "verified"
    assert copy["summary"]["transactions"] == len(statement.transactions)
    async with committed.transaction(org_id=tenant.org_id) as session:
        metered = await session.execute(select(func.sum(UsageEvent.quantity)))
        assert metered.scalar_one() == statement.pages


async def test_signals_of_an_edited_file_are_returned_and_kept_for_its_duplicate(
    live_client: httpx.AsyncClient, tenant: Tenant, run_jobs: Callable[[], Any]
) -> None:
    edited = append_revision(
        render(statement_lines({"2,500.00": ("helvetica", 10.5)})),
        {
            "Producer": "Some PDF Editor 3.2",
            "CreationDate": "D:20250502093000Z",
            "ModDate": "D:20250611180000Z",
        },
    )
    first = (await upload(live_client, tenant, [pdf("edited.pdf", edited)])).json()
    await run_jobs()
    again = (await upload(live_client, tenant, [pdf("again.pdf", edited)])).json()
    await run_jobs()

    for batch in (first, again):
        read = await live_client.get(f"{API}/batches/{batch['id']}", headers=tenant.headers)
        [statement] = read.json()["statements"]
        assert statement["status"] == "verified"  # the figures add up; the signals say the rest
        signals = statement["signals"]
        assert signals["producer"] == "Some PDF Editor 3.2"
        assert signals["modified"] == "2025-06-11T18:00:00Z"
        assert signals["incremental_updates"] == 1
        assert signals["changed_pages"] == []  # only the info dictionary was saved again
        assert [r["text"] for r in signals["restyled"]] == ["2,500.00"]
        assert [f["code"] for f in signals["findings"]] == [
            "modified_after_creation",
            "incremental_updates",
            "restyled_text",
        ]


async def test_a_statement_whose_text_changed_after_it_was_written_is_in_review(
    live_client: httpx.AsyncClient, tenant: Tenant, run_jobs: Callable[[], Any]
) -> None:
    edited = edit_pdf(render(statement_lines()), None, Edit.NAME)
    assert edited is not None
    batch = (await upload(live_client, tenant, [pdf("edited.pdf", edited.data)])).json()
    await run_jobs()

    read = await live_client.get(f"{API}/batches/{batch['id']}", headers=tenant.headers)
    [statement] = read.json()["statements"]
    assert statement["status"] == "review"
    assert statement["signals"]["changed_pages"] == [1]
    [issue] = statement["issues"]
    assert issue["message"].startswith(
        "The file was changed after it was written: the text of page 1 differs"
    )


async def test_a_batch_whose_statements_failed_says_so_and_meters_no_pages(
    live_client: httpx.AsyncClient,
    tenant: Tenant,
    run_jobs: Callable[[], Any],
    committed: Database,
) -> None:
    letter = FPDF()
    letter.add_page()
    letter.set_font("helvetica", size=11)
    letter.multi_cell(0, 6, "Dear customer,\nyour new card is on its way.\nNorthwind Bank plc")
    batch = (await upload(live_client, tenant, [pdf("letter.pdf", bytes(letter.output()))])).json()
    await run_jobs()
    done = (await live_client.get(f"{API}/batches/{batch['id']}", headers=tenant.headers)).json()
    assert done["status"] == "completed_with_errors"
    assert done["summary"]["by_status"] == {"failed": 1}
    job = (await live_client.get(f"{API}/jobs/{batch['job_id']}", headers=tenant.headers)).json()
    assert job["result"]["status"] == "completed_with_errors"
    async with committed.transaction(org_id=tenant.org_id) as session:
        metered = await session.execute(select(func.sum(UsageEvent.quantity)))
        assert metered.scalar_one() == 0


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [
        (b"MZ\x90\x00 not a pdf at all", 415, "not_a_pdf"),
        (b"%PDF-1.7\n1 0 obj << /Type /Catalog", 422, "corrupt_pdf"),
    ],
)
async def test_bad_files_are_refused_and_leave_nothing(
    client: httpx.AsyncClient,
    tenant_a: Tenant,
    database: Database,
    data: bytes,
    status: int,
    code: str,
) -> None:
    good = generate_statement("ruled_uk", seed=5).pdf
    response = await upload(client, tenant_a, [pdf("good.pdf", good), pdf("bad.pdf", data)])
    assert_problem(response, status, code)
    async with database.transaction(org_id=tenant_a.org_id) as session:
        assert (await session.execute(select(func.count()).select_from(Batch))).scalar() == 0


async def test_a_label_with_control_characters_is_a_422_and_leaves_nothing(
    client: httpx.AsyncClient, tenant_a: Tenant, database: Database
) -> None:
    """Found by `make fuzz`: the label was checked outside validation, so it was a 500."""
    good = generate_statement("ruled_uk", seed=5).pdf
    response = await upload(client, tenant_a, [pdf("good.pdf", good)], label="March\x07")
    assert_problem(response, 422)
    async with database.transaction(org_id=tenant_a.org_id) as session:
        assert (await session.execute(select(func.count()).select_from(Batch))).scalar() == 0


async def test_limits_on_files_and_pages(
    client: httpx.AsyncClient, tenant_a: Tenant, settings: Settings
) -> None:
    statement = generate_statement("ruled_uk", seed=6).pdf
    too_many = [pdf(f"{n}.pdf", statement) for n in range(settings.statements_max_files + 1)]
    assert_problem(await upload(client, tenant_a, too_many), 422, "too_many_files")
    assert_problem(await upload(client, tenant_a, []), 422)


async def test_quota_is_a_clear_402(
    client: httpx.AsyncClient, tenant_a: Tenant, settings: Settings
) -> None:
    settings_quota = settings.statements_plan_quotas
    original = dict(settings_quota)
    settings_quota["free"] = 1
    try:
        response = await upload(
            client, tenant_a, [pdf("a.pdf", generate_statement("ruled_uk", seed=7).pdf)]
        )
    finally:
        settings_quota.clear()
        settings_quota.update(original)
    problem = assert_problem(response, 402, "quota_exceeded")
    assert problem["pages_quota"] == 1


async def test_another_orgs_batch_is_not_found(
    client: httpx.AsyncClient, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    batch = (
        await upload(client, tenant_a, [pdf("a.pdf", generate_statement("ruled_uk", seed=8).pdf)])
    ).json()
    statement = batch["statements"][0]["id"]
    base = f"{API}/batches/{batch['id']}"
    for method, path in [
        ("GET", base),
        ("GET", f"{base}/transactions"),
        ("GET", f"{base}/transactions?format=csv"),
        ("GET", f"{base}/transactions?offset=40&sort=-amount&q=rent&min_amount=1"),
        ("GET", f"{base}/report.xlsx"),
        ("GET", f"{base}/analysis"),
        ("DELETE", base),
        ("POST", f"{base}/statements/{statement}/reprocess"),
        ("PATCH", f"{base}/transactions/{uuid.uuid4()}"),
    ]:
        body = {"category": "rent"} if method == "PATCH" else None
        response = await client.request(method, path, headers=tenant_b.headers, json=body)
        assert_problem(response, 404)
    assert (await client.get(base, headers=tenant_a.headers)).status_code == 200
    listed = (await client.get(f"{API}/batches", headers=tenant_b.headers)).json()
    assert listed == {"items": [], "total": 0, "limit": 20, "offset": 0}


async def test_transaction_reads_answer_403_then_422_then_404(
    client: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    """The order of the refusals is the route's contract: permission, the range, the batch."""
    batch = (
        await upload(client, tenant_a, [pdf("a.pdf", generate_statement("ruled_uk", seed=8).pdf)])
    ).json()
    _, appraiser = await add_member(client, tenant_a, Role.APPRAISER)  # no statements:read
    reversed_range = {"date_from": "2024-02-01", "date_to": "2024-01-01"}
    for export in ({}, {"format": "csv"}):
        for _ in range(2):  # the second read is planned for the caller this process saw
            for batch_id in (batch["id"], uuid.uuid4()):
                path = f"{API}/batches/{batch_id}/transactions"
                params = reversed_range | export
                assert_problem(await client.get(path, headers=appraiser, params=params), 403)
                refused = await client.get(path, headers=tenant_a.headers, params=params)
                assert_problem(refused, 422)
            missing = f"{API}/batches/{uuid.uuid4()}/transactions"
            assert_problem(await client.get(missing, headers=tenant_a.headers, params=export), 404)
    empty = await client.get(
        f"{API}/batches/{batch['id']}/transactions", headers=tenant_a.headers, params={"offset": 5}
    )
    assert empty.json() == {"items": [], "total": 0, "limit": 20, "offset": 5}
    not_built = f"{API}/batches/{batch['id']}/report.xlsx"
    assert_problem(await client.get(not_built, headers=tenant_a.headers), 409)
    assert_problem(await client.get(not_built, headers=appraiser), 403)


async def test_viewer_reads_but_cannot_upload(client: httpx.AsyncClient, tenant_a: Tenant) -> None:
    _, viewer = await add_member(client, tenant_a, Role.VIEWER)
    statement = generate_statement("ruled_uk", seed=9).pdf
    refused = await client.post(f"{API}/batches", headers=viewer, files=[pdf("a.pdf", statement)])
    assert_problem(refused, 403)
    assert (await client.get(f"{API}/batches", headers=viewer)).status_code == 200


async def test_override_is_audited_and_kept(
    live_client: httpx.AsyncClient, tenant: Tenant, run_jobs: Callable[[], Any]
) -> None:
    batch = (
        await upload(
            live_client, tenant, [pdf("a.pdf", generate_statement("ruled_uk", seed=10).pdf)]
        )
    ).json()
    await run_jobs()
    rows = (
        await live_client.get(f"{API}/batches/{batch['id']}/transactions", headers=tenant.headers)
    ).json()["items"]
    target = rows[0]
    changed = await live_client.patch(
        f"{API}/batches/{batch['id']}/transactions/{target['id']}",
        headers=tenant.headers,
        json={"category": "rent"},
    )
    assert changed.json()["category"] == "rent"
    assert changed.json()["overridden"] is True
    await run_jobs()  # the workbook is rebuilt
    audit = await live_client.get(
        f"{API}/audit-events",
        headers=tenant.headers,
        params={"action": "statements.category_overridden"},
    )
    assert audit.json()["total"] == 1
    bad = await live_client.patch(
        f"{API}/batches/{batch['id']}/transactions/{target['id']}",
        headers=tenant.headers,
        json={"category": "rent", "org_id": str(uuid.uuid4())},
    )
    assert_problem(bad, 422)


async def test_rules_are_validated_by_the_engine(
    client: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    good = {"name": "Landlord", "category": "rent", "keywords": ["acme lettings"]}
    created = await client.post(f"{API}/statement-rules", headers=tenant_a.headers, json=good)
    assert created.status_code == 201, created.text
    assert created.json()["definition"]["keywords"] == ["acme lettings"]
    for bad in (
        {"name": "Empty", "category": "rent"},
        {"name": "Bad regex", "category": "rent", "pattern": "(unclosed"},
        {"name": "Range", "category": "rent", "min_amount": "10", "max_amount": "1"},
    ):
        refused = await client.post(f"{API}/statement-rules", headers=tenant_a.headers, json=bad)
        assert_problem(refused, 422)
    duplicate = await client.post(f"{API}/statement-rules", headers=tenant_a.headers, json=good)
    assert_problem(duplicate, 409)
