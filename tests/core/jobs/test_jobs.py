"""Jobs: atomic with their data, tenant-scoped, retried, bounded, cancellable, observable."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from tests import jobs_fixtures
from tests.conftest import Tenant, add_member, assert_problem, committed_tenant
from tests.core.jobs.conftest import Jobs, principal_of
from touchstone.core.auth import Principal
from touchstone.core.config import Settings
from touchstone.core.db import Database
from touchstone.core.jobs import JobRecord, accepted, defer, job_app
from touchstone.core.jobs.runtime import JOB_KINDS, JobKind
from touchstone.core.permissions import Role
from touchstone.identity.models import Branch


async def _procrastinate_jobs_for(session: AsyncSession, record_id: uuid.UUID) -> int:
    return (
        await session.execute(
            text("select count(*) from procrastinate_jobs where args->>'job_id' = :id"),
            {"id": str(record_id)},
        )
    ).scalar_one()


async def test_a_job_commits_and_rolls_back_with_its_data(
    database: Database, tenant_a: Tenant
) -> None:
    principal = principal_of(tenant_a)
    async with database.transaction(org_id=tenant_a.org_id) as session:
        record = await defer(session, principal, jobs_fixtures.noop)
    async with database.transaction(org_id=tenant_a.org_id) as session:
        assert await _procrastinate_jobs_for(session, record.id) == 1
        assert await session.get(JobRecord, record.id) is not None

    branch_id = uuid.uuid4()
    with pytest.raises(RuntimeError):  # noqa: PT012 (the failing request is the block)
        async with database.transaction(org_id=tenant_a.org_id) as session:
            session.add(Branch(id=branch_id, org_id=tenant_a.org_id, name="B", code="B1"))
            doomed = await defer(session, principal, jobs_fixtures.noop)
            raise RuntimeError("the request failed after deferring")
    async with database.transaction(org_id=tenant_a.org_id) as session:
        assert await _procrastinate_jobs_for(session, doomed.id) == 0
        assert await session.get(JobRecord, doomed.id) is None
        assert await session.get(Branch, branch_id) is None


async def test_job_runs_in_its_org_and_reports_progress(jobs: Jobs) -> None:
    record = await jobs.defer(jobs_fixtures.report_progress, steps=4)
    assert (await jobs.status(record))["status"] == "queued"
    await jobs.drain()
    done = await jobs.status(record)
    assert done["status"] == "succeeded"
    assert done["progress"] == 100
    assert done["message"] == "step 4 of 4"
    assert done["result"] == {"org_seen_by_job": str(jobs.tenant.org_id), "attempt": 1}
    assert done["started_at"] <= done["finished_at"]


async def test_a_job_that_always_fails_ends_failed_with_its_error(jobs: Jobs) -> None:
    record = await jobs.defer(jobs_fixtures.always_fails)
    await jobs.drain()
    failed = await jobs.status(record)
    assert failed["status"] == "failed"
    assert failed["attempts"] == 3
    assert failed["error"]["code"] == "job_failed"
    assert "broken input (attempt 3)" in failed["error"]["detail"]
    async with jobs.committed.transaction() as session:
        status = (
            await session.execute(
                text("select status from procrastinate_jobs where id = :id"),
                {"id": record.procrastinate_id},
            )
        ).scalar_one()
    assert status == "failed", "procrastinate must not retry it forever"


async def test_a_job_over_its_time_limit_fails_as_a_timeout(jobs: Jobs) -> None:
    record = await jobs.defer(jobs_fixtures.too_slow)
    await jobs.drain()
    body = await jobs.status(record)
    assert body["status"] == "failed"
    assert body["attempts"] == 2
    assert body["error"]["code"] == "job_timeout"


async def test_cancelling_a_queued_job_means_it_never_runs(jobs: Jobs) -> None:
    record = await jobs.defer(jobs_fixtures.report_progress, steps=1)
    cancel_url, headers = f"/api/v1/jobs/{record.id}/cancel", jobs.tenant.headers
    cancelled = await jobs.client.post(cancel_url, headers=headers)
    assert cancelled.status_code == 202
    assert cancelled.json()["status"] == "cancelled"
    await jobs.drain()
    after = await jobs.status(record)
    assert after["status"] == "cancelled"
    assert after["result"] is None
    assert (await jobs.client.post(cancel_url, headers=headers)).status_code == 409
    audit = await jobs.client.get(
        "/api/v1/audit-events", params={"action": "job.cancelled"}, headers=headers
    )
    assert audit.json()["items"][0]["object_id"] == str(record.id)


async def test_job_status_is_tenant_scoped(
    committed: Database, tenant: Tenant, live_client: httpx.AsyncClient, settings: Settings
) -> None:
    other = await committed_tenant(committed, settings, live_client)
    async with committed.transaction(org_id=tenant.org_id) as session:
        record = await defer(session, principal_of(tenant), jobs_fixtures.noop)
    for path in (f"/api/v1/jobs/{record.id}", f"/api/v1/jobs/{uuid.uuid4()}"):
        response = await live_client.get(path, headers=other.headers)
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"
    cancel = await live_client.post(f"/api/v1/jobs/{record.id}/cancel", headers=other.headers)
    assert cancel.status_code == 404
    async with committed.transaction(org_id=tenant.org_id) as session:
        still = (
            await session.execute(select(JobRecord.status).where(JobRecord.id == record.id))
        ).scalar_one()
    assert still == "queued"


async def test_metrics_show_queue_depth_and_job_outcomes(jobs: Jobs) -> None:
    await jobs.defer(jobs_fixtures.sleeps, seconds=0)
    metrics = (await jobs.client.get("/metrics")).text
    assert 'touchstone_job_queue_depth{queue="cv",status="todo"}' in metrics
    await jobs.drain()
    metrics = (await jobs.client.get("/metrics")).text
    assert 'touchstone_jobs_recent{status="succeeded",task="tests.jobs_fixtures.sleeps"}' in metrics
    assert (
        'touchstone_job_duration_seconds{quantile="0.95",task="tests.jobs_fixtures.sleeps"}'
        in metrics
    )


async def test_housekeeping_is_periodic_and_purges_across_tenants(
    committed: Database, tenant: Tenant, live_client: httpx.AsyncClient, settings: Settings
) -> None:
    from touchstone.core.jobs import maintenance

    periodic = {t.task.name: t.cron for t in job_app.periodic_registry.periodic_tasks.values()}
    assert periodic[maintenance.purge_finished_jobs.name] == "17 3 * * *"

    other = await committed_tenant(committed, settings, live_client)
    ids = {}
    for owner, age_days in ((tenant, 40), (other, 40), (tenant, 1)):
        async with committed.transaction(org_id=owner.org_id) as session:
            record = await defer(session, principal_of(owner), jobs_fixtures.noop)
            record.status = "succeeded"
            record.finished_at = datetime.now(UTC) - timedelta(days=age_days)
        ids[(owner.org_id, age_days)] = record.id
    async with committed.transaction() as session:
        await session.execute(text("select purge_finished_jobs(30)"))
    for (org_id, age_days), job_id in ids.items():
        async with committed.transaction(org_id=org_id) as session:
            kept = await session.get(JobRecord, job_id)
        assert (kept is None) == (age_days > 30)


async def test_accepted_points_at_the_job(database: Database, tenant_a: Tenant) -> None:
    async with database.transaction(org_id=tenant_a.org_id) as session:
        record = await defer(session, principal_of(tenant_a), jobs_fixtures.noop)
    response = accepted(record)
    assert response.status_code == 202
    assert response.headers["location"] == f"/api/v1/jobs/{record.id}"


async def test_job_status_needs_the_kinds_read_permission(
    client: httpx.AsyncClient, database: Database, tenant_a: Tenant
) -> None:
    async with database.transaction(org_id=tenant_a.org_id) as session:
        record = await defer(session, principal_of(tenant_a), jobs_fixtures.statements_only)
    url = f"/api/v1/jobs/{record.id}"
    _, appraiser = await add_member(client, tenant_a, Role.APPRAISER)  # no statements:read
    _, viewer = await add_member(client, tenant_a, Role.VIEWER)
    for _ in range(2):  # the second read is planned for the caller this process saw
        assert_problem(await client.get(url, headers=appraiser), 404)
        shown = await client.get(url, headers=viewer)
        assert shown.status_code == 200, shown.text
        assert shown.json()["id"] == str(record.id)
        assert shown.json()["task"] == record.task
        assert "arguments" not in shown.json()
    assert_problem(await client.get(url), 401)


async def test_a_kinds_visible_check_sees_the_callers_tenant(
    client: httpx.AsyncClient,
    database: Database,
    tenant_a: Tenant,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked: list[tuple[str, uuid.UUID, str]] = []

    async def visible(session: AsyncSession, caller: Principal, arguments: dict[str, str]) -> bool:
        tenant = (
            await session.execute(text("select current_setting('app.org_id', true)"))
        ).scalar_one()
        asked.append((tenant, caller.org_id, arguments["label"]))
        return arguments["label"] == "shown"

    monkeypatch.setitem(JOB_KINDS, "tests.visible", JobKind("org:read", visible, None))
    ids = {label: uuid.uuid4() for label in ("shown", "hidden")}
    async with database.transaction(org_id=tenant_a.org_id) as session:
        for label, job_id in ids.items():
            session.add(
                JobRecord(
                    id=job_id,
                    org_id=tenant_a.org_id,
                    task="tests.visible",
                    queue="default",
                    status="queued",
                    progress=0,
                    attempts=0,
                    arguments={"label": label},
                )
            )
    shown = await client.get(f"/api/v1/jobs/{ids['shown']}", headers=tenant_a.headers)
    assert shown.status_code == 200, shown.text
    hidden = await client.get(f"/api/v1/jobs/{ids['hidden']}", headers=tenant_a.headers)
    assert_problem(hidden, 404)
    org = str(tenant_a.org_id)
    assert asked == [(org, tenant_a.org_id, "shown"), (org, tenant_a.org_id, "hidden")]
