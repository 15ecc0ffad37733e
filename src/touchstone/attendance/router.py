"""Attendance HTTP API: parse, authorize, call the service, shape the response.

GETs read through `core.reads`; plain creates write through `core.writes`; uploads and the
use cases that check other rows first take `SessionDep`. Mounted under /api/v1 by main.py.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Header, Query, Response, UploadFile, status

from touchstone.attendance import evidence, exports, service, statistics, timetable
from touchstone.attendance.live import settings as camera
from touchstone.attendance.live import websocket as camera_socket
from touchstone.attendance.schemas import (
    AbsenteeQuery,
    Calibration,
    CameraSettings,
    CameraSettingsUpdate,
    ConsentCreate,
    ConsentOut,
    EvidenceOut,
    FaceOut,
    GeneratedSessions,
    GroupCreate,
    GroupOut,
    GroupStatistics,
    GroupUpdate,
    ImportReport,
    ManualMark,
    MembersAdd,
    MonthExportQuery,
    OrgSettings,
    OrgSettingsUpdate,
    PeriodQuery,
    PeriodStatistics,
    PersonCreate,
    PersonDeleted,
    PersonOut,
    PersonStatistics,
    PersonUpdate,
    RangeQuery,
    Recognition,
    RecognitionSettings,
    RecognitionSettingsUpdate,
    ReviewDecision,
    ReviewOut,
    SessionCreate,
    SessionDetail,
    SessionGeneration,
    SessionOut,
    SessionStatistics,
    StatisticsQuery,
    TimetableIn,
    TimetableOut,
)
from touchstone.core.auth import Principal
from touchstone.core.cache import CacheDep
from touchstone.core.deps import SessionDep, SettingsDep, require
from touchstone.core.idempotency import IdempotencyDep
from touchstone.core.jobs.router import JobOut
from touchstone.core.pagination import Page, PageDep, page_response
from touchstone.core.query_params import query_model
from touchstone.core.reads import TenantRead, tenant_read
from touchstone.core.routing import ApiRouter, upload_limit
from touchstone.core.schemas import OutputModel, PlainText
from touchstone.core.storage import StorageDep
from touchstone.core.writes import TenantWrite, tenant_write

router = ApiRouter(tags=["attendance"])

Reads = Annotated[TenantRead, Depends(tenant_read("attendance:read"))]
EnrolmentReads = Annotated[TenantRead, Depends(tenant_read("attendance:enrol"))]
SettingsReads = Annotated[TenantRead, Depends(tenant_read("attendance:settings"))]
NewThing = Annotated[TenantWrite, Depends(tenant_write("attendance:write", idempotent=True))]
Writer = Annotated[Principal, Depends(require("attendance:write"))]
Enroller = Annotated[Principal, Depends(require("attendance:enrol"))]
Marker = Annotated[Principal, Depends(require("attendance:mark"))]
SettingsWriter = Annotated[Principal, Depends(require("attendance:settings"))]

PHOTO_LIMIT = upload_limit(lambda settings: service.MAX_PHOTO_BYTES + settings.max_body_bytes)


class Added(OutputModel):
    added: int


@router.post("/attendance/groups", response_model=GroupOut, status_code=201)
async def create_group(body: GroupCreate, write: NewThing) -> GroupOut:
    return await service.create_group(write, body)


@router.get("/attendance/groups", response_model=Page[GroupOut])
async def list_groups(read: Reads, page: PageDep) -> Response:
    items, total = await service.list_groups(read, page)
    return page_response(items, total, page)


@router.get("/attendance/groups/{group_id}", response_model=GroupOut)
async def get_group(group_id: uuid.UUID, read: Reads) -> GroupOut:
    return GroupOut.model_validate(await service.read_group(read, group_id))


@router.post("/attendance/groups/{group_id}/members", response_model=Added)
async def add_members(
    group_id: uuid.UUID, body: MembersAdd, session: SessionDep, principal: Writer
) -> Added:
    """Already members are left as they are; an id that is not the org's person is a 404."""
    return Added(added=await service.add_members(session, principal, group_id, body.person_ids))


