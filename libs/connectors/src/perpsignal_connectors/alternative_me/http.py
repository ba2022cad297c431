"""alternative.me Fear & Greed client."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from perpsignal_common.retry import RetryPolicy
from perpsignal_connectors.alternative_me import constants as c
from perpsignal_connectors.alternative_me.errors import check_envelope
from perpsignal_connectors.alternative_me.schemas import FNG_ROW, FNG_SHELL, FngResponse
from perpsignal_connectors.http import VendorHttp
from perpsignal_connectors.ratelimit import RateLimiter, Sleep


class FearGreedHttp:
    """The Fear & Greed index."""

    def __init__(
        self,
        url: str = c.URL,
        *,
        retry: RetryPolicy | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.http = VendorHttp(
            c.VENDOR,
            url,
            limiter=RateLimiter([c.QUOTA], clock=clock, sleep=sleep),
            retry=retry,
            envelope_check=check_envelope,
            clock=clock,
        )

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self.http.aclose()

    async def fetch_index(self, limit: int = 2) -> FngResponse:
        """Return the latest `limit` daily values, newest first; a day of an unexpected
        shape (a value beyond 0-100, a boolean) is dropped alone, not today's value with it."""
        body = await self.http.get(c.FNG, {"limit": limit, "format": "json"})
        shell = self.http.validate(c.FNG, FNG_SHELL, body)
        return FngResponse(data=tuple(self.http.validate_rows(c.FNG, FNG_ROW, shell.data)))
