"""Sources through the API: sniffed types, limits, duplicates, extraction as a job, passages,
keyword search, deletion; another tenant's ids are 404 and bad input changes nothing."""

from __future__ import annotations

import asyncio
import io

import httpx
import pypdfium2 as pdfium
from sqlalchemy import func, select

from tests.conftest import Tenant, assert_problem, committed_tenant
from tests.research.conftest import API, DOCS, Jobs, added, needs_corpus, upload
from touchstone.core.config import Settings
from touchstone.core.db import Database
from touchstone.core.events import OutboxEvent
from touchstone.research.models import Passage, Source

MARKDOWN = b"""# Elastic stop nuts

The elastic stop nut is a standard nut with the height increased to hold a fiber collar.

## Temperature

Elastic stop nuts must not be used where the temperature exceeds 250 degrees Fahrenheit.
"""


@needs_corpus
async def test_a_pdf_is_read_into_passages_with_pages_headings_and_offsets(
    live_client: httpx.AsyncClient, tenant: Tenant, committed: Database, run_jobs: Jobs
) -> None:
    client, headers = live_client, tenant.headers
    data = (DOCS / "docling" / "amt_handbook_sample.pdf").read_bytes()
    source = await added(client, tenant, "handbook.pdf", data, run_jobs)
    assert (source["kind"], source["pages"], source["origin"]) == ("pdf", 1, "upload")
    assert source["title"] == "handbook.pdf"
    assert source["passages"] >= 5
    page = (
        await client.get(f"{API}/sources/{source['id']}/passages?limit=100", headers=headers)
    ).json()
    assert page["total"] == source["passages"]
    passages = page["items"]
    assert [p["ordinal"] for p in passages] == list(range(len(passages)))
    assert {p["page"] for p in passages} == {1}
    assert "Elastic Stop Nut" in {p["heading"] for p in passages}
    assert all(p["char_end"] - p["char_start"] == len(p["text"]) for p in passages)

    # An encrypted PDF is refused at upload (the corpus's sample, password "test").
    locked = (DOCS / "pdfplumber" / "password-example.pdf").read_bytes()
    assert_problem(await upload(client, tenant, "locked.pdf", locked), 422, "password_required")

    # The same bytes again: 409 naming the first, nothing stored.
    again = await upload(client, tenant, "copy.pdf", data)
    problem = assert_problem(again, 409, "duplicate_source")
    assert problem["source_id"] == source["id"]

    found = await client.get(f"{API}/search", params={"q": "fiber lock nut"}, headers=headers)
    hits = found.json()
    assert hits["total"] >= 1
    assert hits["items"][0]["source_title"] == "handbook.pdf"
    ranks = [h["rank"] for h in hits["items"]]
    assert ranks == sorted(ranks, reverse=True)
    async with committed.transaction(org_id=tenant.org_id) as session:
        count = await session.scalar(select(func.count()).select_from(Source))
        topics = list(await session.scalars(select(OutboxEvent.topic)))
    assert count == 1
    assert "research.source_ready" in topics


