"""One live purity test, whatever carries its frames (WebSocket or WebRTC).

Back-pressure: frames go into a one-slot mailbox (`LatestFrame`); a frame that arrives
while the pipeline is busy replaces the waiting one, which is counted as dropped. The queue
can never grow, and the status a client sees is always about the freshest frame it sent.

The pipeline is CPU-bound, so each step runs in a worker thread (`anyio.to_thread`), which
is not abandoned on cancellation: the pipeline is never snapshotted mid-frame. A transport
ends a run by closing the mailbox, never by cancelling the run, so a result being saved
is saved whole.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import anyio
import structlog

from touchstone.appraisal import repository
from touchstone.appraisal.exceptions import InvalidFrame, PurityTestBusy
from touchstone.appraisal.purity import service
from touchstone.appraisal.purity.engines import engine_for
from touchstone.appraisal.purity.frames import BgrFrame
from touchstone.appraisal.purity.pipeline import Karat, PurityPipeline, PurityStatus
from touchstone.core.auth import Principal
from touchstone.core.config import Settings
from touchstone.core.db import Database
from touchstone.core.live_socket import Send, error_message
from touchstone.core.storage import Storage, StoredObject, file_kind

log = structlog.get_logger("touchstone.appraisal.live")

MAX_FRAME_PIXELS = 1920 * 1080
"""Full HD: more than any touchstone needs; bigger frames are refused from their header."""
MAX_FRAME_BYTES = 4 * 1024 * 1024
EVIDENCE_KIND = file_kind(
    "purity-evidence", permission="appraisals:read", visible=repository.evidence_visible
)

DecodeFrame = Callable[[], tuple[BgrFrame, float]]
"""Turns what a transport received into (BGR frame, seconds); run in the worker thread."""


class LatestFrame:
    """A mailbox of one: `put` never waits, and replaces (drops) a frame not yet taken."""

    def __init__(self) -> None:
        self._frame: DecodeFrame | None = None
        self._ready = asyncio.Event()
        self._closed = False
        self.received = 0
        self.dropped = 0

    def put(self, frame: DecodeFrame) -> None:
        if self._closed:
            return
        self.received += 1
        if self._frame is not None:
            self.dropped += 1
        self._frame = frame
        self._ready.set()

    def close(self) -> None:
        self._closed = True
        self._ready.set()

    async def take(self) -> DecodeFrame | None:
        """The freshest frame, or None once closed."""
        await self._ready.wait()
        frame, self._frame = self._frame, None
        if not self._closed:
            self._ready.clear()
        return None if self._closed else frame


_active: set[uuid.UUID] = set()
"""Tests streaming in this process: a second connection to one of them is refused."""


@dataclass
class PurityRun:
    """A test being streamed: feeds the pipeline, pushes statuses, saves what it must."""

    database: Database
    storage: Storage
    principal: Principal
    test_id: uuid.UUID
    pipeline: PurityPipeline
    send: Send
    frames: LatestFrame
    processed: int = 0
    finished: bool = False
    client_gone: bool = False

    @classmethod
    async def open(
        cls,
        database: Database,
        storage: Storage,
        settings: Settings,
        principal: Principal,
        test_id: uuid.UUID,
        transport: str,
        send: Send,
    ) -> PurityRun:
        """Mark the test streaming (resuming from its snapshot if it has one).

        The engine is built and the snapshot restored inside the transaction that marks the
        test started, so a detector that cannot load or a snapshot that cannot be resumed
        leaves the test exactly as it was.
        """
        if test_id in _active:
            raise PurityTestBusy()
        _active.add(test_id)
        try:
            async with database.transaction(
                org_id=principal.org_id, user_id=principal.user_id
            ) as session:
                test = await service.start(session, principal, test_id, transport)
                engine = await anyio.to_thread.run_sync(engine_for, test.engine, settings)
                pipeline = (
                    PurityPipeline.restore(test.snapshot, engine)
                    if test.snapshot is not None
                    else PurityPipeline(
                        engine, references=tuple(Karat(k) for k in test.reference_karats)
                    )
                )
        except BaseException:
            _active.discard(test_id)
            raise
        return cls(database, storage, principal, test_id, pipeline, send, LatestFrame())

    async def _push(self, message: dict[str, Any]) -> None:
        if self.client_gone:
            return
        try:
            await self.send(message)
        except Exception:  # the client went away; the transport notices and closes
            self.client_gone = True

    def _step(self, decode: DecodeFrame) -> PurityStatus:
        frame, timestamp = decode()
        return self.pipeline.process(frame, timestamp)

    def _counts(self) -> service.FrameCounts:
        return service.FrameCounts(self.frames.received, self.processed, self.frames.dropped)

    async def process(self) -> None:
        """Until the test completes or the transport closes the mailbox."""
        while (decode := await self.frames.take()) is not None:
            try:
                status = await anyio.to_thread.run_sync(self._step, decode)
            except InvalidFrame as error:
                await self._push(error_message(error))
                continue
            self.processed += 1
            message = status.to_message()
            message["frames_dropped"] = self.frames.dropped
            if self.pipeline.result is not None:
                message["appraisal_status"] = await self._save_result()
                message["saved"] = True
                await self._push(message)
                return
            if status.stage_changed:
                await self._checkpoint(message)
            await self._push(message)

    async def _checkpoint(self, message: dict[str, Any]) -> None:
        snapshot = await anyio.to_thread.run_sync(self.pipeline.snapshot)
        async with self._transaction() as session:
            await service.checkpoint(session, self.principal, self.test_id, message, snapshot)

    async def _save_result(self) -> str:
        result = self.pipeline.result
        assert result is not None
        stored: dict[str, StoredObject] = {}
        for name, jpeg in result.evidence.items():
            stored[name] = await self.storage.put(
                self.principal.org_id,
                _chunks(jpeg),
                kind=EVIDENCE_KIND,
                allowed_types={"image/jpeg"},
            )
        async with self._transaction() as session:
            status = await service.complete(
                session,
                self.principal,
                self.test_id,
                result,
                stored,
                self._counts(),
            )
        self.finished = True
        log.info("purity_test_completed", test_id=str(self.test_id), karat=result.karat.value)
        return status.value

    async def close(self) -> None:
        """After the transport stopped: an unfinished test is left interrupted, resumable."""
        try:
            if not self.finished:
                snapshot = await anyio.to_thread.run_sync(self.pipeline.snapshot)
                async with self._transaction() as session:
                    await service.interrupt(
                        session, self.principal, self.test_id, snapshot, self._counts()
                    )
                log.info("purity_test_interrupted", test_id=str(self.test_id))
        finally:
            _active.discard(self.test_id)

    def _transaction(self) -> Any:
        return self.database.transaction(
            org_id=self.principal.org_id, user_id=self.principal.user_id
        )


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def drive(run: PurityRun, receive: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run the pipeline while `receive` feeds frames; whichever ends first ends the test.

    When the client stops first, the mailbox closes and the frame in hand finishes, then
    `close` records the interruption. When the test completes first, receiving stops.
    """
    processor = asyncio.create_task(run.process())
    receiver = asyncio.create_task(receive())
    try:
        await asyncio.wait({processor, receiver}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        run.frames.close()
        receiver.cancel()
        await asyncio.gather(receiver, return_exceptions=True)
        outcome = await asyncio.gather(processor, return_exceptions=True)
        await run.close()
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
