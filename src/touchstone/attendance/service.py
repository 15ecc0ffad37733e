"""Attendance use cases: groups, people, consent, enrolment, recognition, marking.

Plain creates go through `core.writes` (two round trips); use cases that must check other
rows first (a membership, an enrolment, a marking) use the ORM session, flush, and record
their audit events in the same transaction. Every GET goes through `core.reads`.
"""

from __future__ import annotations

import csv
import io
import uuid
from datetime import timedelta
from typing import Any

import anyio
import numpy as np
from fastapi import UploadFile
from pydantic import ValidationError
from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from touchstone.attendance import imports, matching, repository, timetable, vision
from touchstone.attendance.engines import face_engine
from touchstone.attendance.engines.liveness import Liveness, liveness_engine
from touchstone.attendance.exceptions import (
    ConsentRequired,
    FaceNotFound,
    GroupNotFound,
    InvalidPhoto,
    NotAMember,
    PersonNotFound,
    ReviewDecided,
    ReviewNotFound,
    SessionNotFound,
)
from touchstone.attendance.models import (
    Consent,
    Face,
    Group,
    Mark,
    Membership,
    Person,
    Review,
    Session,
)
from touchstone.attendance.models import Settings as RecognitionRow
from touchstone.attendance.schemas import (
    Calibration,
    ConsentCreate,
    ConsentOut,
    FaceOut,
    GroupCreate,
    GroupOut,
    ImportedRow,
    ImportReport,
    ManualMark,
    MarkOut,
    OperatingPointOut,
    PersonBrief,
    PersonCreate,
    PersonDeleted,
    PersonOut,
    PersonUpdate,
    PhotoMarking,
    RecognisedFace,
    Recognition,
    RecognitionSettings,
    RecognitionSettingsUpdate,
    RefusedRow,
    ReviewDecision,
    ReviewOut,
    SessionCreate,
    SessionDetail,
    SessionOut,
)
from touchstone.core.audit import record_audit
from touchstone.core.auth import Principal
from touchstone.core.config import Settings
from touchstone.core.db import utcnow
from touchstone.core.errors import InvalidInput, PayloadTooLarge
from touchstone.core.pagination import Items, PageParams, PageShape
from touchstone.core.reads import ItemQuery, Statements, TenantRead, read_item
from touchstone.core.storage import Storage, file_kind, store_upload
from touchstone.core.storage.removal import delete_after_commit
from touchstone.core.writes import TenantWrite, WritePlan

FACE_PHOTO_KIND = file_kind("attendance-face", permission="attendance:enrol")
"""Enrolment photos are biometric data: only who may enrol may read them back."""
EVIDENCE_KIND = file_kind("attendance-evidence", permission="attendance:mark")
PHOTO_TYPES = frozenset({"image/jpeg", "image/png"})
MAX_PHOTO_BYTES = 10 * 1024 * 1024


# --- groups ---------------------------------------------------------------------------------


async def create_group(write: TenantWrite, data: GroupCreate) -> GroupOut:
    def plan(principal: Principal) -> WritePlan[GroupOut]:
        group = GroupOut(
            id=uuid.uuid4(),
            name=data.name,
            description=data.description,
            created_at=utcnow(),
            timezone=None,
            owner_id=None,
        )
        row = {**group.model_dump(), "org_id": principal.org_id}
        return WritePlan(
            [(repository.NEW_GROUP, row)], group, conflict="A group with this name exists"
        ).audited(principal, "attendance.group.created", "attendance_group", group.id)

    return await write.apply(plan)


async def read_group(read: TenantRead, group_id: uuid.UUID) -> dict[str, Any]:
    def plan(principal: Principal) -> tuple[ItemQuery, dict[str, Any]]:
        return repository.GROUP, {"org_id": principal.org_id, "id": group_id}

    return await read_item(read, plan, GroupNotFound())


