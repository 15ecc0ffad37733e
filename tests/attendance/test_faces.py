"""Enrolment, open-set recognition and marking a session, on the faces corpus's development
identities (`bench.faces`): person_02 and person_06 are enrolled, person_00 is a stranger."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Awaitable, Callable

import cv2
import httpx
import numpy as np

from tests.attendance.conftest import (
    API,
    enrol,
    jpeg,
    mark_photo,
    needs_corpus,
    person,
    photo,
    side_by_side,
)
from tests.conftest import Tenant, assert_problem, committed_tenant
from tests.security.world import PNG
from touchstone.attendance.matching import decide
from touchstone.core.config import Settings
from touchstone.core.db import Database

Jobs = Callable[[], Awaitable[None]]

ENROLLED_A, ENROLLED_B, STRANGER = "deepface_person_02", "deepface_person_06", "deepface_person_00"


def _png_declaring(width: int, height: int) -> bytes:
    """A PNG header declaring `width` x `height` pixels, with no pixels behind it."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body).to_bytes(4, "big")
        return len(body).to_bytes(4, "big") + kind + body + crc

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


def test_a_name_needs_a_close_face_and_a_clear_margin() -> None:
    assert decide([("a", 0.30), ("a", 0.5), ("b", 0.62)], 0.55, 0.05).person == "a"
    assert decide([("a", 0.58)], 0.55, 0.05).reason == "too_far"
    ambiguous = decide([("a", 0.40), ("b", 0.43)], 0.55, 0.05)
    assert (ambiguous.person, ambiguous.reason) == (None, "ambiguous")
    assert decide([], 0.55, 0.05).reason == "no_enrolled_faces"


