"""Certificates and the tamper-evident trail, against committed data: the public page and
the owner's connection (which can change rows the application cannot) are other sessions."""

from __future__ import annotations

import base64
import hashlib
import html
import re
import urllib.parse

import cv2
import httpx
import numpy as np
import psycopg
import pypdfium2
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from tests.appraisal.conftest import API, CHAIN, RING, Bank, complete_purity, make_bank
from tests.conftest import assert_problem, committed_tenant
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


def frames_of_a_test(shade: int) -> dict[str, bytes]:
    """Three distinct evidence frames, as a live test keeps them."""
    frames = {}
    for offset, name in enumerate(("rubbing_confirmed", "acid_applied", "result")):
        frame = np.full((240, 320, 3), (34, 36, 38), np.uint8)
        cv2.circle(frame, (160, 120), 40 + 20 * offset, (40, 165 - shade, 215), -1)
        frames[name] = bytes(cv2.imencode(".jpg", frame)[1].tobytes())
    return frames


NEEDLES = (Karat.K18, Karat.K22)


async def approved_with_needles(
    bank: Bank, committed: Database, settings: Settings
) -> tuple[str, dict[str, bytes]]:
    """The ring tested against needles of 18K and 22K (with all three frames), the chain
    read absolutely after the needles were taken off the setting; valued and approved."""
    client, needles = bank.client, f"{API}/appraisal-settings/reference-needles"
    appraisal_id = await bank.new_appraisal(RING, CHAIN, amount="100000")
    ring, chain = await bank.items(appraisal_id)
    storage = get_storage(settings)
    frames = frames_of_a_test(0)
    set_needles = await client.put(needles, json={"karats": ["18K", "22K"]}, headers=bank.admin)
    assert set_needles.status_code == 200, set_needles.text
    await complete_purity(
        bank, committed, storage, appraisal_id, ring["id"], Karat.K22, frames, NEEDLES
    )
    cleared = await client.put(needles, json={"karats": []}, headers=bank.admin)
    assert cleared.status_code == 200, cleared.text
    await complete_purity(
        bank, committed, storage, appraisal_id, chain["id"], Karat.K24, evidence_jpeg()
    )
    url = f"{API}/appraisals/{appraisal_id}"
    valued = await client.post(f"{url}/valuation", json={}, headers=bank.appraiser.headers)
    assert valued.status_code == 200, valued.text
    decided = await client.post(
        f"{url}/approve", json={"comment": "checked"}, headers=bank.manager.headers
    )
    assert decided.status_code == 200, decided.text
    return appraisal_id, frames


