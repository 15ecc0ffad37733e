"""Analyses with the offline extractive engine: a job of checkpointed steps that resumes
where it stopped, a report whose every citation holds, served as JSON, Markdown and HTML."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy import select

from tests.conftest import Tenant, assert_problem, committed_tenant
from tests.research.conftest import API, Jobs, added
from touchstone.core.config import Settings
from touchstone.core.db import Database
from touchstone.core.events import OutboxEvent
from touchstone.research import engine, pipeline
from touchstone.research.models import Analysis

NUTS = b"""# Self-locking nuts

Self-locking nuts are used where a connection is subject to severe vibration.

## Elastic stop nuts

The elastic stop nut is a standard nut with a fiber locking collar.
Elastic stop nuts must not be used where the temperature exceeds 250 degrees Fahrenheit.
They may be used again if the fiber collar still grips the bolt.
"""
DUCKS = b"""<html><body><nav>Home | Shop</nav><h1>Ducks</h1>
<p>Ducks are omnivores that eat water plants, insects and small fish.</p>
<p>A male duck is called a drake and a female duck is called a hen.</p>
<p>Ducks sometimes <b>"dabble"</b> &amp; upend to feed <script>alert(1)</script>.</p>
</body></html>"""


async def _analysis(
    client: httpx.AsyncClient, tenant: Tenant, body: dict[str, Any]
) -> httpx.Response:
    return await client.post(f"{API}/analyses", headers=tenant.headers, json=body)


async def test_an_analysis_writes_a_cited_report_whose_citations_hold(
    live_client: httpx.AsyncClient,
    tenant: Tenant,
    committed: Database,
    settings: Settings,
    run_jobs: Jobs,
) -> None:
    client, headers = live_client, tenant.headers
    nuts = await added(client, tenant, "nuts.md", NUTS, run_jobs)
    ducks = await added(client, tenant, "ducks.html", DUCKS, run_jobs)
    started = await _analysis(
        client, tenant, {"question": "At what temperature must elastic stop nuts not be used?"}
    )
    assert started.status_code == 202, started.text
    analysis = started.json()
    assert (analysis["status"], analysis["step"], analysis["source_ids"]) == (
        "queued",
        "plan",
        None,
    )
    assert_problem(
        await client.get(f"{API}/analyses/{analysis['id']}/report", headers=headers),
        409,
        "report_not_ready",
    )
    await run_jobs()
    job = (await client.get(started.headers["Location"], headers=headers)).json()
    assert (job["status"], job["progress"]) == ("succeeded", 100), job["error"]
    done = (await client.get(f"{API}/analyses/{analysis['id']}", headers=headers)).json()
    assert (done["status"], done["step"]) == ("done", "done")

    report = (await client.get(f"{API}/analyses/{analysis['id']}/report", headers=headers)).json()
    assert "250 degrees Fahrenheit" in report["sentences"][0]["text"]
    assert report["checks"]["failed"] == 0
    assert report["checks"]["held"] == report["checks"]["citations"] >= 1
    for sentence in report["sentences"]:
        for citation in sentence["citations"]:
            passages = await client.get(citation_link(report, citation), headers=headers)
            (passage,) = passages.json()["items"]
            assert passage["id"] == citation["passage_id"]
            assert passage["text"][citation["start"] : citation["end"]] == sentence["text"]
            offset = citation["char_start"] - passage["char_start"]
            assert offset == citation["start"]
    assert report["sources"][0]["id"] == nuts["id"]

    markdown = await client.get(f"{API}/analyses/{analysis['id']}/report.md", headers=headers)
    assert markdown.headers["content-type"].startswith("text/markdown")
    assert "250 degrees Fahrenheit" in markdown.text
    assert "## Sources" in markdown.text

    # Progress went out as events, one per step, the last saying it is done.
    async with committed.transaction(org_id=tenant.org_id) as session:
        events = list(
            await session.scalars(
                select(OutboxEvent)
                .where(OutboxEvent.aggregate_id == analysis["id"])
                .order_by(OutboxEvent.created_at)
            )
        )
    assert [e.payload["step"] for e in events] == list(engine.STEPS)
    assert events[-1].topic == "research.analysis_done"

    # Only the sources named; the HTML report escapes what the sources say.
    named = await _analysis(
        client, tenant, {"question": "What do ducks eat?", "source_ids": [ducks["id"]]}
    )
    await run_jobs()
    page = await client.get(f"{API}/analyses/{named.json()['id']}/report.html", headers=headers)
    assert page.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert "water plants" in page.text
    assert "<script>" not in page.text
    json_report = (
        await client.get(f"{API}/analyses/{named.json()['id']}/report", headers=headers)
    ).json()
    assert {s["id"] for s in json_report["sources"]} == {ducks["id"]}

    # Another tenant: 404 on every id, and its own analysis may not name our sources.
    other = await committed_tenant(committed, settings, client)
    for suffix in ("", "/report", "/report.md", "/report.html"):
        url = f"{API}/analyses/{analysis['id']}{suffix}"
        assert_problem(await client.get(url, headers=other.headers), 404)
    refused = await _analysis(
        client, other, {"question": "What do ducks eat?", "source_ids": [ducks["id"]]}
    )
    assert_problem(refused, 404, "research_source_not_found")


def citation_link(report: dict[str, Any], citation: dict[str, Any]) -> str:
    (source,) = [s for s in report["sources"] if s["id"] == citation["source_id"]]
    (cited,) = [p for p in source["passages"] if p["id"] == citation["passage_id"]]
    link: str = cited["link"]
    return link


async def test_a_rerun_resumes_at_the_step_it_was_in(
    live_client: httpx.AsyncClient, tenant: Tenant, committed: Database, run_jobs: Jobs
) -> None:
    """The steps before the one a worker died in are not run again: their stored outputs
    are used as they are (here: a retrieval narrowed by hand to one passage)."""
    client, headers = live_client, tenant.headers
    await added(client, tenant, "nuts.md", NUTS, run_jobs)
    await added(client, tenant, "ducks.html", DUCKS, run_jobs)
    started = await _analysis(client, tenant, {"question": "What do ducks and nuts have?"})
    await run_jobs()
    analysis_id = uuid.UUID(started.json()["id"])
    async with committed.transaction(org_id=tenant.org_id) as session:
        analysis = await session.get(Analysis, analysis_id)
        assert analysis is not None
        retrieved = analysis.state["retrieve"]["passages"]
        assert len({p["source_id"] for p in retrieved}) == 2
        kept = [p for p in retrieved if p["source_id"] != retrieved[0]["source_id"]][:1]
        # As a worker that died in `select` leaves it: the earlier steps stored, status running.
        analysis.state = {"plan": analysis.state["plan"], "retrieve": {"passages": kept}}
        analysis.step, analysis.status, analysis.report = "select", "running", None

    steps: list[tuple[int, str]] = []

    async def progress(percent: int, message: str) -> None:
        steps.append((percent, message))

    await pipeline.run_analysis(committed, tenant.org_id, analysis_id, progress)
    assert [m for _, m in steps] == ["select done", "write done", "check done"]
    report = (await client.get(f"{API}/analyses/{analysis_id}/report", headers=headers)).json()
    cited = {c["passage_id"] for s in report["sentences"] for c in s["citations"]}
    assert cited == {kept[0]["id"]}


async def test_bad_analyses_are_refused_and_change_nothing(
    live_client: httpx.AsyncClient, tenant: Tenant, committed: Database
) -> None:
    for body in (
        {"question": ""},
        {"question": "ok?", "max_sentences": 0},
        {"question": "ok?", "max_sentences": 1000},
        {"question": "ok?", "source_ids": []},
        {"question": "ok?", "source_ids": ["not-a-uuid"]},
        {"question": "ok?", "engine": "gpt"},
        {"question": "ok?", "max_sentences": "5"},
        {"question": "ok?", "max_sentences": True},
    ):
        assert_problem(await _analysis(live_client, tenant, body), 422)
    assert_problem(
        await _analysis(
            live_client, tenant, {"question": "ok?", "source_ids": [str(uuid.uuid4())]}
        ),
        404,
        "research_source_not_found",
    )
    async with committed.transaction(org_id=tenant.org_id) as session:
        assert list(await session.scalars(select(Analysis.id))) == []


def test_the_check_removes_a_sentence_its_passage_does_not_hold() -> None:
    passage = {"source_id": "s", "ordinal": 0, "page": None, "char_start": 0, "text": "A b c d."}
    draft = {
        "question": "q",
        "sentences": [
            {"text": "A b c d.", "citations": [_citation(0, 8)]},
            {"text": "Not there at all.", "citations": [_citation(0, 8)]},
        ],
    }
    checked = engine.check(draft, {"p": passage}, {"s"}, {"s": "Title"})
    assert [s["text"] for s in checked["sentences"]] == ["A b c d."]
    assert checked["checks"] == {"citations": 2, "held": 1, "failed": 1, "sentences_removed": 1}
    outside = engine.check(draft, {"p": passage}, {"other"}, {})
    assert outside["sentences"] == []


def _citation(start: int, end: int) -> dict[str, Any]:
    return {"source_id": "s", "passage_id": "p", "start": start, "end": end}


def test_the_html_report_escapes_the_sources_text() -> None:
    report = {
        "question": "<b>q</b>",
        "sentences": [
            {"text": "x <script>alert(1)</script> & y", "citations": [{"source_id": "s"}]}
        ],
        "sources": [
            {
                "id": "s",
                "title": '"><img src=x>',
                "passages": [{"id": "p", "ordinal": 0, "page": None, "link": "/x?a=1&b=2"}],
            }
        ],
    }
    page = engine.html_document(report)
    assert "<script>" not in page
    assert "<img" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; y" in page
    assert 'href="/x?a=1&amp;b=2"' in page
