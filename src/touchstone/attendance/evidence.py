"""Marking a session from a class photo as a job, and the annotated photo it leaves behind.

The request stores the photo and queues the job (`queue_photo_marking`, 202): detection
and one descriptor per face take 0.3 s plus 0.1-0.3 s a face on one core, too long to hold
a request. The job reports progress on the job record and as `attendance.photo_progress`
events, marks the session exactly as a synchronous marking would (`service.mark_from_photo`),
and stores the photo again with every face boxed and labelled. Both files are of kind
`attendance-evidence`, readable only with `attendance:mark` (who may run recognition), and
are recorded on the session (`attendance_evidence`).
"""

from __future__ import annotations

import io
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import anyio
import structlog
from fastapi import UploadFile
from PIL import Image, ImageDraw, ImageFont
from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from touchstone.attendance import repository, service, vision
from touchstone.attendance.engines import DetectedFace, FaceEngine, RgbImage, face_engine
from touchstone.attendance.engines.liveness import LivenessEngine, liveness_engine
from touchstone.attendance.exceptions import SessionNotFound
from touchstone.attendance.models import Evidence
from touchstone.attendance.schemas import EvidenceOut, RecognisedFace
from touchstone.core.audit import record_audit
from touchstone.core.auth import Principal
from touchstone.core.db import utcnow
from touchstone.core.events import publish
from touchstone.core.jobs import JobRecord, JobRun, defer, job
from touchstone.core.reads import Statements, TenantRead, row_query
from touchstone.core.storage import Storage, StoredObject, get_storage, store_upload

log = structlog.get_logger("touchstone.attendance.evidence")

FACES_PER_STEP = 4
"""Descriptors computed between two progress reports (about half a second of one core)."""
GREEN, RED, AMBER = (34, 160, 60), (210, 40, 40), (235, 150, 0)


async def queue_photo_marking(
    session: AsyncSession,
    storage: Storage,
    principal: Principal,
    session_id: uuid.UUID,
    photo: UploadFile,
) -> JobRecord:
    """Check the photo's header, store it, record it on the session and queue the job, all
    in the request's transaction: a refused photo changes nothing."""
    taken = await repository.get_session(session, principal.org_id, session_id)
    if taken is None:
        raise SessionNotFound()
    data = await service.photo_bytes(photo)
    vision.photo_size(data)
    stored = await store_upload(
        storage,
        principal.org_id,
        photo,
        kind=service.EVIDENCE_KIND,
        max_bytes=service.MAX_PHOTO_BYTES,
        allowed_types=service.PHOTO_TYPES,
    )
    evidence = Evidence(
        id=uuid.uuid4(),
        org_id=principal.org_id,
        session_id=session_id,
        status="queued",
        photo_key=stored.key,
        photo_sha256=stored.sha256,
        created_by=principal.id,
        created_at=utcnow(),
    )
    session.add(evidence)
    await session.flush()
    record = await defer(
        session,
        principal,
        mark_session_photo,
        evidence_id=str(evidence.id),
        actor_kind=principal.kind,
    )
    evidence.job_id = record.id
    await record_audit(
        session,
        principal,
        "attendance.session.photo_queued",
        "attendance_session",
        session_id,
        {"evidence_id": str(evidence.id), "sha256": stored.sha256, "job_id": str(record.id)},
    )
    await session.flush()
    return record