async def test_pasted_markdown_and_html_sources_are_searchable_and_deletable(
    live_client: httpx.AsyncClient,
    tenant: Tenant,
    committed: Database,
    settings: Settings,
    run_jobs: Jobs,
) -> None:
    client, headers = live_client, tenant.headers
    notes = await added(client, tenant, "nuts.md", MARKDOWN, run_jobs)
    assert notes["kind"] == "markdown"
    page = b"<html><body><nav>Menu</nav><h1>Ducks</h1><p>Ducks eat water plants.</p></body></html>"
    duck = await added(client, tenant, "duck.html", page, run_jobs)
    assert duck["kind"] == "html"
    pasted = await client.post(
        f"{API}/text-sources",
        headers=headers,
        json={"title": "Pasted", "text": "Swans are larger than ducks and geese."},
    )
    assert pasted.status_code == 202, pasted.text
    assert pasted.headers["Location"].startswith("/api/v1/jobs/")
    await run_jobs()
    listed = (await client.get(f"{API}/sources", headers=headers)).json()
    assert listed["total"] == 3
    assert {s["origin"] for s in listed["items"]} == {"upload", "pasted"}

    hits = (await client.get(f"{API}/search?q=temperature", headers=headers)).json()
    assert [h["heading"] for h in hits["items"]] == ["Temperature"]
    only = await client.get(
        f"{API}/search", params={"q": "ducks", "source_id": duck["id"]}, headers=headers
    )
    assert [h["source_id"] for h in only.json()["items"]] == [duck["id"]]
    assert "Menu" not in only.json()["items"][0]["text"]

    # Another tenant sees none of it.
    other = await committed_tenant(committed, settings, client)
    for path in (f"/sources/{duck['id']}", f"/sources/{duck['id']}/passages"):
        assert_problem(await client.get(f"{API}{path}", headers=other.headers), 404)
    assert (await client.get(f"{API}/search?q=ducks", headers=other.headers)).json()["total"] == 0
    assert_problem(await client.delete(f"{API}/sources/{duck['id']}", headers=other.headers), 404)

    deleted = await client.delete(f"{API}/sources/{duck['id']}", headers=headers)
    assert deleted.status_code == 204
    assert_problem(await client.get(f"{API}/sources/{duck['id']}", headers=headers), 404)
    async with committed.transaction(org_id=tenant.org_id) as session:
        left = await session.scalar(
            select(func.count()).select_from(Passage).where(Passage.source_id == duck["id"])
        )
    assert left == 0


async def test_bad_sources_are_refused_and_change_nothing(
    live_client: httpx.AsyncClient, tenant: Tenant, committed: Database
) -> None:
    client, headers = live_client, tenant.headers
    assert_problem(
        await upload(client, tenant, "x.png", b"\x89PNG\r\n\x1a\n" + b"0" * 100),
        415,
        "unsupported_source_type",
    )
    assert_problem(await upload(client, tenant, "x.txt", b"\xff\xfe\x00bad"), 415)
    assert_problem(await upload(client, tenant, "x.pdf", b"%PDF-1.7 broken"), 422, "corrupt_pdf")
    assert_problem(await upload(client, tenant, "x.txt", b"   \n  "), 415)
    for body in (
        {"title": "", "text": "x"},
        {"title": "t", "text": ""},
        {"title": "t", "text": "x", "org_id": str(tenant.org_id)},
        {"title": "t", "text": "nul \x00"},
    ):
        response = await client.post(f"{API}/text-sources", headers=headers, json=body)
        assert_problem(response, 422)
    assert_problem(await client.get(f"{API}/search?q=", headers=headers), 422)
    assert_problem(await client.get(f"{API}/sources?sort=secret", headers=headers), 422)
    async with committed.transaction(org_id=tenant.org_id) as session:
        assert await session.scalar(select(func.count()).select_from(Source)) == 0


async def test_the_same_bytes_sent_twice_at_once_make_one_source(
    live_client: httpx.AsyncClient, tenant: Tenant, committed: Database
) -> None:
    sent = await asyncio.gather(
        *(upload(live_client, tenant, f"notes{n}.md", MARKDOWN) for n in range(2))
    )
    assert sorted(r.status_code for r in sent) == [202, 409]
    async with committed.transaction(org_id=tenant.org_id) as session:
        assert await session.scalar(select(func.count()).select_from(Source)) == 1


def _blank_pdf() -> bytes:
    """A page with no text layer, as a scanned page is to a reader without OCR."""
    document = pdfium.PdfDocument.new()
    document.new_page(595, 842)
    buffer = io.BytesIO()
    document.save(buffer)
    document.close()
    return buffer.getvalue()


async def test_a_pdf_without_text_ends_failed_and_says_why(
    live_client: httpx.AsyncClient, tenant: Tenant, run_jobs: Jobs
) -> None:
    sent = await upload(live_client, tenant, "scan.pdf", _blank_pdf())
    assert sent.status_code == 202, sent.text
    await run_jobs()
    job = (await live_client.get(sent.headers["Location"], headers=tenant.headers)).json()
    assert (job["status"], job["error"]["code"]) == ("failed", "empty_source")
    source = await live_client.get(f"{API}/sources/{sent.json()['id']}", headers=tenant.headers)
    assert (source.json()["status"], source.json()["error_code"]) == ("failed", "empty_source")
    assert source.json()["pages"] == 1
