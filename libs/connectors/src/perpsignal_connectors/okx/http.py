"""OKX v5 public REST client."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx

from perpsignal_common.events.market import TIMEFRAME_SECONDS
from perpsignal_common.retry import RetryPolicy
from perpsignal_connectors.http import DEFAULT_TIMEOUT, VendorHttp
from perpsignal_connectors.okx import constants as c
from perpsignal_connectors.okx.errors import check_envelope
from perpsignal_connectors.okx.schemas import CANDLES, OkxCandle
from perpsignal_connectors.ratelimit import RateLimiter, Sleep


class OkxHttp:
    """OKX public market data."""

    def __init__(
        self,
        base_url: str = c.BASE_URL,
        *,
        retry: RetryPolicy | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        clock: Callable[[], float] = time.time,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.http = VendorHttp(
            c.VENDOR,
            base_url,
            limiter=RateLimiter(c.QUOTAS, clock=clock, sleep=sleep),
            retry=retry,
            timeout=timeout,
            envelope_check=check_envelope,
            clock=clock,
        )

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self.http.aclose()

    async def fetch_candles(self, symbol: str, timeframe: str, limit: int = 3) -> list[OkxCandle]:
        """Return the latest candles of a Binance-style symbol's USDT swap, newest first.

        Raises MalformedResponse when a candle does not open on a `timeframe` boundary (every
        bar we ask for is UTC-aligned): the rows are another bar's (a cache ignoring the
        query), and each 1m candle would be published as the 5m candle closing 5 minutes
        after it opened, under the id of the real one.
        """
        body = await self.http.get_model(
            c.CANDLES,
            CANDLES,
            {
                "instId": c.inst_id(symbol),
                "bar": c.BARS[timeframe],
                "limit": min(limit, c.CANDLES_MAX_LIMIT),
            },
        )
        step_ms = TIMEFRAME_SECONDS[timeframe] * 1000
        if odd := next((r.ts_ms for r in body.data if r.ts_ms % step_ms), None):
            raise self.http.malformed(
                c.CANDLES, f"a {timeframe} candle of {symbol!r} opens at {odd}, off its grid"
            )
        return list(body.data)