_GROUP_PAGES = PageShape(
    select(*repository.GROUP_COLUMNS).where(Group.org_id == bindparam("org_id")),
    {},
    {"name": Group.name, "created_at": Group.created_at},
    "name",
    Group.id,
    item=GroupOut,
)


async def list_groups(read: TenantRead, page: PageParams) -> tuple[Items, int]:
    return await _GROUP_PAGES.read(read, page)


async def add_members(
    session: AsyncSession, principal: Principal, group_id: uuid.UUID, person_ids: list[uuid.UUID]
) -> int:
    """Add people to a group (already members are left as they are); every id must be one
    of the org's people. The number added."""
    if await repository.get_group(session, principal.org_id, group_id) is None:
        raise GroupNotFound()
    wanted = set(person_ids)
    found = await repository.people_in_org(session, principal.org_id, list(wanted))
    if missing := wanted - found.keys():
        raise PersonNotFound(f"No such person: {', '.join(sorted(map(str, missing)))}")
    new = wanted - await repository.member_ids(session, principal.org_id, group_id)
    session.add_all(
        Membership(org_id=principal.org_id, group_id=group_id, person_id=person_id)
        for person_id in new
    )
    await record_audit(
        session,
        principal,
        "attendance.group.members_added",
        "attendance_group",
        group_id,
        {"person_ids": sorted(map(str, new))},
    )
    await session.flush()
    return len(new)


# --- people ---------------------------------------------------------------------------------


async def create_person(write: TenantWrite, data: PersonCreate) -> PersonOut:
    def plan(principal: Principal) -> WritePlan[PersonOut]:
        person = PersonOut(
            id=uuid.uuid4(),
            code=data.code,
            full_name=data.full_name,
            contact=data.contact,
            group_ids=[],
            has_consent=False,
            faces=0,
            created_at=utcnow(),
        )
        row = {
            **person.model_dump(include={"id", "code", "full_name", "contact", "created_at"}),
            "org_id": principal.org_id,
        }
        return WritePlan(
            [(repository.NEW_PERSON, row)], person, conflict="A person with this code exists"
        ).audited(
            principal,
            "attendance.person.created",
            "attendance_person",
            person.id,
            {"code": data.code},
        )

    return await write.apply(plan)


IMPORT_COLUMNS = frozenset({"code", "full_name", "contact", "group"})
MAX_IMPORT_ROWS = 5_000
MAX_IMPORT_BYTES = 1024 * 1024


