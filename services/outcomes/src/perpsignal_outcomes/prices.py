"""Fallback price source: exchange klines when the market stream did not give us the path.

The evaluator depends only on the `KlineSource` protocol, so tests pass a fake and the service
can run without the network (`OUTCOMES_KLINES_FALLBACK=false`). The Binance implementation goes
through the ingestor's connector code (`perpsignal_connectors.binance_usdm`), which owns rate
limits, retries and error mapping.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Protocol, cast

import httpx

from perpsignal_common.events.market import TIMEFRAME_SECONDS, Timeframe
from perpsignal_connectors.binance_usdm import BinanceUsdmHttp, parse_klines
from perpsignal_domain.outcomes.evaluate import Candle

log = logging.getLogger(__name__)

# Binance serves at most 1500 klines per call
MAX_KLINES_PER_CALL = 1500


class KlineSource(Protocol):
    """Where closed candles come from when the stream did not deliver them."""

    name: str
    venue: str  # whose prices: only a signal priced on this venue (or unknown) uses them

    async def fetch_candles(
        self, symbol: str, timeframe: str, start: datetime, end: datetime
    ) -> list[Candle]:
        """Return closed candles of `symbol` opening in [start, end), oldest first.

        Raise `TransientError` (or return fewer candles) when the venue cannot answer now.
        """
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


class BinanceKlineSource:
    """Klines from Binance USD-M through the connectors library (rate limits, retries, breaker)."""

    name = "klines"
    venue = "binance"

    def __init__(self, base_url: str, *, client: httpx.AsyncClient | None = None) -> None:
        self._base_url = base_url
        self._client = client
        self._http: BinanceUsdmHttp | None = None

    async def fetch_candles(
        self, symbol: str, timeframe: str, start: datetime, end: datetime
    ) -> list[Candle]:
        """Fetch klines opening in [start, end) and keep only the closed ones.

        Page by page: Binance serves at most 1500 klines a call (5 days of 5m candles), so a
        longer range (a backlog, replayed signals) takes several calls. Stops early at a page
        that brings no new candle (a range the venue has no data for yet).
        """
        if self._http is None:
            self._http = BinanceUsdmHttp(self._base_url, client=self._client)
        step = timedelta(seconds=TIMEFRAME_SECONDS[timeframe])
        out: list[Candle] = []
        at = start
        while at < end:
            limit = min(MAX_KLINES_PER_CALL, max(1, int((end - at) / step) + 1))
            rows = await self._http.fetch_klines(
                symbol,
                timeframe,
                start_time=at,
                end_time=end - timedelta(milliseconds=1),
                limit=limit,
            )
            # only candles of the timeframe asked for: on its grid and `step` long (a venue or
            # proxy answering with another interval would store them under this timeframe,
            # where a path counts them as its candles)
            step_ms = round(step.total_seconds() * 1000)
            fit = [
                r
                for r in rows
                if r.open_time_ms % step_ms == 0 and r.close_time_ms - r.open_time_ms == step_ms - 1
            ]
            if len(fit) < len(rows):
                log.warning(
                    "klines off the timeframe's grid dropped",
                    extra={"symbol": symbol, "timeframe": timeframe, "rows": len(rows) - len(fit)},
                )
            # the timeframe was validated by the settings (OUTCOMES_KLINES_TIMEFRAME)
            closed = parse_klines(fit, symbol, cast(Timeframe, timeframe), datetime.now(UTC))
            page = [
                Candle(e.open_time, e.open, e.high, e.low, e.close)
                for e in closed
                if at <= e.open_time < end
            ]
            out += page
            if len(rows) < limit or not page or len(closed) < len(fit):
                break  # the venue has nothing more (or only the forming candle) up to `end`
            at = max(c.open_time for c in page) + step
        return out

    async def close(self) -> None:
        """Close the HTTP client when one was opened."""
        if self._http is not None:
            await self._http.aclose()
        self._http = None
