"""Retry with capped exponential backoff, full jitter and vendor `Retry-After`, on tenacity.

tenacity is the well-kept library for this; we only add the platform's policy: which errors
are retryable, how `RateLimited.retry_after_s` overrides the backoff, and injectable sleep so
tests never wait for real.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from perpsignal_common.errors import RateLimited, TransientError

T = TypeVar("T")


def is_transient(exc: BaseException) -> bool:
    """Return True for failures worth retrying (our taxonomy plus raw timeouts)."""
    return isinstance(exc, TransientError | TimeoutError | ConnectionError)


def retry_after_s(headers: Mapping[str, str]) -> float | None:
    """Return the `Retry-After` header in seconds, if present: delta-seconds, or an HTTP-date
    (RFC 9110; what a proxy or CDN in front of a vendor sends) counted from now.

    None for anything else, and for a value that is no finite number ("inf", "nan",
    "1e400"): a vendor's or a proxy's garbage, which would otherwise open a ban's circuit
    forever.
    """
    raw = headers.get("retry-after") or headers.get("Retry-After")
    if raw is None:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        try:
            when = parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when.tzinfo is None:  # an HTTP-date is GMT; a date without a zone is no HTTP-date
            return None
        seconds = when.timestamp() - time.time()
    return max(0.0, seconds) if math.isfinite(seconds) else None


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries: `max_attempts` calls in all, delays capped at `max_delay_s`."""

    max_attempts: int = 5
    base_delay_s: float = 0.25
    max_delay_s: float = 10.0
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, attempt: int) -> float:
        """Return the full-jitter delay before retry number `attempt` (1-based)."""
        cap = min(self.max_delay_s, self.base_delay_s * 2 ** (attempt - 1))
        return self.rng.uniform(0, cap)

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, RateLimited) and exc.retry_after_s is not None:
            return min(exc.retry_after_s, max(self.max_delay_s, 60.0))
        return self.delay(state.attempt_number)

    async def call(
        self,
        fn: Callable[[], Awaitable[T]],
        *,
        retry_if: Callable[[BaseException], bool] = is_transient,
    ) -> T:
        """Call `fn` until it succeeds, a non-retryable error occurs or attempts run out."""
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.max_attempts),
            wait=self._wait,
            retry=retry_if_exception(retry_if),
            sleep=self.sleep,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await fn()
        raise AssertionError("unreachable")  # pragma: no cover