def _import_rows(data: bytes) -> list[tuple[int, dict[str, str]]]:
    """(line, row) of a UTF-8 CSV with a header naming `IMPORT_COLUMNS` (code and full_name
    required); `InvalidInput` for a file that is not one."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInput("The file must be a UTF-8 CSV") from exc
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = set(reader.fieldnames or ())
    if not {"code", "full_name"} <= header or not header <= IMPORT_COLUMNS:
        raise InvalidInput("The header must name code, full_name and optionally contact, group")
    rows: list[tuple[int, dict[str, str]]] = []
    try:
        for row in reader:
            if len(rows) == MAX_IMPORT_ROWS:
                raise InvalidInput(f"At most {MAX_IMPORT_ROWS} rows per import")
            if None in row:
                rows.append((reader.line_num, {"": "more fields than the header"}))
                continue
            rows.append((reader.line_num, {k: v.strip() for k, v in row.items() if v}))
    except csv.Error as exc:
        raise InvalidInput(f"Not a readable CSV: {exc}") from exc
    return rows


async def import_people(
    session: AsyncSession, principal: Principal, upload: UploadFile
) -> ImportReport:
    """Every valid row becomes a person (in its group when it names one); every other row
    is reported with its line and why, and nothing of it is stored."""
    await upload.seek(0)
    data = await upload.read(MAX_IMPORT_BYTES + 1)
    if not data:
        raise InvalidInput("The file is empty")
    if len(data) > MAX_IMPORT_BYTES:
        raise PayloadTooLarge(f"An import is at most {MAX_IMPORT_BYTES} bytes")
    if imports.is_workbook(data, upload.filename):
        rows = await anyio.to_thread.run_sync(
            imports.workbook_rows, data, IMPORT_COLUMNS, MAX_IMPORT_ROWS
        )
    else:
        rows = _import_rows(data)
    codes = await repository.codes_in_org(session, principal.org_id)
    groups = await repository.groups_by_name(session, principal.org_id)
    refused: list[RefusedRow] = []
    created: list[str] = []
    for line, values in rows:
        code = values.get("code")
        if "" in values:
            refused.append(RefusedRow(line=line, code=code, reason=values[""]))
            continue
        try:
            row = ImportedRow.model_validate(values)
        except ValidationError as exc:
            error = exc.errors()[0]
            field = ".".join(str(part) for part in error["loc"]) or "row"
            refused.append(RefusedRow(line=line, code=code, reason=f"{field}: {error['msg']}"))
            continue
        if row.code in codes:
            refused.append(RefusedRow(line=line, code=row.code, reason="the code exists"))
            continue
        if row.group and row.group not in groups:
            reason = f"no group named {row.group!r}"
            refused.append(RefusedRow(line=line, code=row.code, reason=reason))
            continue
        person = Person(
            org_id=principal.org_id,
            code=row.code,
            full_name=row.full_name,
            contact=row.contact,
            created_at=utcnow(),
        )
        session.add(person)
        await session.flush()
        if row.group:
            session.add(
                Membership(org_id=principal.org_id, group_id=groups[row.group], person_id=person.id)
            )
        codes.add(row.code)
        created.append(row.code)
    await record_audit(
        session,
        principal,
        "attendance.people.imported",
        "attendance_import",
        None,
        {"created": created, "refused": len(refused)},
    )
    await session.flush()
    return ImportReport(created=len(created), refused=refused)


async def read_person(read: TenantRead, person_id: uuid.UUID) -> dict[str, Any]:
    def plan(principal: Principal) -> tuple[ItemQuery, dict[str, Any]]:
        return repository.PERSON, {"org_id": principal.org_id, "id": person_id}

    return await read_item(read, plan, PersonNotFound())


_PEOPLE_PAGES = PageShape(
    select(*repository.PERSON_COLUMNS).where(Person.org_id == bindparam("org_id")),
    {
        "group_id": lambda group: Person.id.in_(
            select(Membership.person_id).where(Membership.group_id == group)
        ),
        "pattern": lambda pattern: (
            Person.full_name.ilike(pattern, escape="\\") | Person.code.ilike(pattern, escape="\\")
        ),
    },
    {"code": Person.code, "full_name": Person.full_name, "created_at": Person.created_at},
    "code",
    Person.id,
    item=PersonOut,
)


async def list_people(
    read: TenantRead, page: PageParams, *, group_id: uuid.UUID | None, search: str | None
) -> tuple[Items, int]:
    pattern = None
    if search:
        escaped = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        pattern = f"%{escaped}%"
    return await _PEOPLE_PAGES.read(read, page, {"group_id": group_id, "pattern": pattern})


async def _person(session: AsyncSession, principal: Principal, person_id: uuid.UUID) -> Person:
    person = await repository.get_person(session, principal.org_id, person_id)
    if person is None:
        raise PersonNotFound()
    return person


async def update_person(
    session: AsyncSession, principal: Principal, person_id: uuid.UUID, data: PersonUpdate
) -> None:
    person = await _person(session, principal, person_id)
    changes = data.model_dump(exclude_unset=True)
    for name, value in changes.items():
        setattr(person, name, value)
    await record_audit(
        session, principal, "attendance.person.updated", "attendance_person", person_id, changes
    )
    await session.flush()


async def delete_person(
    session: AsyncSession, principal: Principal, person_id: uuid.UUID
) -> PersonDeleted:
    """The person with their memberships, consents, marks, embeddings and enrolment photos
        (right to erasure: nothing biometric stays behind). The photos are removed by a job
    queued in this transaction, so a rollback keeps them with their rows."""
    person = await _person(session, principal, person_id)
    keys = await repository.face_photo_keys(session, principal.org_id, person_id)
    await session.delete(person)
    await record_audit(
        session,
        principal,
        "attendance.person.deleted",
        "attendance_person",
        person_id,
        {"code": person.code, "faces_deleted": len(keys)},
    )
    await session.flush()
    removal = await delete_after_commit(session, principal, keys)
    return PersonDeleted(
        id=person_id,
        faces_deleted=len(keys),
        photos_deleted=len(keys),
        photo_removal_job_id=removal.id if removal else None,
    )


# --- consent and enrolment ------------------------------------------------------------------


async def record_consent(
    session: AsyncSession, principal: Principal, person_id: uuid.UUID, data: ConsentCreate
) -> ConsentOut:
    await _person(session, principal, person_id)
    consent = Consent(
        org_id=principal.org_id,
        person_id=person_id,
        given_by=data.given_by,
        given_at=data.given_at or utcnow(),
        purpose=data.purpose,
        recorded_by=principal.id,
        created_at=utcnow(),
    )
    session.add(consent)
    await session.flush()
    await record_audit(
        session,
        principal,
        "attendance.consent.recorded",
        "attendance_person",
        person_id,
        {"consent_id": str(consent.id), "given_by": data.given_by, "purpose": data.purpose},
    )
    return ConsentOut.model_validate(consent)


async def _person_and(
    read: TenantRead, person_id: uuid.UUID, query: ItemQuery
) -> list[dict[str, Any]]:
    """`query`'s rows for the person, or `PersonNotFound` (another org's person included)."""

    def plan(principal: Principal) -> Statements:
        values = {"org_id": principal.org_id, "person_id": person_id}
        return [(repository.PERSON_EXISTS.query, values), (query.query, values)]

    exists, rows = await read.fetch(plan)
    if not exists:
        raise PersonNotFound()
    return query.items(rows)


async def list_consents(read: TenantRead, person_id: uuid.UUID) -> list[dict[str, Any]]:
    return await _person_and(read, person_id, repository.CONSENTS)


async def list_faces(read: TenantRead, person_id: uuid.UUID) -> list[dict[str, Any]]:
    return await _person_and(read, person_id, repository.FACES)


async def photo_bytes(photo: UploadFile) -> bytes:
    await photo.seek(0)
    data = await photo.read(MAX_PHOTO_BYTES + 1)
    if not data or len(data) > MAX_PHOTO_BYTES:
        raise InvalidPhoto(f"The photo must be 1 to {MAX_PHOTO_BYTES} bytes")
    return data


async def enrol(
    session: AsyncSession,
    storage: Storage,
    settings: Settings,
    principal: Principal,
    person_id: uuid.UUID,
    photo: UploadFile,
) -> FaceOut:
    """Check consent, then the photo's gates, then store the photo and the embedding."""
    await _person(session, principal, person_id)
    if not await repository.has_consent(session, principal.org_id, person_id):
        raise ConsentRequired("Record the person's consent (POST …/consents) before enrolling")
    engine = await anyio.to_thread.run_sync(face_engine, settings)
    data = await photo_bytes(photo)
    enrolment = await anyio.to_thread.run_sync(vision.enrolment, engine, data)
    stored = await store_upload(
        storage,
        principal.org_id,
        photo,
        kind=FACE_PHOTO_KIND,
        max_bytes=MAX_PHOTO_BYTES,
        allowed_types=PHOTO_TYPES,
    )
    face = Face(
        org_id=principal.org_id,
        person_id=person_id,
        embedding=enrolment.embedding.tolist(),
        engine=engine.name,
        photo_key=stored.key,
        photo_sha256=stored.sha256,
        quality=enrolment.quality,
        enrolled_by=principal.id,
        created_at=utcnow(),
    )
    session.add(face)
    await session.flush()
    await record_audit(
        session,
        principal,
        "attendance.face.enrolled",
        "attendance_person",
        person_id,
        {"face_id": str(face.id), "sha256": stored.sha256, "engine": engine.name},
    )
    return FaceOut.model_validate(face)


