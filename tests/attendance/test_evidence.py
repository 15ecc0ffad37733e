"""Marking from a class photo as a job: 202 and the job, progress events, the annotated
photo as evidence (who may download it), refusals that change nothing, Idempotency-Key."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import cv2
import httpx
import numpy as np
from sqlalchemy import func, select

from tests.attendance.conftest import (
    API,
    enrol,
    needs_corpus,
    person,
    photo,
    side_by_side,
)
from tests.conftest import Tenant, add_member, assert_problem, committed_tenant
from touchstone.attendance.evidence import AMBER, GREEN, RED, annotate
from touchstone.attendance.models import Evidence
from touchstone.attendance.schemas import RecognisedFace
from touchstone.core.config import Settings
from touchstone.core.db import Database
from touchstone.core.events import OutboxEvent
from touchstone.core.permissions import Role

ENROLLED, STRANGER = "deepface_person_02", "deepface_person_00"
Jobs = Callable[[], Awaitable[None]]


def _face(box: list[int], **named: object) -> RecognisedFace:
    values: dict[str, object] = {
        "person_id": None,
        "code": None,
        "full_name": None,
        "distance": None,
        "runner_up": None,
        "confidence": 0.0,
        "reason": "too_far",
    }
    values.update(named)
    return RecognisedFace(box=box, **values)  # type: ignore[arg-type]


def _mean_colour(image: np.ndarray, box: list[int]) -> tuple[int, int, int]:
    """The colour of a box's top edge (RGB)."""
    left, top, right, _ = box
    edge = image[top : top + 1, left + 5 : right - 5].reshape(-1, 3).mean(axis=0)
    return int(edge[0]), int(edge[1]), int(edge[2])


def test_the_annotation_names_only_recognised_faces() -> None:
    canvas = np.full((300, 600, 3), 200, np.uint8)
    known = _face(
        [20, 20, 150, 150],
        person_id="6f1e1d1e-0000-4000-8000-000000000001",
        code="SV001",
        full_name="Student SV001",
        reason="matched",
    )
    doubtful = _face([220, 20, 350, 150], doubtful=True, reason="ambiguous")
    stranger = _face([420, 20, 550, 150])
    jpeg = annotate(canvas, [known, doubtful, stranger])
    drawn = cv2.cvtColor(cv2.imdecode(np.frombuffer(jpeg, np.uint8), 1), cv2.COLOR_BGR2RGB)
    for face, colour in ((known, GREEN), (doubtful, AMBER), (stranger, RED)):
        seen = _mean_colour(drawn, face.box)
        assert all(abs(a - b) < 60 for a, b in zip(seen, colour, strict=True)), (seen, colour)


