"""Prometheus metrics shared by the platform (each module may add its own)."""

from __future__ import annotations

import functools

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

HTTP_REQUESTS = Counter(
    "touchstone_http_requests",
    "HTTP requests by method, route template and status.",
    ["method", "route", "status"],
    registry=REGISTRY,
)
HTTP_LATENCY = Histogram(
    "touchstone_http_request_duration_seconds",
    "HTTP request latency by method and route template.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    """Count a request and its latency (`route` is a template, so the series are bounded)."""
    requests, latency = _request_series(method, route, status)
    requests.inc()
    latency.observe(seconds)


@functools.cache
def _request_series(method: str, route: str, status: int) -> tuple[Counter, Histogram]:
    """The labelled children, looked up once: `labels()` takes a lock and validates the
    labels on every call (7 µs a request for the two)."""
    return HTTP_REQUESTS.labels(method, route, str(status)), HTTP_LATENCY.labels(method, route)


DB_POOL = Gauge(
    "touchstone_db_pool_connections",
    "Runtime database pool connections by state.",
    ["state"],
    registry=REGISTRY,
)
JOB_QUEUE_DEPTH = Gauge(
    "touchstone_job_queue_depth",
    "Jobs waiting (todo) or running (doing) per queue.",
    ["queue", "status"],
    registry=REGISTRY,
)
JOBS_RECENT = Gauge(
    "touchstone_jobs_recent",
    "Jobs per task and status: unfinished ones, and those finished in the last hour.",
    ["task", "status"],
    registry=REGISTRY,
)
JOB_DURATION = Gauge(
    "touchstone_job_duration_seconds",
    "Run time of jobs finished in the last hour, by task and quantile.",
    ["task", "quantile"],
    registry=REGISTRY,
)
