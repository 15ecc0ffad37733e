"""Marking from a live camera at a door or kiosk: JPEG frames over the platform's WebSocket.

The socket authenticates and stays authorized the way the purity test's does
(`core.stream_auth`): a bearer token, an `X-API-Key` header or `?access_token=` (browsers
cannot set headers on a WebSocket), re-checked every `STREAM_RECHECK_SECONDS` and at the
token's expiry; when the credential ends (4401) or loses `attendance:mark` (1008) an `error`
message says why and the socket closes.

Binary messages are frames (JPEG or PNG, at most `MAX_FRAME_BYTES` and `MAX_FRAME_PIXELS`);
text messages take only `{"type": "ping"}`. A frame that cannot be used gets an `error`
message and the stream goes on. At most `MAX_FRAMES_PER_SECOND` frames are analysed; a
frame arriving while another waits replaces it (counted in `frames_dropped`), so a fast
camera can neither queue work nor make the answers lag.

Each face is decided as in a photo (open set: the org's threshold and margin, against the
whole org so an enrolled non-member is never taken for the member they resemble). A member
is marked present once they have been recognised in `frames_required` frames within
`window_seconds` (the org's camera settings), once per session (an `INSERT … ON CONFLICT DO
NOTHING`, so two kiosks on one door cannot mark twice), with status `late` when the first
of those frames came after the session's `late_after`. A stranger is never named: unknown faces and
enrolled people outside the group carry no name.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any

import anyio
from fastapi import Query, WebSocket, WebSocketDisconnect, status
from sqlalchemy import bindparam, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from touchstone.attendance import repository, service, vision
from touchstone.attendance.engines import FaceEngine, face_engine
from touchstone.attendance.engines.liveness import Liveness, LivenessEngine, liveness_engine
from touchstone.attendance.exceptions import (
    FrameTooLarge,
    InvalidFrame,
    InvalidPhoto,
    PhotoTooLarge,
    SessionNotFound,
)
from touchstone.attendance.models import CameraSettings as CameraRow
from touchstone.attendance.models import Mark
from touchstone.attendance.schemas import (
    CameraSettings,
    CameraSettingsUpdate,
    RecognisedFace,
)
from touchstone.core.audit import record_audit
from touchstone.core.auth import API_KEY_PREFIX, Authenticator, Credential, Principal
from touchstone.core.config import Settings
from touchstone.core.db import Database, enter, utcnow
from touchstone.core.errors import AppError, InvalidInput, Unauthorized
from touchstone.core.events import publish
from touchstone.core.reads import Statements, TenantRead, row_query
from touchstone.core.routing import ApiRouter
from touchstone.core.stream_auth import StreamAuthorization, close_code

MARKING = "attendance:mark"
MAX_FRAME_BYTES = 2 * 1024 * 1024
MAX_FRAME_PIXELS = 1920 * 1080
MAX_FRAMES_PER_SECOND = 5.0
"""A door camera needs a few frames a second; more would only burn the cores."""
DEFAULT_FRAMES_REQUIRED = 3
DEFAULT_WINDOW_SECONDS = 10.0

public_router = ApiRouter(tags=["attendance"])
Send = Callable[[dict[str, Any]], Awaitable[None]]


# --- the org's camera settings --------------------------------------------------------------

CAMERA_SETTINGS = row_query(
    select(CameraRow.frames_required, CameraRow.window_seconds).where(
        CameraRow.org_id == bindparam("org_id")
    )
)


async def camera_settings(read: TenantRead) -> CameraSettings:
    def plan(principal: Principal) -> Statements:
        return [(CAMERA_SETTINGS.query, {"org_id": principal.org_id})]

    (rows,) = await read.fetch(plan)
    if not rows:
        return CameraSettings(
            frames_required=DEFAULT_FRAMES_REQUIRED,
            window_seconds=DEFAULT_WINDOW_SECONDS,
            is_default=True,
        )
    frames, window = rows[0]
    return CameraSettings(frames_required=frames, window_seconds=window, is_default=False)


async def update_camera_settings(
    session: AsyncSession, principal: Principal, data: CameraSettingsUpdate
) -> CameraSettings:
    row = await _camera_row(session, principal.org_id)
    if row is None:
        row = CameraRow(org_id=principal.org_id)
        session.add(row)
    row.frames_required, row.window_seconds = data.frames_required, data.window_seconds
    row.updated_at = utcnow()
    await record_audit(
        session,
        principal,
        "attendance.camera_settings.updated",
        "attendance_settings",
        principal.org_id,
        data.model_dump(),
    )
    await session.flush()
    return CameraSettings(**data.model_dump(), is_default=False)


async def _camera_row(session: AsyncSession, org_id: uuid.UUID) -> CameraRow | None:
    found: CameraRow | None = await session.scalar(
        select(CameraRow).where(CameraRow.org_id == org_id)
    )
    return found


# --- deciding when a person is present ------------------------------------------------------


@dataclass
class Sightings:
    """When each member was recognised in this stream, within the last `window` seconds."""

    required: int
    window: float
    seen: dict[uuid.UUID, deque[tuple[float, datetime]]] = field(default_factory=dict)

    def add(self, person: uuid.UUID, at: float, wall: datetime) -> int:
        """Record a recognition at monotonic time `at`; how many are in the window now."""
        times = self.seen.setdefault(person, deque())
        times.append((at, wall))
        while times and times[0][0] < at - self.window:
            times.popleft()
        return len(times)

    def first(self, person: uuid.UUID) -> datetime:
        """When the earliest recognition still in the window happened (wall clock)."""
        return self.seen[person][0][1]


class LatestFrame:
    """A mailbox of one: `put` never waits, and replaces (drops) a frame not yet taken."""

    def __init__(self) -> None:
        self.frame: bytes | None = None
        self.ready = asyncio.Event()
        self.closed = False
        self.received = 0
        self.dropped = 0

    def put(self, frame: bytes) -> None:
        if self.closed:
            return
        self.received += 1
        if self.frame is not None:
            self.dropped += 1
        self.frame = frame
        self.ready.set()

    def close(self) -> None:
        self.closed = True
        self.ready.set()

    async def take(self) -> bytes | None:
        """The freshest frame, or None once closed."""
        await self.ready.wait()
        frame, self.frame = self.frame, None
        if not self.closed:
            self.ready.clear()
        return None if self.closed else frame


def frame_scene(engine: FaceEngine, liveness: LivenessEngine, data: bytes) -> vision.Scene:
    """Every face of one frame with its descriptor and liveness verdict; run in a thread."""
    started = time.perf_counter()
    try:
        image = vision.decode(data, max_pixels=MAX_FRAME_PIXELS)
    except PhotoTooLarge as error:
        raise FrameTooLarge(error.detail.replace("photo", "frame")) from error
    except InvalidPhoto as error:
        raise InvalidFrame() from error
    faces = [
        vision.seen_face(engine, liveness, image, face) for face in vision.find_faces(engine, image)
    ]
    return vision.Scene(faces, time.perf_counter() - started, engine.name)


@dataclass
class CameraRun:
    """One camera streaming one session: analyses frames and marks who it sees."""

    database: Database
    principal: Principal
    session_id: uuid.UUID
    late_after: datetime | None
    sightings: Sightings
    engine: FaceEngine
    liveness: LivenessEngine
    send: Send
    frames: LatestFrame = field(default_factory=LatestFrame)
    processed: int = 0
    client_gone: bool = False

    @classmethod
    async def open(
        cls,
        database: Database,
        settings: Settings,
        principal: Principal,
        session_id: uuid.UUID,
        send: Send,
    ) -> CameraRun:
        """`SessionNotFound` for a missing session, another org's included."""
        async with database.transaction(
            org_id=principal.org_id, user_id=principal.user_id
        ) as session:
            taken = await repository.get_session(session, principal.org_id, session_id)
            if taken is None:
                raise SessionNotFound()
            row = await _camera_row(session, principal.org_id)
        required, window = (
            (row.frames_required, row.window_seconds)
            if row is not None
            else (DEFAULT_FRAMES_REQUIRED, DEFAULT_WINDOW_SECONDS)
        )
        engine = await anyio.to_thread.run_sync(face_engine, settings)
        return cls(
            database,
            principal,
            session_id,
            taken.late_after,
            Sightings(required, window),
            engine,
            liveness_engine(settings.liveness_engine),
            send,
        )

    async def process(self) -> AppError | None:
        """Until the mailbox closes (None) or the session can no longer be marked (why)."""
        loop = asyncio.get_running_loop()
        next_slot = 0.0
        while True:
            await asyncio.sleep(max(0.0, next_slot - loop.time()))
            data = await self.frames.take()
            if data is None:
                return None
            next_slot = loop.time() + 1 / MAX_FRAMES_PER_SECOND
            received = time.monotonic(), utcnow()
            try:
                scene = await anyio.to_thread.run_sync(
                    frame_scene, self.engine, self.liveness, data
                )
            except (InvalidFrame, FrameTooLarge) as error:
                await self.push(error_message(error))
                continue
            try:
                message = await self.decide(scene, *received)
            except AppError as error:
                return error
            await self.push(message)
            if self.client_gone:
                return None

    async def push(self, message: dict[str, Any]) -> None:
        """Send, unless the client has gone (a frame in hand when it hung up): then stop."""
        if self.client_gone:
            return
        try:
            await self.send(message)
        except Exception:  # the client went away; the receiving side notices and ends
            self.client_gone = True

    async def decide(self, scene: vision.Scene, at: float, wall: datetime) -> dict[str, Any]:
        """Recognise the frame's faces, mark members seen often enough; the frame's message."""
        self.processed += 1
        async with self.database.transaction(
            org_id=self.principal.org_id, user_id=self.principal.user_id
        ) as session:
            taken = await repository.get_session(session, self.principal.org_id, self.session_id)
            if taken is None:
                raise SessionNotFound("The session was deleted")
            faces = await service.recognise_scene(session, self.principal, scene)
            members = await repository.member_ids(session, self.principal.org_id, taken.group_id)
            marked_already = set(
                await repository.marks_of(session, self.principal.org_id, self.session_id)
            )
            shown, marked = [], []
            for face in faces:
                entry, mark = await self._face(session, face, members, marked_already, at, wall)
                shown.append(entry)
                if mark is not None:
                    marked.append(mark)
        return {
            "type": "frame",
            "frame": self.processed,
            "faces": shown,
            "marked": marked,
            "frames_received": self.frames.received,
            "frames_dropped": self.frames.dropped,
            "seconds": round(scene.seconds, 3),
        }

    async def _face(
        self,
        session: AsyncSession,
        face: RecognisedFace,
        members: set[uuid.UUID],
        marked_already: set[uuid.UUID],
        at: float,
        wall: datetime,
    ) -> tuple[dict[str, Any], dict[str, Any] | None]:
        entry: dict[str, Any] = {"box": face.box, "liveness": face.liveness}
        person = face.person_id
        if person is None:
            entry.update(status="unknown", reason=face.reason)
            return entry, None
        if person not in members:
            entry.update(status="not_in_group")  # enrolled elsewhere in the org: no name here
            return entry, None
        if face.liveness == Liveness.SPOOF:
            entry.update(status="spoof_suspected")  # neither counted nor marked
            return entry, None
        count = self.sightings.add(person, at, wall)
        entry.update(
            person_id=str(person),
            code=face.code,
            full_name=face.full_name,
            confidence=face.confidence,
            sightings=count,
            needed=self.sightings.required,
        )
        if person in marked_already:
            entry["status"] = "present"
            return entry, None
        if count < self.sightings.required:
            entry["status"] = "recognised"
            return entry, None
        first = self.sightings.first(person)
        late = self.late_after is not None and first > self.late_after
        inserted = await session.scalar(
            insert(Mark)
            .values(
                id=uuid.uuid4(),
                org_id=self.principal.org_id,
                session_id=self.session_id,
                person_id=person,
                source="camera",
                distance=face.distance,
                confidence=face.confidence,
                box=face.box,
                marked_by=self.principal.id,
                status="late" if late else "present",
                liveness=face.liveness,
                created_at=utcnow(),
            )
            .on_conflict_do_nothing(index_elements=[Mark.session_id, Mark.person_id])
            .returning(Mark.id)
        )
        if inserted is None:  # another camera marked them a moment ago
            entry["status"] = "present"
            return entry, None
        marked_already.add(person)
        status = "late" if late else "present"
        details = {"person_id": str(person), "status": status, "first_seen": first.isoformat()}
        await record_audit(
            session,
            self.principal,
            "attendance.session.marked_from_camera",
            "attendance_session",
            self.session_id,
            {**details, "frames": count, "distance": face.distance},
        )
        await publish(
            session,
            self.principal.org_id,
            "attendance.camera_marked",
            aggregate=("attendance_session", self.session_id),
            data=details,
        )
        entry["status"] = "marked"
        mark = {
            "person_id": str(person),
            "code": face.code,
            "full_name": face.full_name,
            "status": status,
            "first_seen": first.isoformat(),
            "liveness": face.liveness,
        }
        return entry, mark


