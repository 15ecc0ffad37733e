"""The cache: TTLs on a controllable clock, LRU eviction, single-flight, keys, Redis outages."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from structlog.testing import capture_logs

from touchstone.core.cache import (
    Cache,
    MemoryCache,
    RedisCache,
    check_key,
    get_cache,
    tenant_key,
)
from touchstone.core.config import Settings


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_entries_expire_after_their_ttl() -> None:
    clock = Clock()
    cache = MemoryCache(10, clock=clock)
    await cache.set("short", b"1", ttl_seconds=5)
    await cache.set("long", b"2", ttl_seconds=60)

    clock.now += 4.9
    assert await cache.get("short") == b"1"
    clock.now += 0.1
    assert await cache.get("short") is None, "expired exactly at its TTL"
    assert await cache.get("long") == b"2"
    clock.now += 55
    assert await cache.get("long") is None
    assert len(cache) == 0, "expired entries are dropped, not kept around"


async def test_least_recently_used_entry_is_evicted() -> None:
    cache = MemoryCache(3, clock=Clock())
    for key in ("a", "b", "c"):
        await cache.set(key, key.encode(), ttl_seconds=60)
    assert await cache.get("a") == b"a"  # now "b" is the least recently used
    await cache.set("d", b"d", ttl_seconds=60)

    assert len(cache) == 3
    assert await cache.get("b") is None
    assert [await cache.get(key) for key in ("a", "c", "d")] == [b"a", b"c", b"d"]


async def test_entries_are_evicted_to_stay_within_the_byte_bound() -> None:
    cache = MemoryCache(10, max_bytes=10, clock=Clock())
    await cache.set("a", b"1234", ttl_seconds=60)
    await cache.set("b", b"1234", ttl_seconds=60)
    await cache.set("a", b"12", ttl_seconds=60)  # replaced: counted once, at its new size
    await cache.set("c", b"1234", ttl_seconds=60)
    assert [await cache.get(key) for key in ("a", "b", "c")] == [b"12", b"1234", b"1234"]

    await cache.set("d", b"12345", ttl_seconds=60)  # "a", then "b", the least recent, go
    assert [await cache.get(key) for key in ("a", "b", "c", "d")] == [None, None, b"1234", b"12345"]
    await cache.set("huge", b"x" * 11, ttl_seconds=60)
    assert await cache.get("huge") is None, "larger than the whole bound: not cached"
    assert await cache.get("c") == b"1234", "and nothing was evicted for it"


async def test_overwrite_and_delete() -> None:
    cache = MemoryCache(10, clock=Clock())
    await cache.set("k", b"old", ttl_seconds=60)
    await cache.set("k", b"new", ttl_seconds=60)
    assert await cache.get("k") == b"new"
    await cache.delete("k")
    await cache.delete("k")
    assert await cache.get("k") is None


async def test_get_or_set_calls_the_producer_once_for_concurrent_misses() -> None:
    cache = MemoryCache(10, clock=Clock())
    calls = 0
    release = asyncio.Event()

    async def produce() -> bytes:
        nonlocal calls
        calls += 1
        await release.wait()
        return b"report"

    waiters = [asyncio.ensure_future(cache.get_or_set("r", 60, produce)) for _ in range(20)]
    await asyncio.sleep(0)
    release.set()
    assert await asyncio.gather(*waiters) == [b"report"] * 20
    assert calls == 1
    assert await cache.get_or_set("r", 60, produce) == b"report"
    assert calls == 1, "a hit never calls the producer"


async def test_single_flight_shares_failures_and_survives_a_cancelled_caller() -> None:
    cache = MemoryCache(10, clock=Clock())
    release = asyncio.Event()
    calls = 0

    async def failing() -> bytes:
        nonlocal calls
        calls += 1
        await release.wait()
        raise RuntimeError("source down")

    first = asyncio.ensure_future(cache.get_or_set("k", 60, failing))
    second = asyncio.ensure_future(cache.get_or_set("k", 60, failing))
    await asyncio.sleep(0)
    first.cancel()  # the caller that started the flight goes away
    release.set()
    with pytest.raises(RuntimeError, match="source down"):
        await second
    assert first.cancelled()
    assert calls == 1
    assert await cache.get("k") is None, "failures are not cached"

    async def working() -> bytes:
        return b"ok"

    assert await cache.get_or_set("k", 60, working) == b"ok", "the next miss tries again"


async def test_values_and_ttls_are_checked() -> None:
    cache = MemoryCache(10)
    with pytest.raises(TypeError):
        await cache.set("k", "text", ttl_seconds=60)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ttl"):
        await cache.set("k", b"v", ttl_seconds=0)


@pytest.mark.parametrize(
    "key", ["", "a b", "a/b", "ключ", "k\n", "x" * 201, "{braces}", "*", "a\x00"]
)
async def test_invalid_keys_are_refused(key: str) -> None:
    cache = MemoryCache(10)
    with pytest.raises(ValueError, match="cache key"):
        await cache.get(key)
    with pytest.raises(ValueError, match="cache key"):
        await cache.set(key, b"v", 60)


@given(st.from_regex(r"[A-Za-z0-9:._-]{1,200}", fullmatch=True))
def test_every_key_of_the_documented_alphabet_is_accepted(key: str) -> None:
    assert check_key(key) == key


KEY_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789:._-")


@given(st.text(min_size=1, max_size=50).filter(lambda key: not set(key) <= KEY_ALPHABET))
def test_keys_outside_the_alphabet_are_refused(key: str) -> None:
    with pytest.raises(ValueError, match="cache key"):
        check_key(key)


def test_tenant_keys_carry_the_org() -> None:
    org_a, org_b = uuid.uuid4(), uuid.uuid4()
    key = tenant_key(org_a, "research", "report", "42")
    assert key == f"org:{org_a}:research:report:42"
    assert tenant_key(org_b, "research", "report", "42") != key
    with pytest.raises(ValueError, match="at least one part"):
        tenant_key(org_a)
    with pytest.raises(ValueError, match="cache key"):
        tenant_key(org_a, "report", "../x y")


async def test_tenants_do_not_share_entries() -> None:
    cache = MemoryCache(10)
    org_a, org_b = uuid.uuid4(), uuid.uuid4()
    await cache.set(tenant_key(org_a, "stats"), b"alpha", 60)
    assert await cache.get(tenant_key(org_b, "stats")) is None


def test_factory_follows_the_settings(settings: Settings) -> None:
    memory = get_cache(settings.model_copy(update={"redis_url": None, "cache_max_entries": 7}))
    assert isinstance(memory, MemoryCache)
    assert memory.max_entries == 7
    redis = get_cache(settings.model_copy(update={"redis_url": "redis://127.0.0.1:6379/0"}))
    assert isinstance(redis, RedisCache)


# --- Redis --------------------------------------------------------------------------------


@pytest.fixture
async def redis_cache() -> AsyncIterator[RedisCache]:
    url = os.environ.get("REDIS_URL")
    if not url:
        pytest.skip("REDIS_URL is not set: no Redis server to test RedisCache against")
    prefix = f"touchstone-test:{uuid.uuid4().hex}:"
    cache = RedisCache(url, prefix=prefix)
    yield cache
    await cache.aclose()
    async with Redis.from_url(url) as redis:
        leftovers = [key async for key in redis.scan_iter(match=f"{prefix}*")]
        if leftovers:
            await redis.delete(*leftovers)


async def test_redis_cache_round_trip_and_ttl(redis_cache: RedisCache) -> None:
    await _exercise(redis_cache)
    await redis_cache.set("brief", b"x", ttl_seconds=0.05)
    await asyncio.sleep(0.2)
    assert await redis_cache.get("brief") is None, "Redis expires the entry itself"
    assert redis_cache.available


async def test_redis_cache_single_flight(redis_cache: RedisCache) -> None:
    calls = 0

    async def produce() -> bytes:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        return b"value"

    results = await asyncio.gather(*(redis_cache.get_or_set("sf", 60, produce) for _ in range(10)))
    assert results == [b"value"] * 10
    assert calls == 1
    assert await redis_cache.get("sf") == b"value"


async def _exercise(cache: Cache) -> None:
    key = tenant_key(uuid.uuid4(), "statement", "7")
    assert await cache.get(key) is None
    await cache.set(key, b"\x00binary\xff", ttl_seconds=60)
    assert await cache.get(key) == b"\x00binary\xff"
    await cache.delete(key)
    assert await cache.get(key) is None


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # closed again: connecting is refused


async def test_unreachable_redis_degrades_to_misses_and_warns_once() -> None:
    clock = Clock()
    cache = RedisCache(f"redis://127.0.0.1:{_closed_port()}/0", retry_after=5, clock=clock)
    calls = 0

    async def produce() -> bytes:
        nonlocal calls
        calls += 1
        return b"fresh"

    with capture_logs() as logs:
        await cache.set("k", b"v", ttl_seconds=60)
        assert await cache.get("k") is None
        await cache.delete("k")
        assert await cache.get_or_set("k", 60, produce) == b"fresh"
        assert await cache.get_or_set("k", 60, produce) == b"fresh"
        clock.now += 6  # past retry_after: tries Redis again, still down
        assert await cache.get("k") is None
    await cache.aclose()

    assert calls == 2, "every miss goes to the source"
    assert not cache.available
    warnings = [entry for entry in logs if entry["event"] == "cache_unavailable"]
    assert len(warnings) == 1, logs
    assert warnings[0]["log_level"] == "warning"
    assert "ConnectionError" in warnings[0]["error"]


async def test_outage_skips_redis_until_retry_after_then_recovers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = Clock()
    cache = RedisCache("redis://127.0.0.1:6379/0", retry_after=5, clock=clock)
    attempts = 0
    up = False

    async def get(key: str) -> bytes | None:
        nonlocal attempts
        attempts += 1
        if not up:
            raise RedisConnectionError("connection refused")
        return b"cached"

    monkeypatch.setattr(cache._redis, "get", get)
    with capture_logs() as logs:
        assert await cache.get("k") is None
        assert await cache.get("k") is None
        assert attempts == 1, "within retry_after the outage costs no round trip"
        clock.now += 5
        assert await cache.get("k") is None
        assert attempts == 2
        up = True
        clock.now += 5
        assert await cache.get("k") == b"cached"
        assert cache.available
    await cache.aclose()

    # `cache_recovered` is info-level, which the test settings' WARNING level may filter out.
    events = [entry["event"] for entry in logs]
    assert events[0] == "cache_unavailable"
    assert events.count("cache_unavailable") == 1
