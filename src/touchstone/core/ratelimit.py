"""Rate limits per principal and per client address (rules and Redis store from `limits`).

Fixed windows (O(1) per hit; moving windows cost a list scan per request), counted in this
process by default (`MemoryCounters`) and in Redis when `REDIS_URL` is set, so every API
process counts together. If Redis goes away the policy is a setting: serve without limits
(and log it) or answer 503.
"""

from __future__ import annotations

import functools
import math
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

import structlog
from limits import parse
from limits.aio.storage import RedisStorage
from limits.errors import StorageError
from starlette.requests import HTTPConnection
from starlette.types import Scope

from touchstone.core.config import Settings
from touchstone.core.errors import ServiceUnavailable, TooManyRequests

log = structlog.get_logger("touchstone.ratelimit")
OUTAGE_LOG_INTERVAL = 60.0
SWEEP_INTERVAL = 60.0
"""How often `MemoryCounters` drops expired counters (keys nobody uses again)."""


class Counters(Protocol):
    """Counters that expire, as `limits`' stores keep them (its Redis store is one)."""

    async def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        """Add to the counter, started with `expiry` seconds to live if absent or expired."""
        ...

    async def get(self, key: str) -> int: ...

    async def get_expiry(self, key: str) -> float:
        """When the counter expires (epoch seconds); now if there is none."""
        ...

    async def clear(self, key: str) -> None: ...


class MemoryCounters:
    """In-process `Counters`: what the platform used of `limits`' memory store, without its
    per-call lock, expiry task and wrapping coroutines (3% of a read's instructions for
    its two hits). No lock is needed: nothing here awaits, so the event loop runs each call
    to its end."""

    def __init__(self) -> None:
        self._counters: dict[str, tuple[int, float]] = {}
        """key -> (count, expires at)"""
        self._next_sweep = time.time() + SWEEP_INTERVAL

    async def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        now = time.time()
        if now >= self._next_sweep:
            self._counters = {k: c for k, c in self._counters.items() if c[1] > now}
            self._next_sweep = now + SWEEP_INTERVAL
        count, expires_at = self._counters.get(key, (0, 0.0))
        if expires_at <= now:
            count, expires_at = 0, now + expiry
        count += amount
        self._counters[key] = (count, expires_at)
        return count

    async def get(self, key: str) -> int:
        count, expires_at = self._counters.get(key, (0, 0.0))
        return count if expires_at > time.time() else 0

    async def get_expiry(self, key: str) -> float:
        now = time.time()
        return max(self._counters.get(key, (0, now))[1], now)

    async def clear(self, key: str) -> None:
        self._counters.pop(key, None)


@dataclass(frozen=True, slots=True)
class Rule:
    """A rule (`600/minute`) for one policy, with what every hit needs worked out once."""

    policy: str
    amount: int
    expiry: int
    """The window's length in seconds."""
    key_prefix: str
    key_suffix: str
    policy_header: str
    """draft-ietf-httpapi-ratelimit-headers: `RateLimit-Policy`."""

    def key(self, keys: tuple[str, ...]) -> str:
        """The counter's key, laid out as `limits` lays it out (`LIMITER/<policy>/<keys>/
        <amount>/<multiples>/<granularity>`), so counters kept in Redis outlive a deploy."""
        return self.key_prefix + "/".join(keys) + self.key_suffix


@functools.cache
def rule(text: str, policy: str) -> Rule:
    item = parse(text)
    return Rule(
        policy=policy,
        amount=item.amount,
        expiry=item.get_expiry(),
        key_prefix=f"{item.namespace}/{policy}/",
        key_suffix=f"/{item.amount}/{item.multiples}/{item.GRANULARITY.name}",
        policy_header=f'"{policy}";q={item.amount};w={item.get_expiry()}',
    )


@dataclass(slots=True)
class Window:
    """One caller's fixed window after a hit (figures derived only when asked: most hits
    need none of them)."""

    rule: Rule
    count: int
    reset_at: float

    @property
    def reset_seconds(self) -> int:
        return max(1, math.ceil(self.reset_at - time.time()))

    def headers(self) -> dict[str, str]:
        """draft-ietf-httpapi-ratelimit-headers: `RateLimit-Policy` and `RateLimit`."""
        remaining = max(0, self.rule.amount - self.count)
        return {
            "RateLimit-Policy": self.rule.policy_header,
            "RateLimit": f'"{self.rule.policy}";r={remaining};t={self.reset_seconds}',
        }


