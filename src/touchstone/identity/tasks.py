"""Jobs of the identity module."""

from __future__ import annotations

import structlog
from sqlalchemy import text

from touchstone.core.config import Settings
from touchstone.core.crypto import InvalidToken
from touchstone.core.db import Database
from touchstone.core.jobs import platform_job, system_job
from touchstone.identity import password_reset

log = structlog.get_logger("touchstone.identity")
RESET_RETENTION_DAYS = 7


@platform_job(retries=5, backoff_seconds=3)
async def issue_password_resets(database: Database, settings: Settings, request: str) -> None:
    """Look the email up across tenants and send its accounts their links (see
    `password_reset`); retried, since the request was already answered."""
    try:
        async with database.transaction() as session:
            sent = await password_reset.issue_resets(session, settings, request)
    except InvalidToken:  # sealed under another SECRET_KEY: it can never be read
        log.warning("password_reset_request_unreadable")
        return
    log.info("password_reset_requested", accounts=sent)


@system_job(cron="7 4 * * *")
async def purge_password_reset_tokens(database: Database) -> None:
    """Links are kept a week past their expiry (enough to tell "expired" from "unknown"
    in an investigation), then forgotten."""
    async with database.transaction() as session:
        await session.execute(
            text("select purge_password_reset_tokens(:days)"), {"days": RESET_RETENTION_DAYS}
        )
