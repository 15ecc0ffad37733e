"""Rate limits on the `limits` library (moving window, in-process storage by default)."""

from __future__ import annotations

import math
import time

from limits import parse
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter

from touchstone.core.errors import TooManyRequests


class RateLimiter:
    def __init__(self, storage: Storage | None = None) -> None:
        self.storage = storage or MemoryStorage()
        self.strategy = MovingWindowRateLimiter(self.storage)

    async def hit(self, rule: str, *keys: str) -> None:
        """Count one hit against `rule` (e.g. "10/minute") for `keys`; 429 when exhausted."""
        limit = parse(rule)
        if await self.strategy.hit(limit, *keys):
            return
        reset_at, _remaining = await self.strategy.get_window_stats(limit, *keys)
        retry_after = max(1, math.ceil(reset_at - time.time()))
        raise TooManyRequests(
            f"Too many attempts; retry in {retry_after} s",
            headers={"Retry-After": str(retry_after)},
        )