async def delete_face(
    session: AsyncSession, principal: Principal, person_id: uuid.UUID, face_id: uuid.UUID
) -> None:
    """Remove one enrolled face (a poor or outdated photo): re-enrolment replaces by
    deleting and adding."""
    face = await repository.get_face(session, principal.org_id, person_id, face_id)
    if face is None:
        raise FaceNotFound()
    await session.delete(face)
    await record_audit(
        session,
        principal,
        "attendance.face.deleted",
        "attendance_person",
        person_id,
        {"face_id": str(face_id), "sha256": face.photo_sha256},
    )
    await session.flush()
    await delete_after_commit(session, principal, [face.photo_key])


# --- recognition ----------------------------------------------------------------------------


async def recognition_settings(read: TenantRead) -> RecognitionSettings:
    def plan(principal: Principal) -> Statements:
        return [(repository.SETTINGS.query, {"org_id": principal.org_id})]

    (rows,) = await read.fetch(plan)
    if not rows:
        return RecognitionSettings(
            match_threshold=matching.DEFAULT_THRESHOLD,
            match_margin=matching.DEFAULT_MARGIN,
            is_default=True,
        )
    threshold, margin = rows[0]
    # The row also holds the org's zone and retention: it may exist with the default pair.
    defaults = (matching.DEFAULT_THRESHOLD, matching.DEFAULT_MARGIN)
    return RecognitionSettings(
        match_threshold=threshold, match_margin=margin, is_default=(threshold, margin) == defaults
    )