async def test_enrolment_without_consent_is_refused(
    client: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    someone = await person(client, tenant_a, "SV001", consent=False)
    assert_problem(await enrol(client, tenant_a, someone, PNG), 409, "consent_required")


async def test_each_refusal_names_its_gate(client: httpx.AsyncClient, tenant_a: Tenant) -> None:
    someone = await person(client, tenant_a, "SV001")
    not_an_image = await enrol(client, tenant_a, someone, b"\xff\xd8 not a jpeg")
    assert_problem(not_an_image, 422, "invalid_photo")
    large = await enrol(client, tenant_a, someone, _png_declaring(10_000, 5_000))
    assert "10000x5000" in assert_problem(large, 422, "invalid_photo")["detail"]
    huge = await enrol(client, tenant_a, someone, _png_declaring(30_000, 30_000))
    assert "too many pixels" in assert_problem(huge, 422, "invalid_photo")["detail"]
    blank = await enrol(client, tenant_a, someone, jpeg(np.full((400, 400, 3), 128, np.uint8)))
    assert assert_problem(blank, 422, "enrolment_refused")["gate"] == "face_count"


@needs_corpus
async def test_quality_gates_on_real_photos(client: httpx.AsyncClient, tenant_a: Tenant) -> None:
    someone = await person(client, tenant_a, "SV001")
    clean = cv2.imdecode(np.frombuffer(photo(f"{ENROLLED_A}/1.jpg"), np.uint8), 1)
    refusals = {
        "blur": cv2.GaussianBlur(clean, (0, 0), 6),
        "lighting": (clean * 0.15).astype(np.uint8),
        "face_size": cv2.resize(clean, None, fx=0.22, fy=0.22),
        "face_count": np.hstack([clean, clean]),
    }
    for gate, image in refusals.items():
        refused = await enrol(client, tenant_a, someone, jpeg(image))
        assert assert_problem(refused, 422, "enrolment_refused")["gate"] == gate, gate
    accepted = await enrol(client, tenant_a, someone, photo(f"{ENROLLED_A}/1.jpg"))
    assert accepted.status_code == 201, accepted.text
    assert accepted.json()["quality"]["sharpness"] > 40
    faces = await client.get(f"{API}/people/{someone}/faces", headers=tenant_a.headers)
    assert [f["id"] for f in faces.json()] == [accepted.json()["id"]]
    assert "embedding" not in faces.json()[0]
    face_path = f"{API}/people/{someone}/faces/{accepted.json()['id']}"
    assert (await client.delete(face_path, headers=tenant_a.headers)).status_code == 204
    assert_problem(await client.delete(face_path, headers=tenant_a.headers), 404)


@needs_corpus
async def test_a_class_photo_marks_members_and_lists_strangers(
    live_client: httpx.AsyncClient,
    tenant: Tenant,
    committed: Database,
    settings: Settings,
    run_jobs: Jobs,
) -> None:
    client, tenant_a = live_client, tenant
    tenant_b = await committed_tenant(committed, settings, client)
    headers = tenant_a.headers
    group = await client.post(f"{API}/groups", headers=headers, json={"name": "10A"})
    group_id = group.json()["id"]
    a = await person(client, tenant_a, "SV001")
    b = await person(client, tenant_a, "SV002")
    for someone, identity in ((a, ENROLLED_A), (b, ENROLLED_B)):
        assert (
            await enrol(client, tenant_a, someone, photo(f"{identity}/1.jpg"))
        ).status_code == 201
    await client.post(
        f"{API}/groups/{group_id}/members", headers=headers, json={"person_ids": [a, b]}
    )

    recognised = await client.post(
        f"{API}/recognitions",
        headers=headers,
        files={"photo": ("p.jpg", photo(f"{STRANGER}/2.jpg"), "image/jpeg")},
    )
    (face,) = recognised.json()["faces"]
    assert (face["person_id"], face["reason"]) == (None, "too_far")

    session = await client.post(
        f"{API}/groups/{group_id}/sessions", headers=headers, json={"label": "Maths, period 1"}
    )
    session_id = session.json()["id"]
    class_photo = side_by_side(f"{ENROLLED_A}/2.jpg", f"{STRANGER}/3.jpg")
    job = await mark_photo(client, tenant_a, session_id, class_photo, run_jobs)
    result = job["result"]
    assert result["faces_detected"] == 2
    assert [m["person_id"] for m in result["marked"]] == [a]
    assert 0 < result["marked"][0]["confidence"] <= 1
    assert len(result["unknown_faces"]) == 1
    assert [p["id"] for p in result["absent"]] == [b]

    detail = (await client.get(f"{API}/sessions/{session_id}", headers=headers)).json()
    assert [p["person_id"] for p in detail["present"]] == [a]
    assert [p["id"] for p in detail["absent"]] == [b]
    assert_problem(await client.get(f"{API}/sessions/{session_id}", headers=tenant_b.headers), 404)

    # The other tenant's gallery is empty: the same face is nobody there.
    elsewhere = await client.post(
        f"{API}/recognitions",
        headers=tenant_b.headers,
        files={"photo": ("p.jpg", photo(f"{ENROLLED_A}/2.jpg"), "image/jpeg")},
    )
    assert elsewhere.json()["faces"][0]["reason"] == "no_enrolled_faces"

    erased = await client.delete(f"{API}/people/{a}", headers=headers)
    assert erased.json()["faces_deleted"] == 1


@needs_corpus
async def test_calibration_reports_the_trade_off_on_enrolled_faces(
    client: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    for code, identity in (("SV001", ENROLLED_A), ("SV002", ENROLLED_B)):
        someone = await person(client, tenant_a, code)
        for number in (1, 2):
            enrolled = await enrol(client, tenant_a, someone, photo(f"{identity}/{number}.jpg"))
            assert enrolled.status_code == 201, enrolled.text
    report = (await client.get(f"{API}/calibration", headers=tenant_a.headers)).json()
    assert (report["faces"], report["people"]) == (4, 2)
    at_default = next(p for p in report["points"] if p["threshold"] == report["current_threshold"])
    assert at_default["genuine_attempts"] == 4
    assert at_default["false_accepts"] == 0
    assert at_default["misidentified"] == 0

    changed = await client.put(
        f"{API}/recognition-settings",
        headers=tenant_a.headers,
        json={"match_threshold": 0.5, "match_margin": 0.08},
    )
    assert changed.json()["is_default"] is False
    shown = await client.get(f"{API}/recognition-settings", headers=tenant_a.headers)
    assert shown.json() == {"match_threshold": 0.5, "match_margin": 0.08, "is_default": False}


@needs_corpus
async def test_a_doubtful_face_waits_for_a_teacher(
    live_client: httpx.AsyncClient, tenant: Tenant, run_jobs: Jobs
) -> None:
    client, tenant_a = live_client, tenant
    headers = tenant_a.headers
    group_id = (await client.post(f"{API}/groups", headers=headers, json={"name": "10A"})).json()[
        "id"
    ]
    a = await person(client, tenant_a, "SV001")
    assert (await enrol(client, tenant_a, a, photo(f"{ENROLLED_A}/1.jpg"))).status_code == 201
    await client.post(f"{API}/groups/{group_id}/members", headers=headers, json={"person_ids": [a]})
    probe = photo(f"{ENROLLED_A}/2.jpg")
    seen = await client.post(
        f"{API}/recognitions", headers=headers, files={"photo": ("p.jpg", probe, "image/jpeg")}
    )
    distance = seen.json()["faces"][0]["distance"]
    # The org's threshold just below this face's distance: unknown, but within the band.
    settings = {"match_threshold": round(distance - 0.02, 3), "match_margin": 0.05}
    await client.put(f"{API}/recognition-settings", headers=headers, json=settings)
    session_id = (
        await client.post(
            f"{API}/groups/{group_id}/sessions", headers=headers, json={"label": "Period 1"}
        )
    ).json()["id"]
    result = (await mark_photo(client, tenant_a, session_id, probe, run_jobs))["result"]
    assert result["marked"] == []
    assert result["unknown_faces"][0]["doubtful"] is True
    (queued,) = result["queued_for_review"]
    assert (queued["candidate_id"], queued["status"]) == (a, "open")

    listed = await client.get(f"{API}/sessions/{session_id}/reviews", headers=headers)
    assert [r["id"] for r in listed.json()] == [queued["id"]]
    decision = {"person_id": a, "reason": "it is her, glasses on"}
    decided = await client.post(
        f"{API}/reviews/{queued['id']}/decision", headers=headers, json=decision
    )
    assert decided.json()["status"] == "confirmed"
    again = await client.post(
        f"{API}/reviews/{queued['id']}/decision", headers=headers, json=decision
    )
    assert_problem(again, 409, "review_decided")
    detail = (await client.get(f"{API}/sessions/{session_id}", headers=headers)).json()
    assert [(m["person_id"], m["source"]) for m in detail["present"]] == [(a, "review")]