@router.post("/attendance/people", response_model=PersonOut, status_code=201)
async def create_person(body: PersonCreate, write: NewThing) -> PersonOut:
    return await service.create_person(write, body)


@router.post("/attendance/people-imports", response_model=ImportReport)
async def import_people(file: UploadFile, session: SessionDep, principal: Writer) -> ImportReport:
    """A UTF-8 CSV with the header `code,full_name[,contact][,group]` (group: an existing
    group's name), or an XLSX workbook whose first sheet has that header in row 1 (values,
    no formulas). Valid rows are created; the others come back with their line and why."""
    return await service.import_people(session, principal, file)


@router.get("/attendance/people", response_model=Page[PersonOut])
async def list_people(
    read: Reads,
    page: PageDep,
    group_id: uuid.UUID | None = None,
    search: Annotated[PlainText | None, Query(max_length=200)] = None,
) -> Response:
    """By group, and by part of the name or code."""
    items, total = await service.list_people(read, page, group_id=group_id, search=search)
    return page_response(items, total, page)


@router.get("/attendance/people/{person_id}", response_model=PersonOut)
async def get_person(person_id: uuid.UUID, read: Reads) -> PersonOut:
    return PersonOut.model_validate(await service.read_person(read, person_id))


@router.patch("/attendance/people/{person_id}", status_code=204)
async def update_person(
    person_id: uuid.UUID, body: PersonUpdate, session: SessionDep, principal: Writer
) -> Response:
    await service.update_person(session, principal, person_id, body)
    return Response(status_code=204)


@router.delete("/attendance/people/{person_id}", response_model=PersonDeleted)
async def delete_person(
    person_id: uuid.UUID, session: SessionDep, principal: Writer
) -> PersonDeleted:
    """With the person go their consents, marks, embeddings and enrolment photos (the
    photos by a job queued with the deletion: a failed commit keeps them)."""
    return await service.delete_person(session, principal, person_id)


@router.post("/attendance/people/{person_id}/consents", response_model=ConsentOut, status_code=201)
async def record_consent(
    person_id: uuid.UUID, body: ConsentCreate, session: SessionDep, principal: Enroller
) -> ConsentOut:
    return await service.record_consent(session, principal, person_id, body)


@router.get("/attendance/people/{person_id}/consents", response_model=list[ConsentOut])
async def list_consents(person_id: uuid.UUID, read: EnrolmentReads) -> list[ConsentOut]:
    return [ConsentOut(**row) for row in await service.list_consents(read, person_id)]


@router.post("/attendance/people/{person_id}/faces", response_model=FaceOut, status_code=201)
@PHOTO_LIMIT
async def enrol_face(
    person_id: uuid.UUID,
    photo: UploadFile,
    session: SessionDep,
    storage: StorageDep,
    settings: SettingsDep,
    principal: Enroller,
) -> FaceOut:
    """One face per photo; refused (422 `enrolment_refused`, with the failed `gate`) when
    it is not exactly one face, too small, blurred, not frontal or badly lit; 409
    `consent_required` before consent is recorded."""
    return await service.enrol(session, storage, settings, principal, person_id, photo)


@router.get("/attendance/people/{person_id}/faces", response_model=list[FaceOut])
async def list_faces(person_id: uuid.UUID, read: EnrolmentReads) -> list[FaceOut]:
    return [FaceOut(**row) for row in await service.list_faces(read, person_id)]


@router.delete("/attendance/people/{person_id}/faces/{face_id}", status_code=204)
async def delete_face(
    person_id: uuid.UUID,
    face_id: uuid.UUID,
    session: SessionDep,
    principal: Enroller,
) -> Response:
    """The embedding and its stored photo (removed by a job once the deletion commits);
    re-enrolment replaces by deleting and adding."""
    await service.delete_face(session, principal, person_id, face_id)
    return Response(status_code=204)


