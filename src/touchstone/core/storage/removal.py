"""Deleting stored files only once the rows that named them are gone.

A file deleted inside a request's transaction is gone even when the transaction rolls
back, leaving rows that point at nothing. Instead a module defers `delete_stored_files`
in the transaction that deletes (or forgets) the rows: committed, the job removes the
files; rolled back, the job was never queued and the files stay with their rows.

    record = await delete_after_commit(session, principal, keys)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from touchstone.core.auth import Principal
from touchstone.core.jobs.models import JobRecord
from touchstone.core.jobs.runtime import JobRun, defer, job
from touchstone.core.storage import check_key, get_storage, kind_of


async def may_see_removal(
    session: AsyncSession, principal: Principal, arguments: Mapping[str, Any]
) -> bool:
    """Who may read every file the job removes may read the job (a kind nobody declared
    is nobody's, so its removal is seen by no one)."""
    for key in str(arguments.get("keys", "")).split("\n"):
        kind = kind_of(key) if key else None
        if key and (kind is None or not principal.can(kind.permission)):
            return False
    return True


@job(
    read_permission="org:read",
    visible=may_see_removal,
    queue="default",
    max_attempts=5,
    backoff_seconds=3,
    name="touchstone.core.storage.delete_stored_files",
)
async def delete_stored_files(run: JobRun, keys: str) -> dict[str, Any]:
    """Remove the org's files (keys newline-separated); deleting a missing file is a no-op,
    so a retried run finishes what a failed one started."""
    storage = get_storage(run.settings)
    removed = [check_key(run.org_id, key) for key in keys.split("\n") if key]
    for key in removed:
        await storage.delete(run.org_id, key)
    return {"deleted": len(removed)}


async def delete_after_commit(
    session: AsyncSession, principal: Principal, keys: Sequence[str]
) -> JobRecord | None:
    """Queue the removal of `keys` in the caller's transaction; None when there are none."""
    unique = sorted(set(keys))
    if not unique:
        return None
    for key in unique:
        check_key(principal.org_id, key)
    return await defer(session, principal, delete_stored_files, keys="\n".join(unique))
