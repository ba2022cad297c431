"""Fallback price source: exchange klines when the market stream did not give us the path.

The evaluator depends only on the `KlineSource` protocol, so tests pass a fake and the service
can run without the network (`OUTCOMES_KLINES_FALLBACK=false`). The Binance implementation goes
through the ingestor's connector code (`perpsignal_connectors.binance_usdm`), which owns rate
limits, retries and error mapping.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from perpsignal_common.events.market import TIMEFRAME_SECONDS

from perpsignal_outcomes.evaluate import Candle

log = logging.getLogger(__name__)

# Binance serves at most 1500 klines per call
MAX_KLINES_PER_CALL = 1500


class KlineSource(Protocol):
    """Where closed candles come from when the stream did not deliver them."""

    name: str

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
    """Klines from Binance USD-M through the connectors library."""

    name = "klines"

    def __init__(self, base_url: str) -> None:
        self._base_url = base_url
        self._client: Any = None

    def _http(self) -> Any:
        if self._client is None:
            from perpsignal_connectors.binance_usdm.http import (  # type: ignore[import-not-found]
                BinanceFuturesHttp,
            )

            self._client = BinanceFuturesHttp(base_url=self._base_url)
        return self._client

    async def fetch_candles(
        self, symbol: str, timeframe: str, start: datetime, end: datetime
    ) -> list[Candle]:
        """Fetch klines in [start, end) and keep only closed ones."""
        step = timedelta(seconds=TIMEFRAME_SECONDS[timeframe])
        now = datetime.now(UTC)
        limit = min(MAX_KLINES_PER_CALL, max(1, int((end - start) / step) + 1))
        rows = await self._http().fetch_klines(
            symbol,
            timeframe,
            start_time=start,
            end_time=end - timedelta(milliseconds=1),
            limit=limit,
        )
        candles = []
        for row in rows:
            open_time = _as_datetime(row.open_time)
            if open_time < start or open_time >= end or open_time + step > now:
                continue
            ohlc = (float(row.open), float(row.high), float(row.low), float(row.close))
            candles.append(Candle(open_time, *ohlc))
        return sorted(candles, key=lambda c: c.open_time)

    async def close(self) -> None:
        """Close the HTTP client when one was opened."""
        if self._client is not None and hasattr(self._client, "aclose"):
            await self._client.aclose()
        self._client = None


def _as_datetime(value: object) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromtimestamp(float(value) / 1000.0, tz=UTC)  # type: ignore[arg-type]