@router.post("/attendance/recognitions", response_model=Recognition)
@PHOTO_LIMIT
async def recognise(
    photo: UploadFile, session: SessionDep, settings: SettingsDep, principal: Marker
) -> Recognition:
    """Who is in the photo, without marking anyone: each face is named only when it is
    closer than the threshold and clearly closer to one person than to any other. Naming
    people from a photo is for who takes attendance, not for every reader."""
    return await service.recognise(session, settings, principal, photo)


@router.get("/attendance/recognition-settings", response_model=RecognitionSettings)
async def get_recognition_settings(read: SettingsReads) -> RecognitionSettings:
    return await service.recognition_settings(read)


@router.put("/attendance/recognition-settings", response_model=RecognitionSettings)
async def put_recognition_settings(
    body: RecognitionSettingsUpdate, session: SessionDep, principal: SettingsWriter
) -> RecognitionSettings:
    return await service.update_recognition_settings(session, principal, body)


@router.get("/attendance/calibration", response_model=Calibration)
async def calibration(read: SettingsReads) -> Calibration:
    """Leave-one-out over the org's enrolled faces: false accepts and false rejects at
    candidate thresholds, for choosing the org's threshold."""
    return await service.calibrate(read)


@router.post("/attendance/groups/{group_id}/sessions", response_model=SessionOut, status_code=201)
async def create_session(
    group_id: uuid.UUID, body: SessionCreate, session: SessionDep, principal: Marker
) -> SessionOut:
    return await service.create_session(session, principal, group_id, body)


@router.get("/attendance/sessions/{session_id}", response_model=SessionDetail)
async def get_session(session_id: uuid.UUID, read: Reads) -> SessionDetail:
    """Who is marked present (with confidence and box) and which members are absent."""
    return await service.read_session(read, session_id)


@router.post("/attendance/sessions/{session_id}/marks", status_code=204)
async def mark_by_hand(
    session_id: uuid.UUID, body: ManualMark, session: SessionDep, principal: Marker
) -> Response:
    """A teacher's override with a reason (audited): present, or a mark taken back."""
    await service.mark_by_hand(session, principal, session_id, body)
    return Response(status_code=204)


@router.get("/attendance/sessions/{session_id}/reviews", response_model=list[ReviewOut])
async def list_reviews(session_id: uuid.UUID, read: Reads) -> list[ReviewOut]:
    """Doubtful faces of the session's class photos, open and decided."""
    return await service.list_reviews(read, session_id)


@router.post("/attendance/reviews/{review_id}/decision", response_model=ReviewOut)
async def decide_review(
    review_id: uuid.UUID, body: ReviewDecision, session: SessionDep, principal: Marker
) -> ReviewOut:
    """Confirm the candidate, correct to another member, or reject (`person_id` null)."""
    return await service.decide_review(session, principal, review_id, body)


@router.post(
    "/attendance/sessions/{session_id}/photos",
    response_model=JobOut,
    status_code=status.HTTP_202_ACCEPTED,
)
@PHOTO_LIMIT
async def mark_from_photo(
    session_id: uuid.UUID,
    photo: UploadFile,
    response: Response,
    session: SessionDep,
    storage: StorageDep,
    principal: Marker,
    idempotency: IdempotencyDep,
) -> JobOut:
    """Queue marking the group's members found in a class photo: `202` with the job
    (`Location`); its progress comes as `attendance.photo_progress` events, and its result
    lists who was marked, unknown faces, doubtful faces queued for review and members not
    seen (as `PhotoMarking`). The photo and its annotated copy are the session's evidence."""
    record = await evidence.queue_photo_marking(session, storage, principal, session_id, photo)
    location = {"Location": f"/api/v1/jobs/{record.id}"}
    response.headers.update(location)
    return idempotency.remember(JobOut.model_validate(record), status.HTTP_202_ACCEPTED, location)