async def update_recognition_settings(
    session: AsyncSession, principal: Principal, data: RecognitionSettingsUpdate
) -> RecognitionSettings:
    row = await repository.settings_row(session, principal.org_id)
    if row is None:
        row = RecognitionRow(org_id=principal.org_id)
        session.add(row)
    row.match_threshold, row.match_margin = data.match_threshold, data.match_margin
    row.updated_at = utcnow()
    await record_audit(
        session,
        principal,
        "attendance.settings.updated",
        "attendance_settings",
        principal.org_id,
        data.model_dump(),
    )
    await session.flush()
    defaults = (matching.DEFAULT_THRESHOLD, matching.DEFAULT_MARGIN)
    return RecognitionSettings(
        **data.model_dump(),
        is_default=(data.match_threshold, data.match_margin) == defaults,
    )


async def _thresholds(session: AsyncSession, org_id: uuid.UUID) -> tuple[float, float]:
    row = await repository.settings_row(session, org_id)
    if row is None:
        return matching.DEFAULT_THRESHOLD, matching.DEFAULT_MARGIN
    return row.match_threshold, row.match_margin


Candidates = list[uuid.UUID | None]
"""Per recognised face: the nearest enrolled person when the face is doubtful, else None."""


async def _recognise(
    session: AsyncSession, principal: Principal, scene: vision.Scene
) -> tuple[list[RecognisedFace], Candidates, float, float]:
    threshold, margin = await _thresholds(session, principal.org_id)
    decisions = []
    for face in scene.faces:
        neighbours = await repository.nearest(
            session, principal.org_id, face.embedding.tolist(), matching.NEIGHBOURS, scene.engine
        )
        decisions.append((face, matching.decide(neighbours, threshold, margin)))
    named = {d.person for _, d in decisions if d.person is not None}
    people = await repository.people_in_org(session, principal.org_id, list(named))
    faces, candidates = [], []
    for face, decision in decisions:
        person = people.get(decision.person) if decision.person is not None else None
        doubtful = decision.doubtful(threshold)
        candidates.append(decision.nearest if doubtful else None)
        faces.append(
            RecognisedFace(
                box=list(face.box),
                person_id=person.id if person else None,
                code=person.code if person else None,
                full_name=person.full_name if person else None,
                distance=_rounded(decision.distance),
                runner_up=_rounded(decision.runner_up),
                confidence=decision.confidence,
                reason=decision.reason,
                doubtful=doubtful,
                liveness=face.liveness,
            )
        )
    return faces, candidates, threshold, margin


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


