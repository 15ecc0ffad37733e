"""One camera streaming one session: frames analysed at a bounded rate, members marked once
they were recognised often enough (see the package's docstring)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import anyio
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
from touchstone.attendance.live.settings import (
    DEFAULT_FRAMES_REQUIRED,
    DEFAULT_WINDOW_SECONDS,
    camera_row,
)
from touchstone.attendance.models import Mark
from touchstone.attendance.schemas import RecognisedFace
from touchstone.core.audit import record_audit
from touchstone.core.auth import Principal
from touchstone.core.config import Settings
from touchstone.core.db import Database, utcnow
from touchstone.core.errors import AppError
from touchstone.core.events import publish
from touchstone.core.live_socket import Send, error_message

MAX_FRAME_BYTES = 2 * 1024 * 1024
MAX_FRAME_PIXELS = 1920 * 1080
MAX_FRAMES_PER_SECOND = 5.0
"""A door camera needs a few frames a second; more would only burn the cores."""


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
            row = await camera_row(session, principal.org_id)
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
