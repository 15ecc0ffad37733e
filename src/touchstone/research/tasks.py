"""Jobs of the research module (they carry ids only): reading a source into passages, and
running an analysis's steps. Their status is for readers of research."""

from __future__ import annotations

import uuid
from typing import Any

from touchstone.core.jobs import JobRun, job
from touchstone.core.storage import get_storage
from touchstone.research import pipeline


@job(
    read_permission="research:read",
    queue="documents",
    max_attempts=4,
    backoff_seconds=3,
    timeout_seconds=900,
    on_end=pipeline.source_ended,
)
async def extract_source(run: JobRun, source_id: str) -> dict[str, Any]:
    """The source's text, split into passages with their place, and indexed for search."""
    await run.progress(5, "reading")
    return await pipeline.extract_source(
        run.database, run.org_id, uuid.UUID(source_id), get_storage(run.settings)
    )


@job(
    read_permission="research:read",
    queue="reports",
    max_attempts=4,
    backoff_seconds=3,
    timeout_seconds=600,
    on_end=pipeline.analysis_ended,
)
async def run_analysis(run: JobRun, analysis_id: str) -> dict[str, Any]:
    """Plan, retrieve, select, write, check: each step stored as it ends, so a rerun resumes."""
    return await pipeline.run_analysis(
        run.database, run.org_id, uuid.UUID(analysis_id), run.progress
    )