# --- live camera, photo evidence ------------------------------------------------------------

public_router = camera_socket.public_router
MarkerReads = Annotated[TenantRead, Depends(tenant_read("attendance:mark"))]
"""The camera WebSocket authenticates itself (browsers cannot set headers on a WebSocket)."""


@router.get("/attendance/sessions/{session_id}/evidence", response_model=list[EvidenceOut])
async def list_evidence(
    session_id: uuid.UUID, read: MarkerReads, storage: StorageDep
) -> list[EvidenceOut]:
    """The class photos the session was marked from and their annotated copies (signed
    links). They show faces and names: for who may mark attendance, not every reader."""
    return await evidence.list_evidence(read, storage, session_id)


@router.get("/attendance/camera-settings", response_model=CameraSettings)
async def get_camera_settings(read: SettingsReads) -> CameraSettings:
    return await camera.camera_settings(read)


@router.put("/attendance/camera-settings", response_model=CameraSettings)
async def put_camera_settings(
    body: CameraSettingsUpdate, session: SessionDep, principal: SettingsWriter
) -> CameraSettings:
    """How many frames within how many seconds the camera must recognise someone in before
    it marks them present."""
    return await camera.update_camera_settings(session, principal, body)


# --- timetables, group owners, org settings --------------------------------------------------


@router.patch("/attendance/groups/{group_id}", response_model=GroupOut)
async def update_group(
    group_id: uuid.UUID,
    body: GroupUpdate,
    session: SessionDep,
    principal: Writer,
    idempotency: IdempotencyDep,
) -> GroupOut:
    """Description, the timetable's zone (null: the org's) and the owner, a user of the
    org who gets the group's daily summary."""
    updated = await timetable.update_group(session, principal, group_id, body)
    return idempotency.remember(updated, 200)


@router.get("/attendance/groups/{group_id}/timetable", response_model=TimetableOut)
async def get_timetable(group_id: uuid.UUID, read: Reads) -> TimetableOut:
    return await timetable.read_timetable(read, group_id)


@router.put("/attendance/groups/{group_id}/timetable", response_model=TimetableOut)
async def put_timetable(
    group_id: uuid.UUID, body: TimetableIn, session: SessionDep, principal: Writer
) -> TimetableOut:
    """The weekly slots (wall-clock times in the group's zone) become exactly these;
    sessions generated before stay."""
    return await timetable.replace_timetable(session, principal, group_id, body)


@router.post("/attendance/groups/{group_id}/timetable/sessions", response_model=GeneratedSessions)
async def generate_sessions(
    group_id: uuid.UUID,
    body: SessionGeneration,
    session: SessionDep,
    principal: Marker,
    idempotency: IdempotencyDep,
) -> GeneratedSessions:
    """A session per slot and day of the range; sessions generated before are counted in
    `existing` and not made again, so a repeated request changes nothing (with the same
    `Idempotency-Key`, it answers what the first one did)."""
    generated = await timetable.generate_sessions(session, principal, group_id, body)
    return idempotency.remember(generated, 200)


@router.get("/attendance/org-settings", response_model=OrgSettings)
async def get_org_settings(read: SettingsReads) -> OrgSettings:
    return await timetable.read_org_settings(read)


@router.patch("/attendance/org-settings", response_model=OrgSettings)
async def patch_org_settings(
    body: OrgSettingsUpdate,
    session: SessionDep,
    principal: SettingsWriter,
    idempotency: IdempotencyDep,
) -> OrgSettings:
    """The org's zone (timetables, daily summaries) and how long class photos are kept."""
    updated = await timetable.update_org_settings(session, principal, body)
    return idempotency.remember(updated, 200)


# --- statistics -----------------------------------------------------------------------------

StatisticsReads = Annotated[StatisticsQuery, Depends(query_model(StatisticsQuery))]
RangeReads = Annotated[RangeQuery, Depends(query_model(RangeQuery))]


