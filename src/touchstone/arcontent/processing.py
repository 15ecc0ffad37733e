"""Processing an overlay video as a job: probe, two MP4 renditions and a poster.

The job reports progress on its job record and as `arcontent.processing_progress` events;
its files are stored before the content row points at them, and removed again if that last
transaction fails. A video that cannot be an overlay (no video track, too long, not
decodable) fails at once (a 4xx `AppError` is permanent); the `on_end` hook leaves the
content `failed` with the reason, and `POST …/reprocess` queues it again.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from touchstone.arcontent import media, repository
from touchstone.arcontent.exceptions import ContentNotFound
from touchstone.core.db import utcnow
from touchstone.core.events import publish
from touchstone.core.jobs import JobRun, job
from touchstone.core.storage import Storage, file_kind, get_storage

log = structlog.get_logger("touchstone.arcontent.processing")

RENDITION_KIND = file_kind("ar-rendition", permission="arcontent:read")


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _progress(run: JobRun, content_id: uuid.UUID, percent: int, message: str) -> None:
    await run.progress(percent, message)
    async with run.transaction() as session:
        await publish(
            session,
            run.org_id,
            "arcontent.processing_progress",
            aggregate=("ar_content", content_id),
            data={"content_id": str(content_id), "progress": percent, "message": message},
        )


async def process(
    run: JobRun, content_id: uuid.UUID, video_key: str, storage: Storage
) -> dict[str, Any]:
    """Process `video_key`; a video replaced since the job was queued is left to its own
    job (this one ends without touching the content)."""
    async with run.transaction() as session:
        content = await repository.get_content(session, run.org_id, content_id)
        if content is None:
            raise ContentNotFound("The content was removed before its video was processed")
        if content.video_key != video_key:
            return {"content_id": str(content_id), "superseded": True}
        content.processing = "processing"
    with tempfile.TemporaryDirectory(prefix="ar-video-") as folder:
        source = Path(folder) / "source"
        opened = await storage.open(run.org_id, video_key)
        with source.open("wb") as file:
            async for chunk in opened.chunks:
                file.write(chunk)
        probed = await anyio.to_thread.run_sync(media.probe, source)
        await _progress(run, content_id, 5, f"{probed.codec} {probed.width}x{probed.height}")
        made: dict[str, dict[str, Any]] = {}
        stored: list[str] = []
        try:
            for index, rendition in enumerate(media.RENDITIONS):
                target = Path(folder) / f"{rendition.name}.mp4"
                facts = await anyio.to_thread.run_sync(media.transcode, source, target, rendition)
                put = await storage.put(
                    run.org_id,
                    _chunks(target.read_bytes()),
                    kind=RENDITION_KIND,
                    allowed_types={"video/mp4"},
                )
                stored.append(put.key)
                made[rendition.name] = {"key": put.key, "content_type": "video/mp4", **facts}
                percent = 5 + 85 * (index + 1) // len(media.RENDITIONS)
                await _progress(run, content_id, percent, f"{rendition.name} rendition written")
            jpeg, facts = await anyio.to_thread.run_sync(media.poster, source)
            put = await storage.put(
                run.org_id, _chunks(jpeg), kind=RENDITION_KIND, allowed_types={"image/jpeg"}
            )
            stored.append(put.key)
            made["poster"] = {"key": put.key, "content_type": "image/jpeg", **facts}
            async with run.transaction() as session:
                content = await repository.get_content(session, run.org_id, content_id)
                if content is None or content.video_key != video_key:
                    raise ContentNotFound("The content's video changed while it was processed")
                replaced = [kept["key"] for kept in (content.renditions or {}).values()]
                content.renditions, content.processing = made, "ready"
                content.failure_reason, content.updated_at = None, utcnow()
                await publish(
                    session,
                    run.org_id,
                    "arcontent.processed",
                    aggregate=("ar_content", content_id),
                    data={"content_id": str(content_id), "seconds": probed.seconds},
                )
        except BaseException:
            for key in stored:
                await storage.delete(run.org_id, key)
            raise
    for key in replaced:  # a reprocessed video's earlier renditions, once the new ones commit
        await storage.delete(run.org_id, key)
    log.info("arcontent_video_processed", seconds=probed.seconds, source=probed.codec)
    return {
        "content_id": str(content_id),
        "source": {"codec": probed.codec, "width": probed.width, "height": probed.height},
        "seconds": probed.seconds,
        "renditions": {
            name: {k: v for k, v in f.items() if k != "key"} for name, f in made.items()
        },
    }


async def processing_ended(
    session: AsyncSession,
    org_id: uuid.UUID,
    problem: dict[str, Any],
    *,
    content_id: str,
    video_key: str,
) -> None:
    """The job ended without renditions (a refused video, attempts used up, cancelled): the
    content says `failed` and why, unless its video was replaced meanwhile."""
    content = await repository.get_content(session, org_id, uuid.UUID(content_id))
    if content is None or content.video_key != video_key or content.processing == "ready":
        return
    reason = problem.get("detail") or problem["title"]
    content.processing, content.failure_reason = "failed", str(reason)[:500]
    content.updated_at = utcnow()
    await publish(
        session,
        org_id,
        "arcontent.processing_failed",
        aggregate=("ar_content", content.id),
        data={"content_id": content_id, "code": problem["code"]},
    )


@job(
    read_permission="arcontent:read",
    queue="cv",
    max_attempts=3,
    timeout_seconds=900,
    on_end=processing_ended,
)
async def process_video(run: JobRun, content_id: str, video_key: str) -> dict[str, Any]:
    return await process(run, uuid.UUID(content_id), video_key, get_storage(run.settings))
