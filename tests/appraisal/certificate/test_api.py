"""Certificates and the tamper-evident trail, against committed data: the public page and
the owner's connection (which can change rows the application cannot) are other sessions."""

from __future__ import annotations

import urllib.parse

import cv2
import numpy as np
import psycopg
import pypdfium2
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from tests.appraisal.conftest import API, CHAIN, RING, Bank, complete_purity
from tests.conftest import assert_problem
from touchstone.appraisal.purity.pipeline import Karat
from touchstone.core.config import Settings
from touchstone.core.db import Database
from touchstone.core.postgres import DatabaseUrls, libpq_dsn
from touchstone.core.storage import get_storage


def evidence_jpeg() -> bytes:
    frame = np.full((240, 320, 3), (34, 36, 38), np.uint8)
    cv2.rectangle(frame, (80, 60), (240, 180), (40, 165, 215), -1)
    return bytes(cv2.imencode(".jpg", frame)[1].tobytes())


async def approved(bank: Bank, committed: Database, settings: Settings) -> str:
    appraisal_id = await bank.new_appraisal(RING, CHAIN, amount="100000")
    storage = get_storage(settings)
    for item, karat in zip(await bank.items(appraisal_id), (Karat.K22, Karat.K24), strict=True):
        await complete_purity(
            bank, committed, storage, appraisal_id, item["id"], karat, evidence_jpeg()
        )
    url = f"{API}/appraisals/{appraisal_id}"
    valued = await bank.client.post(f"{url}/valuation", json={}, headers=bank.appraiser.headers)
    assert valued.status_code == 200, valued.text
    decided = await bank.client.post(
        f"{url}/approve", json={"comment": "checked"}, headers=bank.manager.headers
    )
    assert decided.status_code == 200, decided.text
    return appraisal_id


def admin_execute(database_urls: DatabaseUrls, sql: str, *params: object) -> None:
    """As the database owner: past the runtime role's append-only grants and RLS."""
    with psycopg.connect(libpq_dsn(database_urls.admin), autocommit=True) as connection:
        connection.execute(sql, params)


async def test_certificate_pdf_and_public_verification(
    live_bank: Bank, committed: Database, settings: Settings, database_urls: DatabaseUrls
) -> None:
    client = live_bank.client
    appraisal_id = await approved(live_bank, committed, settings)
    url = f"{API}/appraisals/{appraisal_id}/certificate"
    assert_problem(await client.get(url, headers=live_bank.manager.headers), 404)
    issued = await client.post(url, headers=live_bank.manager.headers)
    assert issued.status_code == 201, issued.text
    certificate = issued.json()
    again = await client.post(url, headers=live_bank.appraiser.headers)
    assert again.json()["number"] == certificate["number"]
    assert_problem(await client.post(url, headers=live_bank.other_appraiser.headers), 404)

    pdf = await client.get(certificate["download_url"])
    assert pdf.content.startswith(b"%PDF-")
    text = "".join(
        page.get_textpage().get_text_range() for page in pypdfium2.PdfDocument(pdf.content)
    )
    assert certificate["number"] in text
    assert "XXXXXX3210" in text or "3210" in text
    assert "98765" not in text

    verify = urllib.parse.urlsplit(certificate["verify_url"])
    page = await client.get(f"{verify.path}?{verify.query}")
    assert page.status_code == 200
    assert "Genuine" in page.text
    assert "Lakshmi Iyer" in page.text
    assert "98765" not in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]
    wrong = await client.get(f"{verify.path}?d={'0' * 64}")
    assert "Not verified" in wrong.text
    unknown = await client.get("/verify/certificates/TS-20260101-0123456789")
    assert unknown.status_code == 404
    assert_problem(await client.get("/verify/certificates/../../etc"), 404)

    # A record changed after issue no longer verifies, even with the QR code's digest.
    admin_execute(
        database_urls,
        "update appraisal_certificates "
        "set data = jsonb_set(data, '{total_value}', '\"999999.00\"') where number = %s",
        certificate["number"],
    )
    tampered = await client.get(f"{verify.path}?{verify.query}")
    assert "Not verified" in tampered.text


async def test_audit_chain_detects_a_tampered_event(
    live_bank: Bank, committed: Database, settings: Settings, database_urls: DatabaseUrls
) -> None:
    client = live_bank.client
    appraisal_id = await approved(live_bank, committed, settings)
    url = f"{API}/appraisals/{appraisal_id}/audit-chain"
    assert (await client.get(f"{url}/verify", headers=live_bank.manager.headers)).json()["valid"]

    # The application cannot rewrite history: the runtime role has no UPDATE or DELETE.
    async with committed.transaction(org_id=live_bank.tenant.org_id) as session:
        for sql in (
            "update appraisal_chain_events set action = 'x'",
            "delete from appraisal_chain_events",
        ):
            with pytest.raises(DBAPIError, match="permission denied"):
                async with session.begin_nested():
                    await session.execute(text(sql))

    # The owner can; the chain shows where.
    admin_execute(
        database_urls,
        "update appraisal_chain_events set data = jsonb_set(data, '{comment}', '\"approved\"') "
        "where appraisal_id = %s and action = 'appraisal.approved'",
        appraisal_id,
    )
    events = (await client.get(url, headers=live_bank.manager.headers)).json()
    approved_seq = next(e["seq"] for e in events if e["action"] == "appraisal.approved")
    result = (await client.get(f"{url}/verify", headers=live_bank.manager.headers)).json()
    assert result["valid"] is False
    assert result["first_broken_seq"] == approved_seq

    # Removing an event breaks the link of the next one.
    admin_execute(
        database_urls,
        "delete from appraisal_chain_events where appraisal_id = %s and seq = 2",
        appraisal_id,
    )
    result = (await client.get(f"{url}/verify", headers=live_bank.manager.headers)).json()
    assert result["first_broken_seq"] == 3