def page_text(page: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


async def test_the_certificate_answers_an_auditor_and_links_to_public_url(
    live_bank: Bank, committed: Database, settings: Settings
) -> None:
    client = live_bank.client
    appraisal_id, frames = await approved_with_needles(live_bank, committed, settings)
    item_ids = [item["id"] for item in await live_bank.items(appraisal_id)]
    url = f"{API}/appraisals/{appraisal_id}/certificate"
    # Whatever host the request names, the printed link starts at PUBLIC_URL.
    spoofed = {**live_bank.manager.headers, "Host": "evil.example", "X-Forwarded-Host": "x.test"}
    issued = await client.post(url, headers=spoofed)
    assert issued.status_code == 201, issued.text
    certificate = issued.json()
    verify_url = certificate["verify_url"]
    assert verify_url.startswith(f"{settings.link_base}/verify/certificates/")
    read = await client.get(url, headers={**live_bank.appraiser.headers, "Host": "evil.example"})
    assert read.json()["verify_url"] == verify_url

    pdf = (await client.get(certificate["download_url"])).content
    text = " ".join(
        "".join(page.get_textpage().get_text_range() for page in pypdfium2.PdfDocument(pdf)).split()
    )
    assert verify_url in text.replace(" ", "") or verify_url in text
    assert "evil.example" not in text
    expected = [
        "compared with reference needles of 18K, 22K",
        "absolute reading (no reference needles), lower confidence",
        "classical (classical: test)",
        "rubbing 2.5 s, acid 3.5 s",
        "the ornament's streak kept 47.0% under the acid; "
        "the needles' streaks kept 18K 10.0%, 22K 45.0%",
        "Conf. %: how sure the live touchstone test was",
        "Item 1: rubbing confirmed",
        "Item 1: acid applied",
        "Item 1: result",
        "Item 2: result",
        "ID document Aadhaar XXXXXXXX9012",
        "Purity accepted for lending",
        "Item 1: 22K jewellery accepted",
        "Role Branch manager",
        "Signature of the approving manager",
    ]
    for shown in expected:
        assert shown in text, shown
    for hidden in [*item_ids, "karat_accepted", "aadhaar "]:
        assert hidden not in text

    verify = urllib.parse.urlsplit(verify_url)
    page = await client.get(f"{verify.path}?{verify.query}")
    assert page.status_code == 200
    assert "img-src data:" in page.headers["content-security-policy"]
    shown_text = page_text(page.text)
    for shown in expected[:-1]:  # the signature line is for paper
        assert shown in shown_text, shown
    issued_on_paper = re.search(r"Issued (\d\d \w{3} \d{4} \d\d:\d\d \S+)", text)
    assert issued_on_paper is not None
    assert f"Issued {issued_on_paper.group(1)}" in shown_text
    images = [
        base64.b64decode(source)
        for source in re.findall(r'src="data:image/jpeg;base64,([^"]+)"', page.text)
    ]
    assert images[:3] == [frames["rubbing_confirmed"], frames["acid_applied"], frames["result"]]
    assert len(images) == 4
    for image in images:
        assert hashlib.sha256(image).hexdigest() in page.text


NOT_SHOWN = ("Lakshmi", "Iyer", "3210", "9012", "₹", "22K", "24K", "Branch MAIN", "<img")


async def test_without_the_right_digest_the_page_says_not_verified_and_nothing_else(
    live_bank: Bank,
    live_client: httpx.AsyncClient,
    committed: Database,
    settings: Settings,
) -> None:
    client = live_bank.client
    appraisal_id = await approved(live_bank, committed, settings)
    url = f"{API}/appraisals/{appraisal_id}/certificate"
    certificate = (await client.post(url, headers=live_bank.manager.headers)).json()
    path = urllib.parse.urlsplit(certificate["verify_url"]).path
    other = await make_bank(live_client, await committed_tenant(committed, settings, live_client))
    other_id = await approved(other, committed, settings)
    other_url = f"{API}/appraisals/{other_id}/certificate"
    theirs = (await client.post(other_url, headers=other.manager.headers)).json()
    assert_problem(await client.get(other_url, headers=live_bank.manager.headers), 404)

    digest = certificate["digest"]
    refused = {
        "missing": path,
        "empty": f"{path}?d=",
        "wrong": f"{path}?d={'0' * 64}",
        "one character off": f"{path}?d={digest[:-1]}{'0' if digest[-1] != '0' else '1'}",
        "upper case": f"{path}?d={digest.upper()}",
        "not ASCII": f"{path}?d={urllib.parse.quote('é' * 64)}",
        "another org's digest": f"{path}?d={theirs['digest']}",
    }
    for case, target in refused.items():
        page = await client.get(target)
        assert page.status_code == 200, case
        assert "Not verified" in page.text, case
        for hidden in (*NOT_SHOWN, live_bank.tenant.slug, digest):
            assert hidden not in page.text, (case, hidden)
    genuine = await client.get(f"{path}?d={digest}")
    assert "Genuine" in genuine.text
    assert "Lakshmi Iyer" in genuine.text
    # The other org's certificate opens with its own digest only.
    their_path = urllib.parse.urlsplit(theirs["verify_url"]).path
    assert "Not verified" in (await client.get(f"{their_path}?d={digest}")).text
    assert "Genuine" in (await client.get(f"{their_path}?d={theirs['digest']}")).text
