"""Ingestor polling plan for the whole Binance USDT-perpetual universe (~500 symbols).

The real pollers (`BinanceMarketPoller` at 60 s: premium index, 24h tickers, klines for
5m/15m/1h/4h when a candle closed, open interest; `BinanceRatiosPoller` at 5 min: OI history,
three long/short ratios, taker flow; `BinanceFundingPoller`; exchangeInfo each minute) run
against the local fake Binance, whose own accounting measures the request weight per minute.
Time is simulated (each poll happens at its scheduled instant, the rate limiter's waits
advance the clock): a quarter hour of schedule takes minutes, not a quarter hour, and the
weight figures are exactly what Binance would count.

`steady` is the mean weight of the minutes after the first (the first minute backfills
every timeframe of every symbol and is reported as `peak`).

Same-run baseline: a naive plan (per-symbol premium/ticker calls, every timeframe every
minute) simulated against the same fake. The budget (steady and peak weight <= 50 % of
Binance's 2,400/min) is a fixed bound: those rows are absolute figures (they do not depend
on the machine: the weight is counted, not timed).
Events/s is per simulated second, next to the events the same polls parsed before the
published-id cache dropped re-polled facts.

Run: `uv run python bench/ingestor_polling.py [--symbols 500] [--minutes 16]` (or
BENCH_INGESTOR_SYMBOLS / BENCH_INGESTOR_MINUTES; the defaults are the whole universe).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import Row, report
from perpsignal_common.events.base import Event
from perpsignal_common.retry import RetryPolicy
from perpsignal_connectors.binance_usdm import constants as bc
from perpsignal_connectors.binance_usdm.http import BinanceUsdmHttp
from perpsignal_connectors.ratelimit import RateLimiter
from perpsignal_ingestor.publisher import Publisher
from perpsignal_ingestor.sources.binance import (
    BinanceFundingPoller,
    BinanceMarketPoller,
    BinanceRatiosPoller,
)
from perpsignal_ingestor.universe import Universe
from tests.fakes.vendors import FakeVendors

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
BUDGET = bc.WEIGHT_LIMIT_1M
TIMEFRAMES = ["5m", "15m", "1h", "4h"]
T0 = 1_767_225_600.0 + 30  # 2026-01-01 00:00:30 UTC: every timeframe just closed


class SimClock:
    """Simulated epoch clock; sleeping advances it."""

    def __init__(self, t: float) -> None:
        self.t = t

    def time(self) -> float:
        return self.t

    async def sleep(self, s: float) -> None:
        self.t += max(0.0, s)
        await asyncio.sleep(0)


class CountingProducer:
    """Stands in for Kafka: counts what the publisher sends."""

    def __init__(self) -> None:
        self.sent = 0

    async def publish(self, event: Event, **_: Any) -> None:
        self.sent += 1

    async def wait_delivered(self) -> None:
        return None

    async def publish_many(self, events: Iterable[Event], **_: object) -> int:
        n = 0
        for event in events:
            await self.publish(event)
            n += 1
        return n


def client(fake: FakeVendors, clock: SimClock, budget: int) -> BinanceUsdmHttp:
    return BinanceUsdmHttp(
        fake.url("binance"),
        limiter=RateLimiter(bc.quotas(budget), clock=clock.time, sleep=clock.sleep),
        retry=RetryPolicy(max_attempts=3, sleep=clock.sleep, rng=random.Random(0)),
        timeout=httpx.Timeout(30),
        clock=clock.time,
    )


async def run_plan(symbols: list[str], minutes: int, budget: int) -> dict[str, float]:
    """Run the ingestor's Binance pollers on simulated time; return the measured figures."""
    clock = SimClock(T0)
    async with FakeVendors(SHARED, symbols=symbols, clock=clock.time) as fake:
        http = client(fake, clock, budget)
        universe = Universe(["*"], clock=clock.time)
        producer = CountingProducer()
        publisher = Publisher(producer)  # type: ignore[arg-type]
        market = BinanceMarketPoller(http, universe, TIMEFRAMES, clock=clock.time, concurrency=32)
        ratios = BinanceRatiosPoller(http, universe, concurrency=32)
        funding = BinanceFundingPoller(http, universe, market, clock=clock.time)
        parsed = 0
        started = time.perf_counter()
        for m in range(minutes):
            clock.t = max(clock.t, T0 + 60 * m)
            universe.update_exchange((await http.fetch_exchange_info()).symbols)
            batches = [await market.poll(), await funding.poll()]
            if m % 5 == 0:
                batches.append(await ratios.poll())
            for batch in batches:
                parsed += len(batch)
                await publisher.publish("binance", batch)
            # as their loops do once the events are published: no refetch of what is done
            market.acknowledge()
            funding.acknowledge()
        wall = time.perf_counter() - started
        per_min = fake.weight_per_minute()
        await http.aclose()
    first = int(T0 // 60)
    steady = [w for minute, w in per_min.items() if minute > first]
    return {
        "steady_avg": sum(steady) / max(1, len(steady)),
        "peak": max(per_min.values()),
        "events_per_s": producer.sent / (minutes * 60),
        "parsed_per_s": parsed / (minutes * 60),
        "rejected": fake.binance.rejected,
        "wall_s": wall,
        "requests": sum(fake.requests.values()),
    }


async def run_naive(symbols: list[str], minutes: int) -> float:
    """Weight/min of a naive plan: per-symbol calls for everything, every minute."""
    clock = SimClock(T0)
    async with FakeVendors(SHARED, symbols=symbols, clock=clock.time) as fake:
        fake.binance.weight_limit_1m = 10**9  # measure the demand, not the throttling
        http = client(fake, clock, 10**9)
        sem = asyncio.Semaphore(32)

        async def guarded(coro: Any) -> None:
            async with sem:
                await coro

        for m in range(minutes):
            clock.t = T0 + 60 * m
            jobs = []
            for s in symbols:
                jobs += [
                    http.fetch_premium_index(s),
                    http.fetch_ticker_24h(s),
                    http.fetch_open_interest(s),
                ]
                jobs += [http.fetch_klines(s, tf, limit=99) for tf in TIMEFRAMES]
            await asyncio.gather(*(guarded(j) for j in jobs))
        per_min = fake.weight_per_minute()
        await http.aclose()
    return sum(per_min.values()) / len(per_min)


def main(symbols: int = 500, minutes: int = 16) -> list[dict[str, object]]:
    """Run the benchmark and return its result rows (none when ../shared/data is absent)."""
    if not (SHARED / "api" / "binance_usdm").is_dir():
        print(f"ingestor_polling: skipped, {SHARED} (recorded vendor bodies) is absent")
        return []
    universe = [f"S{i:03d}USDT" for i in range(symbols)]
    ours = asyncio.run(run_plan(universe, minutes, budget=1200))
    naive = asyncio.run(run_naive(universe, 1))
    rows = [
        Row.absolute(
            "binance_weight_per_min_steady",
            ours["steady_avg"],
            "weight/min",
            f"<= 50% of Binance's {BUDGET:,.0f}/min budget",
            limit=0.5 * BUDGET,
            higher_is_better=False,
        ),
        Row.absolute(
            "binance_weight_per_min_peak",
            ours["peak"],
            "weight/min",
            f"<= 50% of Binance's {BUDGET:,.0f}/min budget, even at start-up backfill",
            limit=0.5 * BUDGET,
            higher_is_better=False,
        ),
        Row(
            "binance_weight_vs_naive_plan",
            ours["steady_avg"],
            "weight/min",
            "naive per-symbol plan",
            naive,
            "below the naive plan",
            higher_is_better=False,
            goal_ratio=1.0,
        ),
        Row(
            "events_published_per_s",
            ours["events_per_s"],
            "events/s",
            "parsed before id dedupe",
            ours["parsed_per_s"],
            "informational",
            higher_is_better=False,
        ),
    ]
    out = report("ingestor_polling", rows)
    print(
        f"{symbols} symbols, {minutes} simulated minutes in {ours['wall_s']:.1f}s wall, "
        f"{ours['requests']:.0f} requests, {ours['rejected']:.0f} rejected (429) by the fake"
    )
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--symbols", type=int, default=int(os.environ.get("BENCH_INGESTOR_SYMBOLS", "500"))
    )
    ap.add_argument(
        "--minutes", type=int, default=int(os.environ.get("BENCH_INGESTOR_MINUTES", "16"))
    )
    args = ap.parse_args()
    main(args.symbols, args.minutes)