# --- the socket -------------------------------------------------------------------------------


def error_message(error: AppError) -> dict[str, Any]:
    return {"type": "error", "code": error.code, "status": error.status, "detail": error.detail}


def websocket_credential(websocket: WebSocket, access_token: str | None) -> Credential:
    if key := websocket.headers.get("x-api-key"):
        return Credential("api_key", key)
    authorization = websocket.headers.get("authorization", "")
    token = authorization.removeprefix("Bearer ").strip() if authorization else access_token
    if not token:
        raise Unauthorized("Send a bearer token, an X-API-Key header or access_token")
    return Credential("api_key" if token.startswith(API_KEY_PREFIX) else "access_token", token)


async def authenticate(websocket: WebSocket, credential: Credential) -> StreamAuthorization:
    """The camera's operator, held to `attendance:mark` for as long as the socket is open."""
    state = websocket.app.state
    authenticator: Authenticator = state.authenticator
    database: Database = state.database
    entry = authenticator.entry(credential)
    async with database.transaction() as session:
        principal = await enter(session, entry)
    principal.ensure(MARKING)
    return StreamAuthorization(
        database, entry, principal, frozenset({MARKING}), state.settings.stream_recheck_seconds
    )


@public_router.websocket("/attendance/sessions/{session_id}/camera")
async def camera_websocket(
    websocket: WebSocket,
    session_id: uuid.UUID,
    access_token: Annotated[str | None, Query(max_length=4096)] = None,
) -> None:
    """Mark a session from a live camera: frames in, one `frame` message per analysed frame
    out (faces with boxes, names of recognised members or "unknown", who was just marked)."""
    try:
        authorization = await authenticate(websocket, websocket_credential(websocket, access_token))
    except AppError as error:
        await websocket.close(code=status.WS_1008_POLICY_VIOLATION, reason=error.code)
        return
    await websocket.accept()
    lock = asyncio.Lock()

    async def send(message: dict[str, Any]) -> None:
        async with lock:
            await websocket.send_text(json.dumps(message, separators=(",", ":")))

    with contextlib.suppress(WebSocketDisconnect):
        try:
            state = websocket.app.state
            run = await CameraRun.open(
                state.database, state.settings, authorization.principal, session_id, send
            )
        except AppError as error:
            await send(error_message(error))
            await websocket.close(code=status.WS_1008_POLICY_VIOLATION, reason=error.code)
            return
        ended = await _stream(websocket, authorization, run)
        if ended is not None:
            await send(error_message(ended))
            await websocket.close(code=close_code(ended), reason=ended.code)


