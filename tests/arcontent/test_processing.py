"""Processing the overlay video as a job, on the outside clips of ../shared/corpora/ar."""

from __future__ import annotations

import io

import av
import httpx
from sqlalchemy import select

from tests.arcontent.conftest import (
    API,
    Jobs,
    audit_actions,
    content,
    corpus,
    needs_corpus,
    project,
    upload,
)
from tests.conftest import Tenant, assert_problem, committed_tenant
from touchstone.core.config import Settings
from touchstone.core.db import Database
from touchstone.core.events.models import OutboxEvent

pytestmark = needs_corpus


async def test_a_video_becomes_two_phone_renditions_and_a_poster(
    live_client: httpx.AsyncClient,
    tenant: Tenant,
    committed: Database,
    settings: Settings,
    run_jobs: Jobs,
) -> None:
    client, headers = live_client, tenant.headers
    content_id = await content(client, tenant, await project(client, tenant))
    other = await committed_tenant(committed, settings, client)
    clip = corpus("videos/mov_bbb.mp4")
    assert_problem(await upload(client, other, content_id, "video", clip), 404)
    assert_problem(await upload(client, tenant, content_id, "video", b"not a video at all"), 415)

    keyed = {**headers, "Idempotency-Key": "overlay-1"}
    sent = [
        await client.put(
            f"{API}/contents/{content_id}/video",
            headers=keyed,
            files={"file": ("clip.mp4", clip, "video/mp4")},
        )
        for _ in range(2)
    ]
    assert [r.status_code for r in sent] == [202, 202]
    queued = sent[0]
    assert sent[1].json()["id"] == queued.json()["id"]
    assert sent[1].headers["Location"] == queued.headers["Location"]
    before = (await client.get(f"{API}/contents/{content_id}", headers=headers)).json()
    assert before["processing"] == "queued"
    assert before["job_id"] == queued.json()["id"]
    await run_jobs()

    job = (await client.get(queued.headers["Location"], headers=headers)).json()
    assert (job["status"], job["progress"]) == ("succeeded", 100)
    detail = (await client.get(f"{API}/contents/{content_id}", headers=headers)).json()
    assert detail["processing"] == "ready"
    assert set(detail["renditions"]) == {"main", "small", "poster"}
    for name in ("main", "small"):
        facts = detail["renditions"][name]["facts"]
        assert (facts["codec"], facts["audio"]) == ("h264", "aac")
        assert max(facts["width"], facts["height"]) <= (1280 if name == "main" else 480)
        data = (await client.get(detail["renditions"][name]["url"])).content
        assert data.index(b"moov") < data.index(b"mdat")  # faststart: the index comes first
        with av.open(io.BytesIO(data)) as played:
            assert played.streams.video[0].codec_context.name == "h264"
            assert played.streams.audio[0].codec_context.name == "aac"
            assert abs(float(played.duration or 0) / av.time_base - 10.03) < 0.2
    poster = (await client.get(detail["renditions"]["poster"]["url"])).content
    assert poster.startswith(b"\xff\xd8\xff")
    assert (await client.get(detail["video"]["url"])).content == clip

    async with committed.transaction(org_id=tenant.org_id) as session:
        topics = list(
            await session.scalars(
                select(OutboxEvent.topic)
                .where(OutboxEvent.aggregate_id == content_id)
                .order_by(OutboxEvent.id)
            )
        )
    assert topics[0] == "arcontent.processing_queued"
    assert "arcontent.processing_progress" in topics
    assert topics[-1] == "arcontent.processed"
    assert await audit_actions(committed, tenant, content_id) == [
        "arcontent.content.created",
        "arcontent.content.video_set",
    ]


async def test_a_video_too_long_fails_with_the_reason_and_is_reprocessed_in_one_call(
    live_client: httpx.AsyncClient, tenant: Tenant, run_jobs: Jobs
) -> None:
    client, headers = live_client, tenant.headers
    content_id = await content(client, tenant, await project(client, tenant))
    long_clip = corpus("videos/one-by-one-person-detection.mp4")  # 139 s
    queued = await upload(client, tenant, content_id, "video", long_clip)
    assert queued.status_code == 202, queued.text
    await run_jobs()
    job = (await client.get(queued.headers["Location"], headers=headers)).json()
    assert job["status"] == "failed"
    assert job["attempts"] == 1  # a refused video is not tried again
    detail = (await client.get(f"{API}/contents/{content_id}", headers=headers)).json()
    assert detail["processing"] == "failed"
    assert "139.4 s" in detail["failure_reason"]
    assert detail["renditions"] == {}

    again = await client.post(f"{API}/contents/{content_id}/reprocess", headers=headers)
    assert again.status_code == 202, again.text
    assert again.json()["id"] != queued.json()["id"]
    assert_problem(
        await client.post(f"{API}/contents/{content_id}/reprocess", headers=headers), 409
    )
    await run_jobs()
    detail = (await client.get(f"{API}/contents/{content_id}", headers=headers)).json()
    assert detail["processing"] == "failed"

    short = await upload(client, tenant, content_id, "video", corpus("videos/asl_thanks.mkv"))
    assert short.status_code == 202, short.text
    await run_jobs()
    detail = (await client.get(f"{API}/contents/{content_id}", headers=headers)).json()
    assert (detail["processing"], detail["failure_reason"]) == ("ready", None)
    assert detail["renditions"]["main"]["facts"]["audio"] is None

    earlier = detail["renditions"]["main"]["url"]
    assert (await client.get(earlier)).status_code == 200
    again = await client.post(f"{API}/contents/{content_id}/reprocess", headers=headers)
    assert again.status_code == 202, again.text
    await run_jobs()
    detail = (await client.get(f"{API}/contents/{content_id}", headers=headers)).json()
    assert detail["processing"] == "ready"
    assert (await client.get(earlier)).status_code == 404  # the earlier renditions are gone
    assert (await client.get(detail["renditions"]["main"]["url"])).status_code == 200


async def test_a_content_without_video_is_not_reprocessed(
    live_client: httpx.AsyncClient, tenant: Tenant
) -> None:
    content_id = await content(live_client, tenant, await project(live_client, tenant))
    refused = await live_client.post(
        f"{API}/contents/{content_id}/reprocess", headers=tenant.headers
    )
    assert_problem(refused, 409, "ar_not_ready")


async def test_a_video_replaced_before_processing_leaves_the_content_to_the_new_one(
    live_client: httpx.AsyncClient, tenant: Tenant, run_jobs: Jobs
) -> None:
    client, headers = live_client, tenant.headers
    content_id = await content(client, tenant, await project(client, tenant))
    first = await upload(client, tenant, content_id, "video", corpus("videos/mov_bbb.mp4"))
    second = await upload(client, tenant, content_id, "video", corpus("videos/asl_thanks.mkv"))
    assert [first.status_code, second.status_code] == [202, 202]
    await run_jobs()
    old = (await client.get(first.headers["Location"], headers=headers)).json()
    assert old["result"] == {"content_id": content_id, "superseded": True}
    detail = (await client.get(f"{API}/contents/{content_id}", headers=headers)).json()
    assert (detail["processing"], detail["job_id"]) == ("ready", second.json()["id"])
    assert detail["renditions"]["main"]["facts"]["height"] == 480  # the Matroska clip's