async def recognise(
    session: AsyncSession, settings: Settings, principal: Principal, photo: UploadFile
) -> Recognition:
    data = await photo_bytes(photo)
    engine = await anyio.to_thread.run_sync(face_engine, settings)
    checker = liveness_engine(settings.liveness_engine)
    scene = await anyio.to_thread.run_sync(vision.scene, engine, data, checker)
    faces, _, threshold, margin = await _recognise(session, principal, scene)
    return Recognition(faces=faces, threshold=threshold, margin=margin)


async def calibrate(read: TenantRead) -> Calibration:
    """Leave-one-out over the org's enrolled faces at each candidate threshold (the org's
    current margin): the admin picks a threshold from the trade-off it shows."""

    def plan(principal: Principal) -> Statements:
        values = {"org_id": principal.org_id}
        return [(repository.ALL_FACES.query, values), (repository.SETTINGS.query, values)]

    faces, settings = await read.fetch(plan)
    threshold, margin = (
        settings[0] if settings else (matching.DEFAULT_THRESHOLD, matching.DEFAULT_MARGIN)
    )
    people = [person for person, _ in faces]
    vectors = np.asarray([repository.parse_vector(v) for _, v in faces], dtype=np.float32)
    points = (
        await anyio.to_thread.run_sync(
            matching.leave_one_out, people, vectors, matching.CANDIDATE_THRESHOLDS, margin
        )
        if faces
        else []
    )
    return Calibration(
        faces=len(faces),
        people=len(set(people)),
        margin=margin,
        current_threshold=threshold,
        points=[
            OperatingPointOut(
                threshold=p.threshold,
                genuine_attempts=p.genuine_attempts,
                true_accepts=p.true_accepts,
                false_rejects=p.false_rejects,
                misidentified=p.misidentified,
                impostor_attempts=p.impostor_attempts,
                false_accepts=p.false_accepts,
                false_accept_rate=round(p.false_accept_rate, 4),
                false_reject_rate=round(p.false_reject_rate, 4),
            )
            for p in points
        ],
    )


# --- sessions and marking -------------------------------------------------------------------


async def create_session(
    session: AsyncSession, principal: Principal, group_id: uuid.UUID, data: SessionCreate
) -> SessionOut:
    if await repository.get_group(session, principal.org_id, group_id) is None:
        raise GroupNotFound()
    starts_at = data.starts_at or utcnow()
    created = Session(
        org_id=principal.org_id,
        group_id=group_id,
        label=data.label,
        starts_at=starts_at,
        created_by=principal.id,
        created_at=utcnow(),
        late_after=None
        if data.late_after_minutes is None
        else starts_at + timedelta(minutes=data.late_after_minutes),
    )
    session.add(created)
    await session.flush()
    await record_audit(
        session,
        principal,
        "attendance.session.created",
        "attendance_session",
        created.id,
        {"group_id": str(group_id), "label": data.label},
    )
    return SessionOut.model_validate(created)


async def read_session(read: TenantRead, session_id: uuid.UUID) -> SessionDetail:
    def plan(principal: Principal) -> Statements:
        values = {"org_id": principal.org_id, "id": session_id}
        return [
            (repository.SESSION.query, values),
            (repository.MARKS.query, values),
            (repository.ABSENT.query, values),
        ]

    found, marks, missing = await read.fetch(plan)
    if not found:
        raise SessionNotFound()
    return SessionDetail(
        **repository.SESSION.items(found)[0],
        present=[MarkOut(**row) for row in repository.MARKS.items(marks)],
        absent=[PersonBrief(**row) for row in repository.ABSENT.items(missing)],
    )


