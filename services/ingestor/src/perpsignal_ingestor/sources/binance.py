"""Binance USD-M pollers: market (60 s), statistics/ratios (5 min), settled funding.

Bulk endpoints first: one premiumIndex call (weight 10) gives every symbol's mark price and
predicted funding, one ticker/24hr call (weight 40) every 24h ticker. Klines are fetched
only when a candle of that timeframe has closed since the last successful fetch, so a 500-
symbol universe costs ~140 klines calls a minute on average instead of 2,000. Statistics
endpoints (weight 0, 1,000/5 min each) and settled funding (500/5 min) have loops of their
own, so waiting on their caps never delays candles.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from perpsignal_common.events.base import Event
from perpsignal_common.events.market import TIMEFRAME_SECONDS
from perpsignal_connectors.binance_usdm import parsing as p
from perpsignal_connectors.binance_usdm.http import BinanceUsdmHttp
from perpsignal_ingestor.metrics import TRACKED_SYMBOLS
from perpsignal_ingestor.publisher import build_each
from perpsignal_ingestor.sources.guard import gather_guarded
from perpsignal_ingestor.universe import Universe

# A candle is fetched this long after its close, so Binance has certainly sealed it
CLOSE_GRACE_S = 2.0
STATS_PERIOD = "5m"
RATIO_KINDS = ("global_account", "top_account", "top_position")


class BinanceMarketPoller:
    """Premium index, 24h tickers, closed klines and live open interest."""

    def __init__(
        self,
        client: BinanceUsdmHttp,
        universe: Universe,
        timeframes: Sequence[str],
        *,
        clock: Callable[[], float] = time.time,
        kline_backfill: int = 99,
        concurrency: int = 16,
    ) -> None:
        self.client = client
        self.universe = universe
        self.timeframes = list(timeframes)
        self._clock = clock
        self._backfill = kline_backfill
        self._concurrency = concurrency
        # boundaries whose candles are published (acknowledged) vs fetched but not yet known
        # to be published: a candle whose publish failed is fetched again on the next poll
        self._fetched_boundary: dict[tuple[str, str], int] = {}
        self._staged_boundary: dict[tuple[str, str], int] = {}
        self.next_funding_ms: dict[str, int] = {}

    def forget_klines(self) -> None:
        """Refetch every timeframe on the next poll (REST backfill after a stream reconnect)."""
        self._fetched_boundary.clear()

    async def poll(self) -> list[Event]:
        """Return this minute's market events for every tracked symbol."""
        now_s = self._clock()
        now = datetime.fromtimestamp(now_s, UTC)
        # staging belongs to one poll: what a failed or cancelled poll fetched was never
        # published, and a later poll must not acknowledge it (its refetch may have failed)
        self._staged_boundary.clear()
        symbols = self.universe.binance_symbols()
        TRACKED_SYMBOLS.set(len(symbols))
        jobs = [
            ("premiumIndex", self._premium(set(symbols))),
            ("ticker24hr", self._tickers(set(symbols))),
        ]
        for sym in symbols:
            for tf in self.timeframes:
                boundary = int((now_s - CLOSE_GRACE_S) // TIMEFRAME_SECONDS[tf])
                last = self._fetched_boundary.get((sym, tf))
                if last != boundary:
                    limit = self._backfill if last is None else min(99, boundary - last + 1)
                    jobs.append((f"klines {sym} {tf}", self._klines(sym, tf, limit, boundary, now)))
            jobs.append((f"openInterest {sym}", self._open_interest(sym)))
        return await gather_guarded("binance", jobs, self._concurrency)

    def acknowledge(self) -> None:
        """Record that everything the last poll returned is published (called by its loop)."""
        self._fetched_boundary.update(self._staged_boundary)
        self._staged_boundary.clear()

    async def _premium(self, symbols: set[str]) -> list[Event]:
        items = await self.client.fetch_premium_index_all()
        for i in items:
            self.next_funding_ms[i.symbol] = i.next_funding_time_ms
        wanted = (i for i in items if i.symbol in symbols)
        return build_each("binance", lambda i: [p.parse_premium_index(i)], wanted)

    async def _tickers(self, symbols: set[str]) -> list[Event]:
        items = await self.client.fetch_tickers_24h()
        self.universe.update_tickers(items)
        wanted = (i for i in items if i.symbol in symbols)
        return build_each("binance", lambda i: [p.parse_ticker(i)], wanted)

    async def _klines(
        self, sym: str, tf: str, limit: int, boundary: int, now: datetime
    ) -> list[Event]:
        rows = await self.client.fetch_klines(sym, tf, limit=limit)
        self._staged_boundary[(sym, tf)] = boundary
        # row by row: a bad candle must not take the good ones of its response with it
        return build_each(
            "binance",
            lambda r: p.parse_klines([r], sym, tf, now),  # type: ignore[arg-type]
            rows,
        )

    async def _open_interest(self, sym: str) -> list[Event]:
        return [p.parse_open_interest(await self.client.fetch_open_interest(sym))]


class BinanceRatiosPoller:
    """Open interest history, long/short ratios and taker flow (statistics endpoints)."""

    def __init__(
        self, client: BinanceUsdmHttp, universe: Universe, *, concurrency: int = 16
    ) -> None:
        self.client = client
        self.universe = universe
        self._concurrency = concurrency

    async def poll(self) -> list[Event]:
        """Return the latest statistics of every tracked symbol."""
        jobs = []
        for sym in self.universe.binance_symbols():
            jobs.append((f"openInterestHist {sym}", self._oi_hist(sym)))
            jobs += [(f"{kind} {sym}", self._ratio(kind, sym)) for kind in RATIO_KINDS]
            jobs.append((f"takerlongshortRatio {sym}", self._taker(sym)))
        return await gather_guarded("binance_ratios", jobs, self._concurrency)

    async def _oi_hist(self, sym: str) -> list[Event]:
        rows = await self.client.fetch_open_interest_hist(sym, STATS_PERIOD)
        # period by period: one the contract refuses costs only itself
        return build_each("binance", lambda r: p.parse_open_interest_hist([r], STATS_PERIOD), rows)

    async def _ratio(self, kind: str, sym: str) -> list[Event]:
        rows = await self.client.fetch_long_short(kind, sym, STATS_PERIOD)
        p.check_symbol(rows, sym)  # a row of another symbol: none of the answer is sym's
        return build_each(
            "binance", lambda r: p.parse_long_short([r], sym, kind, STATS_PERIOD), rows
        )

    async def _taker(self, sym: str) -> list[Event]:
        rows = await self.client.fetch_taker_ratio(sym, STATS_PERIOD)
        return build_each("binance", lambda r: p.parse_taker_ratio([r], sym, STATS_PERIOD), rows)


class BinanceFundingPoller:
    """Settled funding rates, fetched once per symbol after each funding settlement."""

    def __init__(
        self,
        client: BinanceUsdmHttp,
        universe: Universe,
        market: BinanceMarketPoller,
        *,
        clock: Callable[[], float] = time.time,
        concurrency: int = 8,
    ) -> None:
        self.client = client
        self.universe = universe
        self.market = market
        self._clock = clock
        self._concurrency = concurrency
        # settlements published (acknowledged by the loop) vs fetched by this poll: a rate
        # Kafka refused is fetched again on the next poll, not skipped until the next one
        self._done: dict[str, int] = {}
        self._staged: dict[str, int] = {}

    def acknowledge(self) -> None:
        """Record that everything the last poll returned is published (called by its loop)."""
        self._done.update(self._staged)
        self._staged.clear()

    async def poll(self) -> list[Event]:
        """Return settled rates of symbols whose funding time has passed since last fetch."""
        now_ms = int(self._clock() * 1000)
        self._staged.clear()  # what a failed or cancelled poll fetched was never published
        tracked = set(self.universe.binance_symbols())
        jobs = []
        for sym, settle_ms in self.market.next_funding_ms.items():
            if sym in tracked and settle_ms + 5_000 <= now_ms and self._done.get(sym) != settle_ms:
                jobs.append((f"fundingRate {sym}", self._fetch(sym, settle_ms)))
        return await gather_guarded("binance_funding", jobs, self._concurrency)

    async def _fetch(self, sym: str, settle_ms: int) -> list[Event]:
        rows = await self.client.fetch_funding_rates(sym, start_time=settle_ms - 3_600_000, limit=3)
        self._staged[sym] = settle_ms
        return list(p.parse_funding_history(rows))