async def mark_photo(
    run: JobRun, evidence_id: uuid.UUID, actor_kind: str, storage: Storage
) -> dict[str, Any]:
    """The job: find and describe every face (with progress), mark the session, store the
    annotated photo. The marking as `POST …/photos` used to answer is the job's result."""
    async with run.transaction() as session:
        evidence = await _evidence(session, run.org_id, evidence_id)
        if evidence.status != "queued":  # an earlier run committed it; its status went astray
            return {"evidence_id": str(evidence_id), "status": evidence.status}
        key, session_id = evidence.photo_key, evidence.session_id
        sha256 = evidence.photo_sha256
        requester = Principal(
            kind="api_key" if actor_kind == "api_key" else "user",
            id=evidence.created_by,
            org_id=run.org_id,
            role=None,
            branch_id=None,
            permissions=frozenset(),
        )
    opened = await storage.open(run.org_id, key)
    data = b"".join([chunk async for chunk in opened.chunks])
    started = time.perf_counter()
    engine = await anyio.to_thread.run_sync(face_engine, run.settings)
    liveness = liveness_engine(run.settings.liveness_engine)
    image = await anyio.to_thread.run_sync(vision.decode, data)
    detected = await anyio.to_thread.run_sync(vision.find_faces, engine, image)
    await _progress(run, session_id, evidence_id, 10, f"{len(detected)} faces found")
    seen: list[vision.SeenFace] = []
    for start in range(0, len(detected), FACES_PER_STEP):
        batch = detected[start : start + FACES_PER_STEP]
        seen += await anyio.to_thread.run_sync(_describe, engine, liveness, image, batch)
        percent = 10 + 80 * len(seen) // len(detected)
        await _progress(run, session_id, evidence_id, percent, f"{len(seen)}/{len(detected)}")
    scene = vision.Scene(seen, time.perf_counter() - started, engine.name)
    annotated: StoredObject | None = None
    try:
        async with run.transaction() as session:
            evidence = await _evidence(session, run.org_id, evidence_id)
            taken = await repository.get_session(session, run.org_id, session_id)
            if taken is None:
                raise SessionNotFound("The session was deleted before its photo was marked")
            marking, faces = await service.mark_from_photo(
                session, requester, taken, scene, key, sha256
            )
            jpeg = await anyio.to_thread.run_sync(annotate, image, faces)
            annotated = await storage.put(
                run.org_id, _chunks(jpeg), kind=service.EVIDENCE_KIND, allowed_types={"image/jpeg"}
            )
            evidence.status, evidence.annotated_key = "done", annotated.key
            evidence.faces, evidence.marked = marking.faces_detected, len(marking.marked)
            evidence.finished_at = utcnow()
            await publish(
                session,
                run.org_id,
                "attendance.photo_marked",
                aggregate=("attendance_session", session_id),
                data={
                    "evidence_id": str(evidence_id),
                    "faces": marking.faces_detected,
                    "marked": len(marking.marked),
                    "unknown": len(marking.unknown_faces),
                    "queued_for_review": len(marking.queued_for_review),
                },
            )
    except BaseException:
        if annotated is not None:  # the marking was rolled back: so is its picture
            await storage.delete(run.org_id, annotated.key)
        raise
    log.info("attendance_photo_marked", faces=marking.faces_detected, marked=len(marking.marked))
    result: dict[str, Any] = marking.model_dump(mode="json")
    result["evidence_id"] = str(evidence_id)
    return result


def _describe(
    engine: FaceEngine, liveness: LivenessEngine, image: RgbImage, faces: list[DetectedFace]
) -> list[vision.SeenFace]:
    return [vision.seen_face(engine, liveness, image, face) for face in faces]


async def _progress(
    run: JobRun, session_id: uuid.UUID, evidence_id: uuid.UUID, percent: int, message: str
) -> None:
    await run.progress(percent, message)
    async with run.transaction() as session:
        await publish(
            session,
            run.org_id,
            "attendance.photo_progress",
            aggregate=("attendance_session", session_id),
            data={"evidence_id": str(evidence_id), "progress": percent, "message": message},
        )


