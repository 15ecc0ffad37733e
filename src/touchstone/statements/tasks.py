"""Jobs of the statements module (queue `documents`): they carry ids only.

Their status is for readers of statements. A rebuilt workbook needs no end hook: whatever
happens to it, the batch is already in a final state. A deleted batch's files go through
core's `delete_stored_files`.
"""

from __future__ import annotations

import uuid
from typing import Any

from touchstone.core.jobs import JobRun, job
from touchstone.core.storage import get_storage
from touchstone.statements import processing
from touchstone.statements.engines.billing import billing_engine


# Retries 3, 9, 27, 81 and 243 s apart: a database restart or a full volume (507) must not
# leave a batch `processing` for good after a few seconds of outage.
@job(
    read_permission="statements:read",
    on_end=processing.batch_ended,
    queue="documents",
    max_attempts=6,
    backoff_seconds=3,
    timeout_seconds=1800,
)
async def process_batch(run: JobRun, batch_id: str) -> dict[str, Any]:
    """Read every queued statement of the batch, then build its workbook."""
    settings = run.settings
    result = await processing.process_batch(
        run, uuid.UUID(batch_id), settings, get_storage(settings)
    )
    async with run.transaction() as session:
        result["usage_reported"] = await processing.report_usage(
            session, run.org_id, billing_engine(settings)
        )
    return result


@job(
    read_permission="statements:read",
    queue="reports",
    max_attempts=6,
    backoff_seconds=3,
    timeout_seconds=300,
)
async def rebuild_report(run: JobRun, batch_id: str) -> dict[str, Any]:
    """The workbook again, after a category was changed by hand."""
    settings = run.settings
    return await processing.build_report(
        run, uuid.UUID(batch_id), get_storage(settings), finished=False
    )