@router.get("/attendance/statistics/people", response_model=Page[PersonStatistics])
async def people_statistics(read: Reads, page: PageDep, query: StatisticsReads) -> Response:
    """Per person over the range: sessions, attended, late, absences, rate and absence
    streaks; `group_id` limits it to a group's sessions and members."""
    items, total = await statistics.people(read, page, query)
    return page_response(items, total, page)


@router.get("/attendance/statistics/chronic-absentees", response_model=Page[PersonStatistics])
async def chronic_absentees(
    read: Reads,
    page: PageDep,
    query: Annotated[AbsenteeQuery, Depends(query_model(AbsenteeQuery))],
) -> Response:
    """People whose attendance rate is under `below` (default 0.8), lowest rate first."""
    items, total = await statistics.chronic_absentees(read, page, query)
    return page_response(items, total, page)


@router.get("/attendance/statistics/groups", response_model=Page[GroupStatistics])
async def groups_statistics(read: Reads, page: PageDep, query: StatisticsReads) -> Response:
    items, total = await statistics.groups(read, page, query)
    return page_response(items, total, page)


@router.get("/attendance/statistics/sessions", response_model=Page[SessionStatistics])
async def sessions_statistics(read: Reads, page: PageDep, query: StatisticsReads) -> Response:
    items, total = await statistics.sessions(read, page, query)
    return page_response(items, total, page)


@router.get("/attendance/statistics/periods", response_model=Page[PeriodStatistics])
async def period_statistics(
    read: Reads,
    page: PageDep,
    query: Annotated[PeriodQuery, Depends(query_model(PeriodQuery))],
) -> Response:
    """Totals per day, week (from Monday) or month of the range."""
    items, total = await statistics.periods(read, page, query)
    return page_response(items, total, page)


@router.get("/attendance/people/{person_id}/statistics", response_model=PersonStatistics)
async def person_statistics(
    person_id: uuid.UUID, read: Reads, span: RangeReads
) -> PersonStatistics:
    return PersonStatistics(**await statistics.person(read, person_id, span))


@router.get("/attendance/groups/{group_id}/statistics", response_model=GroupStatistics)
async def group_statistics(group_id: uuid.UUID, read: Reads, span: RangeReads) -> GroupStatistics:
    return GroupStatistics(**await statistics.group(read, group_id, span))


@router.get(
    "/attendance/groups/{group_id}/exports/month",
    response_class=Response,
    responses={
        200: {
            "content": {exports.CSV_TYPE: {}, exports.XLSX_TYPE: {}},
            "description": "The month's statistics as a file",
        }
    },
)
async def export_month(
    group_id: uuid.UUID,
    read: Reads,
    cache: CacheDep,
    query: Annotated[MonthExportQuery, Depends(query_model(MonthExportQuery))],
    if_none_match: Annotated[str | None, Header(max_length=200)] = None,
) -> Response:
    """The group's month: `format=csv` one row per member; `format=xlsx` (default) sheets
    Members, Sessions and Register (P present, L late, A absent). The ETag changes with
    the content: `If-None-Match` with it answers 304 while nothing changed."""
    month = query.first_day(datetime.now(UTC).date())
    report = await exports.month_report(read, group_id, month)
    digest = report.digest
    etag = f'"{digest}-{query.file_format}"'
    if if_none_match == etag:
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers={"ETag": etag})
    if query.file_format == "csv":
        data, media_type, suffix = exports.as_csv(report), exports.CSV_TYPE, "csv"
    else:
        assert read.principal is not None  # the read confirmed the caller
        data = await exports.as_xlsx(report, digest, read.principal.org_id, cache)
        media_type, suffix = exports.XLSX_TYPE, "xlsx"
    headers = {
        "Content-Disposition": f'attachment; filename="{report.stem}.{suffix}"',
        "ETag": etag,
    }
    return Response(data, media_type=media_type, headers=headers)