@needs_corpus
async def test_a_photo_is_marked_by_a_job_with_progress_and_annotated_evidence(
    live_client: httpx.AsyncClient,
    tenant: Tenant,
    committed: Database,
    settings: Settings,
    run_jobs: Jobs,
) -> None:
    client, headers = live_client, tenant.headers
    group_id = (await client.post(f"{API}/groups", headers=headers, json={"name": "7B"})).json()[
        "id"
    ]
    a = await person(client, tenant, "SV001")
    assert (await enrol(client, tenant, a, photo(f"{ENROLLED}/1.jpg"))).status_code == 201
    await client.post(f"{API}/groups/{group_id}/members", headers=headers, json={"person_ids": [a]})
    sessions = f"{API}/groups/{group_id}/sessions"
    session_id = (await client.post(sessions, headers=headers, json={"label": "P1"})).json()["id"]
    class_photo = side_by_side(f"{ENROLLED}/3.jpg", f"{STRANGER}/2.jpg")

    # Bad input is refused before anything is stored or queued.
    not_a_photo = await client.post(
        f"{API}/sessions/{session_id}/photos",
        headers=headers,
        files={"photo": ("class.jpg", b"GIF89a not a photo", "image/jpeg")},
    )
    assert_problem(not_a_photo, 422, "invalid_photo")
    other = await committed_tenant(committed, settings, client)
    elsewhere = await client.post(
        f"{API}/sessions/{session_id}/photos",
        headers=other.headers,
        files={"photo": ("class.jpg", class_photo, "image/jpeg")},
    )
    assert_problem(elsewhere, 404, "attendance_session_not_found")

    # The same Idempotency-Key replays the same job instead of queueing a second.
    keyed = {**headers, "Idempotency-Key": "class-photo-1"}
    sent = [
        await client.post(
            f"{API}/sessions/{session_id}/photos",
            headers=keyed,
            files={"photo": ("class.jpg", class_photo, "image/jpeg")},
        )
        for _ in range(2)
    ]
    assert [r.status_code for r in sent] == [202, 202]
    assert sent[0].json()["id"] == sent[1].json()["id"]
    assert sent[0].json()["status"] == "queued"
    await run_jobs()
    job = (await client.get(sent[0].headers["Location"], headers=headers)).json()
    assert (job["status"], job["progress"]) == ("succeeded", 100)
    result = job["result"]
    assert result["faces_detected"] == 2
    assert [m["person_id"] for m in result["marked"]] == [a]
    assert result["marked"][0]["liveness"] == "not_assessed"
    assert [f["person_id"] for f in result["unknown_faces"]] == [None]
    assert result["unknown_faces"][0]["full_name"] is None

    async with committed.transaction(org_id=tenant.org_id) as session:
        topics = list(
            await session.scalars(
                select(OutboxEvent.topic)
                .where(OutboxEvent.aggregate_id == session_id)
                .order_by(OutboxEvent.created_at)
            )
        )
        rows = await session.scalar(
            select(func.count()).select_from(Evidence).where(Evidence.org_id == tenant.org_id)
        )
    assert rows == 1  # the refused photo and the replay stored nothing
    assert topics.count("attendance.photo_progress") >= 2  # faces found, then described
    assert topics[-1] == "attendance.photo_marked"

    listed = await client.get(f"{API}/sessions/{session_id}/evidence", headers=headers)
    (evidence,) = listed.json()
    assert (evidence["status"], evidence["faces"], evidence["marked"]) == ("done", 2, 1)
    assert evidence["job_id"] == job["id"]
    original = await client.get(evidence["photo_url"])
    assert original.content == class_photo
    annotated = await client.get(evidence["annotated_url"])
    assert annotated.headers["content-type"] == "image/jpeg"
    drawn = cv2.imdecode(np.frombuffer(annotated.content, np.uint8), 1)
    # As analysed (longest side 1024 px), so the boxes of the marking fit it.
    assert drawn.shape[:2] == (491, 1024)
    box = result["marked"][0]["box"]
    assert box[2] <= 1024

    # Faces and names: for who may mark attendance, not for every reader nor another org.
    _, teacher = await add_member(client, tenant, Role.TEACHER)
    assert (
        await client.get(f"{API}/sessions/{session_id}/evidence", headers=teacher)
    ).status_code == 200
    _, viewer = await add_member(client, tenant, Role.VIEWER)
    refused = await client.get(f"{API}/sessions/{session_id}/evidence", headers=viewer)
    assert_problem(refused, 403)
    key_path = urlsplit(evidence["annotated_url"]).path
    assert_problem(await client.get(key_path, headers=viewer), 404)
    assert (await client.get(key_path, headers=teacher)).status_code == 200
    assert_problem(await client.get(f"{API}/jobs/{job['id']}", headers=viewer), 404)
    assert_problem(
        await client.get(f"{API}/sessions/{session_id}/evidence", headers=other.headers), 404
    )


async def test_a_photo_whose_pixels_cannot_be_decoded_fails_its_job_and_marks_nobody(
    live_client: httpx.AsyncClient, tenant: Tenant, committed: Database, run_jobs: Jobs
) -> None:
    """Its header passes the request's check; the job finds the pixels broken, fails for
    good (a second attempt cannot help) and leaves the evidence `failed`, saying why."""
    headers = tenant.headers
    group = await live_client.post(f"{API}/groups", headers=headers, json={"name": "8C"})
    sessions = f"{API}/groups/{group.json()['id']}/sessions"
    session_id = (await live_client.post(sessions, headers=headers, json={"label": "P2"})).json()[
        "id"
    ]
    noise = np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    broken = bytearray(cv2.imencode(".png", noise)[1].tobytes())
    pixels = broken.index(b"IDAT")
    broken[pixels + 20 : pixels + 60] = bytes(40)
    queued = await live_client.post(
        f"{API}/sessions/{session_id}/photos",
        headers=headers,
        files={"photo": ("class.png", bytes(broken), "image/png")},
    )
    assert queued.status_code == 202, queued.text
    await run_jobs()
    job = (await live_client.get(queued.headers["Location"], headers=headers)).json()
    assert (job["status"], job["attempts"]) == ("failed", 1)
    assert job["error"]["code"] == "invalid_photo"
    (evidence,) = (
        await live_client.get(f"{API}/sessions/{session_id}/evidence", headers=headers)
    ).json()
    assert (evidence["status"], evidence["error_code"]) == ("failed", "invalid_photo")
    assert evidence["annotated_url"] is None
    detail = (await live_client.get(f"{API}/sessions/{session_id}", headers=headers)).json()
    assert detail["present"] == []
    async with committed.transaction(org_id=tenant.org_id) as session:
        topics = list(
            await session.scalars(
                select(OutboxEvent.topic).where(OutboxEvent.aggregate_id == session_id)
            )
        )
    assert topics == ["attendance.photo_failed"]
