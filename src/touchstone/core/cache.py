"""A small bytes cache with explicit keys and TTLs: in-process LRU, or Redis when configured.

Values are bytes so callers choose their own serialisation and nothing is pickled. A cache
is an optimisation, never a dependency: when Redis is down, `RedisCache` answers misses and
drops writes (logging once per outage), and the request goes on to the real source.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Annotated, Protocol, TypeVar

import structlog
from fastapi import Depends, Request
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from touchstone.core.config import Settings

_KEY = re.compile(r"[A-Za-z0-9:._-]{1,200}")
DEFAULT_PREFIX = "touchstone:cache:"
log = structlog.get_logger("touchstone.cache")
T = TypeVar("T")
Producer = Callable[[], Awaitable[bytes]]


def check_key(key: str) -> str:
    """Keys are built by code from ids and constants; anything else is a programming error."""
    if not _KEY.fullmatch(key):
        raise ValueError(f"cache key must match {_KEY.pattern!r}, got {key!r}")
    return key


def tenant_key(org_id: uuid.UUID, *parts: str) -> str:
    """The key for tenant data: always under the org, so tenants never share an entry."""
    if not parts:
        raise ValueError("tenant_key needs at least one part after the org id")
    return check_key(":".join(("org", str(org_id), *(check_key(part) for part in parts))))


class Cache(Protocol):
    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl_seconds: float) -> None: ...

    async def delete(self, key: str) -> None: ...

    async def get_or_set(self, key: str, ttl_seconds: float, producer: Producer) -> bytes:
        """The cached value, or the producer's; concurrent misses in a process share one call."""
        ...

    async def aclose(self) -> None: ...


class _SingleFlight:
    """One producer call per key at a time; the others await the same task.

    The task is shielded, so a caller that goes away (client disconnect) neither cancels the
    work for the others nor leaves them waiting on a cancelled producer.
    """

    def __init__(self) -> None:
        self._flights: dict[str, asyncio.Task[bytes]] = {}

    async def run(self, key: str, produce: Producer) -> bytes:
        task = self._flights.get(key)
        if task is None:
            task = asyncio.ensure_future(produce())
            self._flights[key] = task
            task.add_done_callback(lambda done: self._finish(key, done))
        return await asyncio.shield(task)

    def _finish(self, key: str, task: asyncio.Task[bytes]) -> None:
        if self._flights.get(key) is task:
            del self._flights[key]
        if not task.cancelled():
            task.exception()  # retrieved here, so a failure nobody awaited is not reported twice


class _KeyedCache(ABC):
    """Key checks, namespacing and single-flight; subclasses store under full keys."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self._single_flight = _SingleFlight()

    async def get(self, key: str) -> bytes | None:
        return await self._get(self.prefix + check_key(key))

    async def set(self, key: str, value: bytes, ttl_seconds: float) -> None:
        if not isinstance(value, bytes):
            raise TypeError("cache values are bytes; serialise before caching")
        if ttl_seconds <= 0:
            raise ValueError("ttl_seconds must be positive")
        await self._set(self.prefix + check_key(key), value, ttl_seconds)

    async def delete(self, key: str) -> None:
        await self._delete(self.prefix + check_key(key))

    async def get_or_set(self, key: str, ttl_seconds: float, producer: Producer) -> bytes:
        cached = await self.get(key)
        if cached is not None:
            return cached

        async def produce() -> bytes:
            value = await producer()
            await self.set(key, value, ttl_seconds)
            return value

        return await self._single_flight.run(key, produce)

    async def aclose(self) -> None:
        return None

    @abstractmethod
    async def _get(self, key: str) -> bytes | None: ...

    @abstractmethod
    async def _set(self, key: str, value: bytes, ttl_seconds: float) -> None: ...

    @abstractmethod
    async def _delete(self, key: str) -> None: ...


class MemoryCache(_KeyedCache):
    """LRU with a TTL per entry, for the single-process default, bounded in entries and in
    bytes (a cached file weighs more than a thousand cached ids). The clock is monotonic."""

    def __init__(
        self,
        max_entries: int,
        *,
        max_bytes: int = 64 * 1024 * 1024,
        prefix: str = DEFAULT_PREFIX,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(prefix)
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._bytes = 0
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    async def _get(self, key: str) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires_at, value = entry
        if expires_at <= self._clock():
            await self._delete(key)
            return None
        self._entries.move_to_end(key)
        return value

    async def _set(self, key: str, value: bytes, ttl_seconds: float) -> None:
        if len(value) > self.max_bytes:
            return  # would evict everything and still not fit
        await self._delete(key)
        self._entries[key] = (self._clock() + ttl_seconds, value)
        self._bytes += len(value)
        while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
            _, (_, evicted) = self._entries.popitem(last=False)
            self._bytes -= len(evicted)

    async def _delete(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= len(entry[1])


class RedisCache(_KeyedCache):
    """Redis, shared by every replica. Short timeouts and no retries: a miss beats a wait.

    After a failure Redis is left alone for `retry_after` seconds, so an outage costs each
    request nothing rather than a timeout. Writes and deletes during an outage are dropped:
    the TTL, not the delete, is what bounds staleness.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        timeout_seconds: float = 0.5,
        retry_after: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(prefix)
        self._redis = Redis.from_url(
            url,
            socket_timeout=timeout_seconds,
            socket_connect_timeout=timeout_seconds,
            retry=Retry(NoBackoff(), 0),
        )
        self._retry_after = retry_after
        self._clock = clock
        self._down_until: float | None = None

    @property
    def available(self) -> bool:
        return self._down_until is None

    async def _guarded(self, operation: Callable[[], Awaitable[T]], fallback: T) -> T:
        now = self._clock()
        if self._down_until is not None and now < self._down_until:
            return fallback
        try:
            result = await operation()
        except (RedisError, OSError) as exc:
            if self._down_until is None:
                log.warning("cache_unavailable", error=f"{type(exc).__name__}: {exc}")
            self._down_until = now + self._retry_after
            return fallback
        if self._down_until is not None:
            log.info("cache_recovered")
            self._down_until = None
        return result

    async def _get(self, key: str) -> bytes | None:
        async def get() -> bytes | None:
            value = await self._redis.get(key)
            return value if isinstance(value, bytes) else None  # str only with decode_responses

        return await self._guarded(get, None)

    async def _set(self, key: str, value: bytes, ttl_seconds: float) -> None:
        milliseconds = max(1, round(ttl_seconds * 1000))

        async def set_() -> None:
            await self._redis.set(key, value, px=milliseconds)

        await self._guarded(set_, None)

    async def _delete(self, key: str) -> None:
        async def delete() -> None:
            await self._redis.delete(key)

        await self._guarded(delete, None)

    async def aclose(self) -> None:
        await self._redis.aclose()


def get_cache(settings: Settings) -> Cache:
    if settings.redis_url:
        return RedisCache(settings.redis_url)
    return MemoryCache(settings.cache_max_entries, max_bytes=settings.cache_max_bytes)


def request_cache(request: Request) -> Cache:
    """The app's cache, `app.state.cache` (set by `create_app`, closed by its lifespan)."""
    cache: Cache = request.app.state.cache
    return cache


CacheDep = Annotated[Cache, Depends(request_cache)]