async def mark_by_hand(
    session: AsyncSession, principal: Principal, session_id: uuid.UUID, data: ManualMark
) -> None:
    """A teacher's override, with its reason in the mark and in the audit log."""
    taken = await repository.get_session(session, principal.org_id, session_id)
    if taken is None:
        raise SessionNotFound()
    await _person(session, principal, data.person_id)  # another org's person: 404
    if data.person_id not in await repository.member_ids(session, principal.org_id, taken.group_id):
        raise NotAMember()
    marks = await repository.marks_of(session, principal.org_id, session_id)
    existing = marks.get(data.person_id)
    status = data.status or timetable.status_at(taken, utcnow())
    if data.present and existing is None:
        session.add(
            Mark(
                org_id=principal.org_id,
                session_id=session_id,
                person_id=data.person_id,
                source="manual",
                marked_by=principal.id,
                reason=data.reason,
                created_at=utcnow(),
                status=status,
            )
        )
    elif data.present and existing is not None and data.status is not None:
        existing.status = data.status
    elif not data.present and existing is not None:
        await session.delete(existing)
    await record_audit(
        session,
        principal,
        "attendance.session.marked_by_hand",
        "attendance_session",
        session_id,
        {
            "person_id": str(data.person_id),
            "present": data.present,
            "status": status if data.present else None,
            "reason": data.reason,
            "was_present": existing is not None,
        },
    )
    await session.flush()


def _review_out(review: Review, candidate: Person) -> ReviewOut:
    return ReviewOut(
        id=review.id,
        session_id=review.session_id,
        candidate_id=review.candidate_id,
        candidate_code=candidate.code,
        candidate_name=candidate.full_name,
        distance=review.distance,
        box=review.box,
        status=review.status,
        reason=review.reason,
        created_at=review.created_at,
    )


async def list_reviews(read: TenantRead, session_id: uuid.UUID) -> list[ReviewOut]:
    def plan(principal: Principal) -> Statements:
        values = {"org_id": principal.org_id, "id": session_id}
        return [(repository.SESSION_EXISTS.query, values), (repository.REVIEWS.query, values)]

    found, rows = await read.fetch(plan)
    if not found:
        raise SessionNotFound()
    return [ReviewOut(**row) for row in repository.REVIEWS.items(rows)]


async def decide_review(
    session: AsyncSession, principal: Principal, review_id: uuid.UUID, data: ReviewDecision
) -> ReviewOut:
    """Confirm the candidate, correct to another member, or reject (nobody of the group);
    a confirmed or corrected face marks its person present (source `review`)."""
    review = await repository.get_review(session, principal.org_id, review_id)
    if review is None:
        raise ReviewNotFound()
    if review.status != "open":
        raise ReviewDecided()
    taken = await repository.get_session(session, principal.org_id, review.session_id)
    assert taken is not None  # the foreign key cascades
    if data.person_id is None:
        review.status = "rejected"
    else:
        await _person(session, principal, data.person_id)
        if data.person_id not in await repository.member_ids(
            session, principal.org_id, taken.group_id
        ):
            raise NotAMember()
        review.status = "confirmed" if data.person_id == review.candidate_id else "corrected"
        marks = await repository.marks_of(session, principal.org_id, review.session_id)
        if data.person_id not in marks:
            session.add(
                Mark(
                    org_id=principal.org_id,
                    session_id=review.session_id,
                    person_id=data.person_id,
                    source="review",
                    distance=review.distance if review.status == "confirmed" else None,
                    box=review.box,
                    photo_key=review.photo_key,
                    marked_by=principal.id,
                    reason=data.reason,
                    created_at=utcnow(),
                    liveness=Liveness.NOT_ASSESSED,
                    status=timetable.status_at(taken, review.created_at),
                )
            )
    review.decided_by, review.decided_at, review.reason = principal.id, utcnow(), data.reason
    await record_audit(
        session,
        principal,
        f"attendance.review.{review.status}",
        "attendance_session",
        review.session_id,
        {
            "review_id": str(review.id),
            "candidate_id": str(review.candidate_id),
            "person_id": str(data.person_id) if data.person_id else None,
            "reason": data.reason,
        },
    )
    await session.flush()
    candidate = await _person(session, principal, review.candidate_id)
    return _review_out(review, candidate)


