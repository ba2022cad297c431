"""A flood of liquidation reports for one symbol costs O(n log n) per evaluation, with the
same totals as before.

`LiquidationLedger.totals` asks, for every bucket in the window, whether a bucket of its
venue's own source (or, for an all-exchange total, of any single venue) overlaps it. It
used to scan every later-ending bucket for that: O(n) per bucket, O(n^2) per evaluation;
and an all-exchange total asked every venue's feeds in turn, so a flood of reports each
naming its own venue (Coinglass names the exchange of every order it relays) was O(n^2)
too.
`reference_totals` below is the rule written as plainly as possible (every pair looked at);
the ledger must give exactly its numbers, on random floods and on what the real ingestor
emits from the recorded Binance and Coinglass messages. The bound is counted, not timed:
every comparison the ledger makes between the times it was given, through a float subclass
that counts them. Compiled code (mypyc, `perpsignal_domain._native`) unboxes its float
arguments and so never calls those hooks: the counted tests run the same source interpreted
(`_INTERPRETED`); the totals tests run whichever build is active.
"""

from __future__ import annotations

import importlib.util
import math
import random
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import perpsignal_domain
from perpsignal_common.errors import PoisonMessage
from perpsignal_common.events.base import Event
from perpsignal_common.events.market import LiquidationOrderV1
from perpsignal_domain.scoring.config import EngineConfig
from perpsignal_domain.scoring.engine import ScoringEngine
from perpsignal_domain.scoring.state import (
    AGGREGATE_VENUES,
    MAX_LIQUIDATION_FEEDS,
    RELAY_MATCH_S,
    LiquidationLedger,
)
from tests.unit.scorer.test_liquidations_once import IngestorLiquidations

SYMBOL = "BTCUSDT"


def _interpreted_state() -> Any:
    """`perpsignal_domain.scoring.state` loaded from its source as interpreted Python."""
    source = Path(perpsignal_domain.__file__).parent / "scoring" / "state.py"
    name = "_interpreted_scoring_state"
    spec = importlib.util.spec_from_file_location(name, source)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


_INTERPRETED = _interpreted_state()
H = 3600.0


def reference_totals(ledger: LiquidationLedger, start: float, end: float) -> tuple[float, float]:
    """The ledger's rule (its class docstring) over everything it holds, pair by pair, in
    the ledger's order (so that the float sums are bit for bit comparable)."""

    def orders_in(venue: str | None, s: float, e: float) -> bool:
        return any(
            s <= t <= e
            for v, sources in ledger.orders.items()
            if venue is None or v == venue
            for feed in sources.values()
            for t, _, _ in feed
        )

    def overlap(feed: Any, s: float, e: float) -> bool:
        return any(b_end > s and b_start < e for b_end, b_start, _, _ in feed)

    long_usd = short_usd = 0.0
    for venue, sources in ledger.orders.items():
        own = sources.get(venue, ())
        for source, feed in sources.items():
            for t, lo, sh in feed:
                if not start < t <= end:
                    continue
                if source != venue and any(
                    t - RELAY_MATCH_S <= u <= t + RELAY_MATCH_S for u, _, _ in own
                ):
                    continue
                long_usd += lo
                short_usd += sh
    for venue, bucket_sources in ledger.buckets.items():
        own_buckets = bucket_sources.get(venue, ())
        for source, buckets in bucket_sources.items():
            for b_end, b_start, lo, sh in buckets:
                if not start < b_end <= end:
                    continue
                if venue in AGGREGATE_VENUES:
                    covered = orders_in(None, b_start, b_end) or any(
                        overlap(feed, b_start, b_end)
                        for v, srcs in ledger.buckets.items()
                        if v not in AGGREGATE_VENUES
                        for feed in srcs.values()
                    )
                else:
                    covered = orders_in(venue, b_start, b_end)
                if covered or (source != venue and overlap(own_buckets, b_start, b_end)):
                    continue
                long_usd += lo
                short_usd += sh
    return long_usd, short_usd


VENUES = ("binance", "okx", "coinglass")
SOURCES = ("binance", "okx", "coinglass", "coinglass_stream")
# Coinglass names the exchange of each relayed order: many venues, one source
EXCHANGES = tuple(f"exchange{k}" for k in range(30))