async def marking_ended(
    session: AsyncSession,
    org_id: uuid.UUID,
    problem: dict[str, Any],
    *,
    evidence_id: str,
    actor_kind: str,
) -> None:
    """The job ended without marking (a photo that cannot be decoded, the session deleted,
    attempts used up, cancelled): the evidence row says so, and nothing was marked."""
    evidence = await session.scalar(
        select(Evidence).where(Evidence.id == uuid.UUID(evidence_id), Evidence.org_id == org_id)
    )
    if evidence is None or evidence.status == "done":
        return
    evidence.status, evidence.error_code = "failed", problem["code"]
    evidence.finished_at = utcnow()
    await publish(
        session,
        org_id,
        "attendance.photo_failed",
        aggregate=("attendance_session", evidence.session_id),
        data={"evidence_id": evidence_id, "code": problem["code"]},
    )


@job(
    read_permission="attendance:mark",
    queue="cv",
    max_attempts=3,
    timeout_seconds=600,
    on_end=marking_ended,
)
async def mark_session_photo(run: JobRun, evidence_id: str, actor_kind: str) -> dict[str, Any]:
    """Its status and result (names of the people marked) are for who may mark attendance."""
    return await mark_photo(run, uuid.UUID(evidence_id), actor_kind, get_storage(run.settings))


async def _evidence(session: AsyncSession, org_id: uuid.UUID, evidence_id: uuid.UUID) -> Evidence:
    found = await session.scalar(
        select(Evidence)
        .where(Evidence.id == evidence_id, Evidence.org_id == org_id)
        .with_for_update()
    )
    if found is None:
        raise SessionNotFound("The session was deleted before its photo was marked")
    return found


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


def annotate(image: RgbImage, faces: list[RecognisedFace]) -> bytes:
    """The photo (as analysed) with each face boxed and labelled, as JPEG: green and the
    person's code and name when recognised, amber "doubtful?" for a face a teacher must
    review, red "unknown" otherwise. A stranger is never given a name."""
    picture = Image.fromarray(image)
    draw = ImageDraw.Draw(picture)
    size = max(12, min(picture.size) // 50)
    font = ImageFont.load_default(size=size)
    width = max(2, size // 6)
    for face in faces:
        if face.person_id is not None:
            colour, label = GREEN, f"{face.code} {face.full_name}"
        elif face.doubtful:
            colour, label = AMBER, "doubtful?"
        else:
            colour, label = RED, "unknown"
        left, top, right, bottom = face.box
        draw.rectangle((left, top, right, bottom), outline=colour, width=width)
        text_box = draw.textbbox((left, bottom + 2), label, font=font)
        draw.rectangle(text_box, fill=colour)
        draw.text((left, bottom + 2), label, fill=(255, 255, 255), font=font)
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=88)
    return buffer.getvalue()


EVIDENCE = row_query(
    select(
        Evidence.id,
        Evidence.session_id,
        Evidence.status,
        Evidence.faces,
        Evidence.marked,
        Evidence.error_code,
        Evidence.job_id,
        Evidence.created_at,
        Evidence.finished_at,
        Evidence.photo_key,
        Evidence.annotated_key,
    )
    .where(Evidence.org_id == bindparam("org_id"), Evidence.session_id == bindparam("id"))
    .order_by(Evidence.created_at, Evidence.id)
)


async def list_evidence(
    read: TenantRead, storage: Storage, session_id: uuid.UUID
) -> list[EvidenceOut]:
    """The session's class photos and their annotated copies, as short-lived signed links
    (the session and its evidence read in one round trip)."""

    def plan(principal: Principal) -> Statements:
        values = {"org_id": principal.org_id, "id": session_id}
        return [(repository.SESSION_EXISTS.query, values), (EVIDENCE.query, values)]

    found, rows = await read.fetch(plan)
    if not found or read.principal is None:
        raise SessionNotFound()
    org_id = read.principal.org_id
    items = []
    for row in EVIDENCE.items(rows):
        photo_key, annotated_key = row.pop("photo_key"), row.pop("annotated_key")
        annotated = await storage.signed_url(org_id, annotated_key) if annotated_key else None
        items.append(
            EvidenceOut(
                **row,
                photo_url=await storage.signed_url(org_id, photo_key),
                annotated_url=annotated,
            )
        )
    return items