class RateLimiter:
    def __init__(self, settings: Settings) -> None:
        self.fail_open = settings.rate_limit_fail_open
        self.storage: Counters = (
            RedisStorage(
                f"async+{settings.redis_url}",
                implementation="redispy",
                wrap_exceptions=True,
                socket_timeout=0.5,
                socket_connect_timeout=0.5,
            )
            if settings.redis_url
            else MemoryCounters()
        )
        self._last_outage_log = 0.0
        self._guard = _StoreGuard(self)

    async def hit(self, rule_text: str, policy: str, *keys: str) -> Window | None:
        """Count one request; 429 when the window is full; None if the store is unreachable
        and the policy is to fail open."""
        limit = rule(rule_text, policy)
        key = limit.key(keys)
        with self.unless_store_down():
            # A fixed window as `limits` keeps it, in two store calls rather than its three.
            count = await self.storage.incr(key, limit.expiry)
            window = Window(limit, count, await self.storage.get_expiry(key))
            if count > limit.amount:
                raise TooManyRequests(
                    f"Too many requests; retry in {window.reset_seconds} s",
                    headers={"Retry-After": str(window.reset_seconds), **window.headers()},
                )
            return window
        return None

    def unless_store_down(self) -> AbstractContextManager[None]:
        """For every use of the store (limits, login lockout): if it is unreachable, the
        rest of the block is skipped (fail open, logged) or the request gets a 503."""
        return self._guard

    def _storage_down(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._last_outage_log > OUTAGE_LOG_INTERVAL:
            self._last_outage_log = now
            log.warning(
                "rate_limit_store_unreachable",
                error=type(exc).__name__,
                serving_without_limits=self.fail_open,
            )
        if not self.fail_open:
            raise ServiceUnavailable(
                "Rate limiting is unavailable; retry shortly", headers={"Retry-After": "5"}
            )


class _StoreGuard:
    """`RateLimiter.unless_store_down`, as one reusable object: a `@contextmanager` would
    build a generator and its wrapper at every use, twice a request. About 2,500
    instructions a use over an inline `try`."""

    def __init__(self, limiter: RateLimiter) -> None:
        self.limiter = limiter

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: object
    ) -> bool:
        if isinstance(error, StorageError):
            self.limiter._storage_down(error)  # raises a 503 unless failing open
            return True  # the rest of the block is skipped
        return False


def client_address(connection: HTTPConnection) -> str:
    client = connection.scope.get("client")  # not `.client`, which builds an Address each time
    return str(client[0]) if client else "unknown"


_ADDRESS_COUNTED = "touchstone.address_counted"
_WINDOW = "touchstone.rate_limit_window"


def remember_window(scope: Scope, window: Window | None) -> None:
    """The caller's window counted for this request, for its response's `RateLimit`
    headers (the last one counted: uploads count after "default"); none when the store was
    unreachable."""
    if window is not None:
        scope[_WINDOW] = window


def window_headers(scope: Scope) -> list[tuple[bytes, bytes]]:
    """The `RateLimit` headers of the request's window, for `RequestContextMiddleware`,
    which puts them on every response, errors included."""
    window: Window | None = scope.get(_WINDOW)
    if window is None:
        return []
    return [(name.lower().encode(), value.encode()) for name, value in window.headers().items()]


async def limit_by_address(connection: HTTPConnection) -> None:
    """Every request and WebSocket, signed in or not, counts against its client address, once
    (`core.routing` counts a request that carries a body before reading it; its router's
    dependency then finds it counted)."""
    if _ADDRESS_COUNTED in connection.scope:
        return
    connection.scope[_ADDRESS_COUNTED] = True
    settings: Settings = connection.app.state.settings
    limiter: RateLimiter = connection.app.state.rate_limiter
    await limiter.hit(settings.rate_limit_per_ip, "address", client_address(connection))