def _random_ledger(
    rng: random.Random, n: int, venues: tuple[str, ...] = VENUES[:2]
) -> LiquidationLedger:
    """Orders and buckets of a few venues and sources, some late, some repeated, windows
    from zero to a day, over about three hours."""
    ledger = LiquidationLedger()
    t0 = 1_700_000_000.0
    seen: list[tuple[Any, ...]] = []
    for k in range(n):
        if seen and rng.random() < 0.05:  # a redelivery
            args = rng.choice(seen)
        elif rng.random() < (0.5 if venues is VENUES[:2] else 0.1):
            t = t0 + rng.choice([rng.uniform(0, 3 * H), round(rng.uniform(0, 3 * H) / 60) * 60])
            side = rng.random() < 0.5
            usd = rng.choice([rng.uniform(1, 5e5), 1e30, 0.0])
            args = ("o", ("o", k), rng.choice(venues), rng.choice(SOURCES), t,
                    usd if side else 0.0, 0.0 if side else usd)  # fmt: skip
        else:
            end = t0 + round(rng.uniform(0, 3 * H) / 300) * 300 + rng.choice([0, 0, 17.5])
            window = rng.choice([0, 60, 300, 300, 300, 3600, 4 * H, 86400])
            venue = rng.choice([*venues, "coinglass"])
            args = ("b", ("b", k), venue, rng.choice(SOURCES), end - window, end,
                    rng.uniform(0, 2e6), rng.uniform(0, 2e6))  # fmt: skip
        seen.append(args)
        if args[0] == "o":
            ledger.add_order(*args[1:])
        else:
            ledger.add_bucket(*args[1:])
    return ledger


@pytest.mark.parametrize("seed", range(40))
def test_random_floods_total_as_the_reference(seed: int) -> None:
    """Odd seeds: orders and buckets of 30 exchanges (as Coinglass relays them), where the
    coverage questions are answered from the merged feeds."""
    rng = random.Random(seed)
    venues = EXCHANGES if seed % 2 else VENUES[:2]
    ledger = _random_ledger(rng, rng.choice([10, 60, 400, 800]), venues)
    t0 = 1_700_000_000.0
    for _ in range(25):
        end = t0 + rng.uniform(-H, 4 * H)
        start = end - rng.choice([300.0, H, 4 * H, 86400.0])
        assert ledger.totals(start, end) == reference_totals(ledger, start, end)


