"""The delivery job: sign, POST, log the attempt, and retry with backoff over hours.

Schedule: procrastinate waits `3 ** n` seconds after the n-th failed attempt, so the ten
attempts happen at once, then after 3 s, 9 s, 27 s, 81 s, ~4 min, ~12 min, ~36 min,
~1.8 h and ~5.5 h: about 8.2 hours from the first try to the last. After the last the
delivery is `failed`; an admin can still redeliver it. `WEBHOOK_MAX_ATTEMPTS` can lower
(never raise) the number of attempts.

No database transaction is held while the target is contacted: the delivery is read in
one transaction and the attempt recorded in another, so a slow receiver costs a worker
slot, not a connection holding locks.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from touchstone.core.config import Settings
from touchstone.core.db import Database
from touchstone.core.jobs import JobRun, job
from touchstone.core.jobs.runtime import system_job
from touchstone.webhooks import repository
from touchstone.webhooks.exceptions import DeliveryAttemptFailed
from touchstone.webhooks.models import (
    MAX_ERROR_LENGTH,
    DeliveryStatus,
    WebhookDelivery,
    WebhookDeliveryAttempt,
)
from touchstone.webhooks.secret_store import InvalidToken, decrypt_secret
from touchstone.webhooks.sender import send_webhook
from touchstone.webhooks.signing import signature_header
from touchstone.webhooks.targets import TargetPolicy

MAX_ATTEMPTS = 10
BACKOFF_SECONDS = 3
ATTEMPT_DEADLINE_SECONDS = 60.0
"""Upper bound of one attempt (all redirects included), whatever WEBHOOK_TIMEOUT_SECONDS says,
so the job's own timeout never cuts an attempt short before it is logged."""
JOB_TIMEOUT_SECONDS = ATTEMPT_DEADLINE_SECONDS + 60
DELIVERY_RETENTION_DAYS = 30


def target_policy(settings: Settings) -> TargetPolicy:
    """The address policy deliveries obey (a seam: tests put a stricter or fake one here)."""
    return TargetPolicy.from_settings(settings)


def signed_headers(
    secret: str, delivery: WebhookDelivery, body: bytes, timestamp: int
) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "Touchstone-Event-Id": str(delivery.event_id),
        "Touchstone-Event-Type": delivery.topic,
        "Touchstone-Delivery-Id": str(delivery.id),
        "Touchstone-Timestamp": str(timestamp),
        "Touchstone-Signature": signature_header(secret, timestamp, body),
    }


def _result(delivery: WebhookDelivery) -> dict[str, Any]:
    return {
        "delivery_id": str(delivery.id),
        "status": delivery.status,
        "attempts": delivery.attempts,
    }


async def delivery_ended(
    session: AsyncSession, org_id: uuid.UUID, problem: dict[str, Any], *, delivery_id: str
) -> None:
    """The delivery's job ended without settling it (an error on its last attempt, or it
    was cancelled): the delivery fails with the job's reason instead of waiting forever."""
    loaded = await repository.delivery_with_endpoint(
        session, org_id, uuid.UUID(delivery_id), for_update=True
    )
    if loaded is None or DeliveryStatus(loaded[0].status).finished:
        return
    delivery = loaded[0]
    delivery.status = DeliveryStatus.FAILED
    delivery.next_attempt_at = None
    delivery.last_error = (problem.get("detail") or problem["title"])[:MAX_ERROR_LENGTH]


@job(
    read_permission="webhooks:read",
    on_end=delivery_ended,
    queue="default",
    max_attempts=MAX_ATTEMPTS,
    backoff_seconds=BACKOFF_SECONDS,
    timeout_seconds=JOB_TIMEOUT_SECONDS,
)
async def deliver_webhook(run: JobRun, delivery_id: str) -> dict[str, Any]:
    """Send one delivery once; raise (so the job retries) while attempts remain.

    Retries wait 3 s, 9 s, 27 s, 81 s, ~4 min, ~12 min, ~36 min, ~1.8 h, ~5.5 h (3 ** n).
    A target the SSRF policy refuses, a disabled webhook or an unreadable secret fail the
    delivery at once: retrying cannot change the answer. Once the delivery is settled
    (succeeded or failed) the job returns normally; the delivery log, not the job, is
    where the outcome is read.
    """
    settings = run.settings
    delivery_uuid = uuid.UUID(delivery_id)
    async with run.transaction() as session:
        loaded = await repository.delivery_with_endpoint(session, run.org_id, delivery_uuid)
        if loaded is None:  # the webhook was deleted with its deliveries
            return {"delivery_id": delivery_id, "status": "gone"}
        delivery, endpoint = loaded
        if DeliveryStatus(delivery.status).finished:
            return _result(delivery)
        secret: str | None = None
        if not endpoint.is_active:
            delivery.last_error = "the webhook is disabled"
        else:
            try:
                secret = decrypt_secret(settings, endpoint.secret_encrypted)
            except InvalidToken:
                delivery.last_error = "the signing secret cannot be read (SECRET_KEY changed?)"
        if secret is None:
            delivery.status = DeliveryStatus.FAILED
            delivery.next_attempt_at = None
            return _result(delivery)
        url, body = endpoint.url, delivery.payload.encode()
        headers = signed_headers(secret, delivery, body, int(time.time()))

    started_at, clock = datetime.now(UTC), time.monotonic()
    outcome = await send_webhook(
        target_policy(settings),
        url,
        body,
        headers,
        deadline_seconds=min(settings.webhook_timeout_seconds, ATTEMPT_DEADLINE_SECONDS),
    )
    duration_ms = round((time.monotonic() - clock) * 1000)

    async with run.transaction() as session:
        loaded = await repository.delivery_with_endpoint(
            session, run.org_id, delivery_uuid, for_update=True
        )
        if loaded is None:
            return {"delivery_id": delivery_id, "status": "gone"}
        delivery, _ = loaded
        delivery.attempts += 1
        session.add(
            WebhookDeliveryAttempt(
                id=uuid.uuid4(),
                org_id=run.org_id,
                delivery_id=delivery.id,
                number=delivery.attempts,
                started_at=started_at,
                duration_ms=duration_ms,
                status_code=outcome.status_code,
                error=outcome.error,
                response_body=outcome.response_body,
            )
        )
        delivery.last_status_code = outcome.status_code
        delivery.last_error = outcome.error
        delivery.last_attempt_at = started_at
        delivery.next_attempt_at = None
        limit = max(1, min(MAX_ATTEMPTS, settings.webhook_max_attempts))
        if outcome.succeeded:
            delivery.status = DeliveryStatus.SUCCEEDED
            delivery.delivered_at = datetime.now(UTC)
        elif outcome.refused or delivery.attempts >= limit or run.attempt >= MAX_ATTEMPTS:
            delivery.status = DeliveryStatus.FAILED
        else:
            delivery.status = DeliveryStatus.RETRYING
            delivery.next_attempt_at = datetime.now(UTC) + timedelta(
                seconds=BACKOFF_SECONDS**run.attempt
            )
        result = _result(delivery)
    if result["status"] == DeliveryStatus.RETRYING:
        raise DeliveryAttemptFailed(f"attempt {result['attempts']}: {outcome.error}")
    return result


@system_job(cron="47 3 * * *")
async def purge_webhook_deliveries(database: Database) -> None:
    """Finished deliveries (and their attempts) are kept a month, then forgotten."""
    async with database.transaction() as session:
        await session.execute(
            text("select purge_webhook_deliveries(:days)"), {"days": DELIVERY_RETENTION_DAYS}
        )