async def _stream(
    websocket: WebSocket, authorization: StreamAuthorization, run: CameraRun
) -> AppError | None:
    """Receive while the authorization holds and analyse alongside; why it ended, if not by
    the client hanging up."""

    async def receive() -> None:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            data: bytes | None = message.get("bytes")
            if data is not None:
                if len(data) > MAX_FRAME_BYTES:
                    too_large = FrameTooLarge(
                        f"The frame has {len(data)} bytes; at most {MAX_FRAME_BYTES}"
                    )
                    await run.push(error_message(too_large))
                else:
                    run.frames.put(data)
                continue
            await _answer_text(message.get("text") or "", run.push)

    receiver = asyncio.create_task(authorization.guard(receive()))
    processor = asyncio.create_task(run.process())
    try:
        await asyncio.wait({receiver, processor}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        run.frames.close()
        receiver.cancel()
        received, processed = await asyncio.gather(receiver, processor, return_exceptions=True)
    for outcome in (received, processed):
        if isinstance(outcome, AppError):
            return outcome  # the credential ended, or the session can no longer be marked
        if isinstance(outcome, BaseException) and not isinstance(
            outcome, asyncio.CancelledError | WebSocketDisconnect
        ):
            raise outcome
    return None


async def _answer_text(text: str, send: Send) -> None:
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("type") == "ping":
        await send({"type": "pong"})
        return
    await send(error_message(InvalidInput("Send frames as binary messages; text takes only ping")))