async def test_a_recorded_flood_through_the_ingestor_totals_as_the_reference(
    shared_data: Path,
) -> None:
    """The recorded Binance `forceOrder` message every 7 s for 3 h (either side, sizes
    varied), each as Binance's stream, Coinglass's relay or both report it (with outages of
    either stream for whole 5-minute windows), with the
    ingestor's 5-minute buckets and Coinglass's recorded all-exchange totals, delivered
    in a shuffled order to the real engine."""
    rng = random.Random(7)
    ing = IngestorLiquidations(shared_data)
    order = ing.force_order["o"]
    assert isinstance(order, dict)
    qty = float(order["z"])
    first_ms = ing.trade_ms - ing.trade_ms % (4 * 3_600_000) + 3_600_000
    for k in range(3 * 3600 // 7):
        ms = first_ms + k * 7000 + rng.randrange(1000)
        ing.force_order["E"] = order["T"] = ing.trade_ms = ms
        order["S"] = rng.choice(["SELL", "BUY"])
        order["z"] = f"{qty * rng.uniform(0.1, 40):.3f}"
        window = k * 7 // 300
        binance_up, relay_up = window % 5 != 3, window % 7 != 2  # outages of either stream
        how = rng.random()
        if binance_up and (how < 0.7 or not relay_up):
            await ing.binance_order()
        if relay_up and (how > 0.5 or not binance_up):
            await ing.coinglass_relay()
    events: list[Event] = [*ing.producer.events]
    ing.now_s = first_ms / 1000 + 4 * H
    events += ing.aggregator.flush()
    events += ing.coinglass_totals()
    assert len(events) > 1500
    rng.shuffle(events)
    engine = ScoringEngine(EngineConfig(primary_timeframe="5m", smc_timeframes=("5m",)))
    for e in events:
        engine.apply(e)
    ledger = engine.states[SYMBOL].liquidations
    assert len(ledger.buckets["binance"]) == 2  # Binance's and the relay's own windows
    checked = 0
    for end_s in range(int(first_ms / 1000) - 600, int(first_ms / 1000 + 4 * H), 450):
        for window in (300.0, H, 4 * H):
            got = ledger.totals(end_s - window, float(end_s))
            assert got == reference_totals(ledger, end_s - window, float(end_s))
            checked += got != (0.0, 0.0)
    assert checked > 50


# ---- the bound, counted ------------------------------------------------------------------


class _Counted(float):
    """A time whose every comparison is counted (Python asks a float subclass first, so a
    plain float compared with one is counted too)."""

    calls = 0

    def __lt__(self, other: object) -> bool:
        _Counted.calls += 1
        return float(self) < other  # type: ignore[operator]

    def __le__(self, other: object) -> bool:
        _Counted.calls += 1
        return float(self) <= other  # type: ignore[operator]

    def __gt__(self, other: object) -> bool:
        _Counted.calls += 1
        return float(self) > other  # type: ignore[operator]

    def __ge__(self, other: object) -> bool:
        _Counted.calls += 1
        return float(self) >= other  # type: ignore[operator]


def _hostile(n: int) -> LiquidationLedger:
    """n one-second buckets of Binance's own stream, n of the Coinglass relay and n of the
    all-exchange totals, each in a gap between the own buckets: none overlaps, so every
    question about a bucket has the answer 'no' (the one that scanned everything)."""
    ledger = _INTERPRETED.LiquidationLedger()
    t0 = 1_700_000_000.0
    c = _Counted
    for i in range(n):
        at = t0 + 3 * i
        ledger.add_bucket(("own", i), "binance", "binance", c(at + 2), c(at + 3), 1.0, 2.0)
        ledger.add_bucket(("relay", i), "binance", "coinglass", c(at), c(at + 1), 3.0, 5.0)
        ledger.add_bucket(("all", i), "coinglass", "coinglass", c(at + 1), c(at + 2), 7.0, 11.0)
    return ledger


def _comparisons(n: int) -> tuple[int, tuple[float, float]]:
    ledger = _hostile(n)
    t0 = 1_700_000_000.0
    _Counted.calls = 0
    got = ledger.totals(t0 - 1.0, t0 + 3 * n)
    return _Counted.calls, got


def test_a_bucket_flood_costs_n_log_n_comparisons() -> None:
    sizes = (128, 256, 512, 1024)  # 1024: a feed's capacity
    counts = {}
    for n in sizes:
        counts[n], got = _comparisons(n)
        assert got == (n * 11.0, n * 18.0)  # nothing overlaps: every bucket counts
    for n in sizes:
        # bisections and one pass per feed; the quadratic scan made n^2 / 2 per feed
        assert counts[n] <= 12 * n * math.log2(n), counts
    assert counts[1024] < 6 * counts[256], counts


VENUE_FLOOD = 127  # venues of orders, and as many of buckets: the most a symbol keeps


def _venue_flood(n: int) -> LiquidationLedger:
    """n orders of 127 venues, n all-exchange totals and n buckets of 127 more venues,
    none covering another: every all-exchange total asks every venue."""
    ledger = _INTERPRETED.LiquidationLedger()
    t0 = 1_700_000_000.0
    c = _Counted
    for i in range(n):
        at = t0 + 3 * i
        v, w = f"v{i % VENUE_FLOOD}", f"w{i % VENUE_FLOOD}"
        ledger.add_order(("o", i), v, v, c(at), 1.0, 0.0)
        ledger.add_bucket(("all", i), "coinglass", "coinglass", c(at + 1), c(at + 2), 7.0, 11.0)
        ledger.add_bucket(("b", i), w, w, c(at + 2.2), c(at + 2.8), 3.0, 5.0)
    assert ledger._feeds == 2 * min(n, VENUE_FLOOD) + 1 <= MAX_LIQUIDATION_FEEDS
    return ledger


def test_a_flood_of_venues_costs_n_log_n_comparisons() -> None:
    t0 = 1_700_000_000.0
    counts = {}
    for n in (128, 256, 512, 1024):
        ledger = _venue_flood(n)
        _Counted.calls = 0
        got = ledger.totals(t0 - 1.0, t0 + 3 * n)
        counts[n] = _Counted.calls
        assert got == (n * 11.0, n * 16.0)  # nothing covered: everything counts
        if n <= 256:  # (the pairwise reference is the quadratic one)
            assert got == reference_totals(ledger, t0 - 1.0, t0 + 3 * n)
    for n, count in counts.items():
        assert count <= 12 * n * math.log2(n), counts
    assert counts[1024] < 6 * counts[256], counts


async def test_a_report_naming_a_feed_beyond_the_cap_is_refused(shared_data: Path) -> None:
    """Each feed (venue and source) is memory and a question per bucket: a symbol keeps at
    most MAX_LIQUIDATION_FEEDS; a report that would open one more is a PoisonMessage (the
    service dead-letters it with the reason), counted nowhere, and the feeds already kept
    go on counting. Orders: the recorded Coinglass relay through its parser, each naming
    another exchange."""
    ing = IngestorLiquidations(shared_data)
    await ing.coinglass_relay()
    (order,) = ing.producer.events
    assert isinstance(order, LiquidationOrderV1) and order.source == "coinglass"
    engine = ScoringEngine(EngineConfig(primary_timeframe="5m", smc_timeframes=("5m",)))
    t = order.observed_at.timestamp()

    def named(k: int) -> LiquidationOrderV1:
        return order.model_copy(update={"venue": f"exchange{k}", "event_id": f"o-{k}"})

    for k in range(MAX_LIQUIDATION_FEEDS):
        engine.apply(named(k))
    ledger = engine.states[SYMBOL].liquidations
    before = ledger.totals(t - H, t)
    assert before[0] + before[1] == pytest.approx(MAX_LIQUIDATION_FEEDS * order.notional_usd)
    with pytest.raises(PoisonMessage, match=f"at most {MAX_LIQUIDATION_FEEDS} venue/source"):
        engine.apply(named(MAX_LIQUIDATION_FEEDS))
    assert ledger.totals(t - H, t) == before
    assert len(ledger.orders) == MAX_LIQUIDATION_FEEDS
    # a kept feed still counts its next order
    later = named(3).model_copy(
        update={"event_id": "later", "observed_at": order.observed_at + timedelta(seconds=1)}
    )
    engine.apply(later)
    assert sum(ledger.totals(t - H, t + 1)) > sum(before)