async def mark_from_photo(
    session: AsyncSession,
    principal: Principal,
    taken: Session,
    scene: vision.Scene,
    photo_key: str,
    photo_sha256: str,
) -> tuple[PhotoMarking, list[RecognisedFace]]:
    """Recognise every face of a stored class photo against the org; members found are
    marked present (once per session), with the face's box and the photo as evidence. Run
    by the marking job (`attendance.evidence`); the faces as recognised come back too."""
    session_id = taken.id
    faces, candidates, _, _ = await _recognise(session, principal, scene)
    members = await repository.member_ids(session, principal.org_id, taken.group_id)
    marks = await repository.marks_of(session, principal.org_id, session_id)
    unknown: list[RecognisedFace] = []
    outside: list[RecognisedFace] = []
    seen: list[uuid.UUID] = []
    reviews: list[Review] = []
    for face, candidate in zip(faces, candidates, strict=True):
        if face.person_id is None:
            unknown.append(face)
            if candidate in members and candidate not in marks and face.distance is not None:
                reviews.append(
                    Review(
                        id=uuid.uuid4(),
                        org_id=principal.org_id,
                        session_id=session_id,
                        candidate_id=candidate,
                        distance=face.distance,
                        box=face.box,
                        photo_key=photo_key,
                        status="open",
                        created_at=utcnow(),
                    )
                )
        elif face.person_id not in members:
            outside.append(face)
        elif face.person_id not in seen:
            seen.append(face.person_id)
            if face.person_id not in marks:
                marks[face.person_id] = mark = Mark(
                    org_id=principal.org_id,
                    session_id=session_id,
                    person_id=face.person_id,
                    source="photo",
                    distance=face.distance,
                    confidence=face.confidence,
                    box=face.box,
                    photo_key=photo_key,
                    marked_by=principal.id,
                    created_at=utcnow(),
                    liveness=face.liveness,
                    status=timetable.status_at(taken, utcnow()),
                )
                session.add(mark)
    await record_audit(
        session,
        principal,
        "attendance.session.marked_from_photo",
        "attendance_session",
        session_id,
        {
            "sha256": photo_sha256,
            "faces": len(faces),
            "marked": sorted(map(str, seen)),
            "unknown": len(unknown),
            "queued_for_review": [str(r.id) for r in reviews],
        },
    )
    session.add_all(reviews)
    await session.flush()
    people = await repository.people_in_org(session, principal.org_id, list(members))
    marked = [
        MarkOut(
            person_id=mark.person_id,
            code=people[mark.person_id].code,
            full_name=people[mark.person_id].full_name,
            source=mark.source,
            distance=mark.distance,
            confidence=mark.confidence,
            box=mark.box,
            reason=mark.reason,
            created_at=mark.created_at,
            status=mark.status,
            liveness=mark.liveness,
        )
        for mark in (marks[person_id] for person_id in seen)
    ]
    absent = [
        PersonBrief(id=p.id, code=p.code, full_name=p.full_name)
        for p in sorted(people.values(), key=lambda p: p.code)
        if p.id not in marks
    ]
    marking = PhotoMarking(
        session_id=session_id,
        faces_detected=len(faces),
        marked=marked,
        unknown_faces=unknown,
        not_in_group=outside,
        queued_for_review=[_review_out(r, people[r.candidate_id]) for r in reviews],
        absent=absent,
        seconds=round(scene.seconds, 3),
    )
    return marking, faces


# --- the live camera (`attendance.live`) ------------------------------------------------------


async def recognise_scene(
    session: AsyncSession, principal: Principal, scene: vision.Scene
) -> list[RecognisedFace]:
    """Each face of `scene` named or "unknown", by the org's threshold and margin."""
    faces, _, _, _ = await _recognise(session, principal, scene)
    return faces
