"""The stream's shortcuts against the plain computation they replace.

* `value_at_or_before` / `bar_at_or_before` (newest point, else binary search) against a
  walk back over the whole history;
* `fround` against round(), bit for bit (sign of zero included), on ties and near-ties;
* the per-factor memo (`SymbolState.memo`): at every evaluation of a stream with every kind
  of input, the memoised results equal the factors run on the same state with the memo
  emptied, and the cached SMC bias equals a fresh `smc_bias`.
"""

from __future__ import annotations

import math
import random
import struct
from collections import deque
from datetime import timedelta
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from perpsignal_common.events.base import Event
from perpsignal_common.events.market import (
    LiquidationBucketV1,
    LiquidationOrderV1,
    SocialMetricsV1,
    TrackCommandV1,
)
from perpsignal_domain.scoring.config import EngineConfig
from perpsignal_domain.scoring.engine import ScoringEngine
from perpsignal_domain.scoring.factors import FACTORS
from perpsignal_domain.scoring.factors.base import EvalContext, fround
from perpsignal_domain.scoring.state import (
    Bar,
    Point,
    append_point,
    bar_at_or_before,
    value_at_or_before,
)
from tests.unit.scorer import recorded


def _walk_back(points: deque[Point], t: float) -> Point | None:
    for p in reversed(points):
        if p.t <= t:
            return p
    return None


@given(
    st.lists(st.floats(0, 1e5, allow_nan=False), max_size=60),
    st.lists(st.floats(-10, 1.1e5, allow_nan=False), min_size=1, max_size=20),
    st.sampled_from([0.0, 60.0]),
)
def test_lookups_equal_a_walk_back(times: list[float], queries: list[float], gap: float) -> None:
    points: deque[Point] = deque(maxlen=40)
    for k, t in enumerate(sorted(times)):
        append_point(points, t, float(k), gap)
    bars: deque[Bar] = deque(Bar(t - 60, t, 1, 1, 1, 1, 1) for t in sorted(set(times)))
    for q in queries + [p.t for p in points]:
        assert value_at_or_before(points, q) is _walk_back(points, q)
        expected = next((b for b in reversed(bars) if b.close_s <= q), None)
        assert bar_at_or_before(bars, q) is expected


def _bits(x: float) -> bytes:
    return struct.pack("<d", x)


@given(st.floats(allow_nan=False), st.sampled_from([0, 2, 3, 4, 6, 10, 15]))
def test_fround_is_round(x: float, ndigits: int) -> None:
    assert _bits(fround(x, ndigits)) == _bits(round(x, ndigits))


def test_fround_is_round_on_ties_and_near_ties() -> None:
    rng = random.Random(3)
    for ndigits in (2, 4, 6):
        scale = 10.0**ndigits
        for _ in range(20_000):
            k = rng.randrange(-(10**9), 10**9)
            tie = (k + 0.5) / scale
            for x in (
                tie,
                math.nextafter(tie, math.inf),
                math.nextafter(tie, -math.inf),
                (k + 0.5) / 2 ** rng.randrange(1, 30),  # exact binary ties
                rng.uniform(-1, 1) * 10 ** rng.uniform(-12, 13),
            ):
                for v in (x, -x):
                    assert _bits(fround(v, ndigits)) == _bits(round(v, ndigits)), (v, ndigits)
    for v in (0.0, -0.0, 5e-324, -5e-324, math.inf, -math.inf, 0.0078125, 2.5, -0.5):
        assert _bits(fround(v, 6)) == _bits(round(v, 6))
    assert math.isnan(fround(math.nan, 4))


def _rich_stream(shared_data: Path) -> list[Event]:
    """Recorded candles, funding, Fear & Greed and positioning (moved onto the candles'
    dates), plus synthetic liquidations, social metrics and track commands."""
    m = shared_data / "market"
    candles = recorded.candles(m / "XRP_USDT_USDT-5m-futures.csv", "XRPUSDT", "5m")[:900]
    funding = recorded.funding(m / "XRP_USDT_USDT-8h-funding_rate.csv", "XRPUSDT")
    fng = recorded.fear_greed(m / "alternative_me-fear_greed-1d.csv")
    pos = recorded.oi_long_short(m / "binance-BTCUSDT-5m-oi_longshort_basis.csv", "BTCUSDT")
    rng = random.Random(7)
    t0, p0 = candles[0].observed_at, pos[0].observed_at
    span = pos[-1].observed_at - p0 + timedelta(minutes=5)
    shifted = [
        e.model_copy(
            update={
                "symbol": "XRPUSDT",
                "observed_at": t0 + (e.observed_at - p0) + k * span + timedelta(hours=3),
                "event_id": f"{e.event_id}-{k}",
            }
        )
        for k in range(8)
        for e in pos
        if rng.random() > 0.05
    ]
    extra: list[Event] = []
    t = t0
    end = candles[-1].observed_at
    while t < end:
        t += timedelta(seconds=rng.expovariate(1 / 900))
        x, i = rng.random(), len(extra)
        common = {"event_id": f"x{i}", "symbol": "XRPUSDT", "observed_at": t}
        if x < 0.5:
            extra.append(
                LiquidationOrderV1(
                    **common,
                    source="binance",
                    liquidated_side=rng.choice(["LONG", "SHORT"]),
                    price=1.0,
                    quantity=1.0,
                    notional_usd=rng.uniform(1e3, 8e5),
                )
            )
        elif x < 0.65:
            extra.append(
                LiquidationBucketV1(
                    **common,
                    source="coinglass",
                    window_s=300,
                    long_liquidations_usd=rng.uniform(0, 5e5),
                    short_liquidations_usd=rng.uniform(0, 5e5),
                    count=3,
                )
            )
        elif x < 0.85:
            extra.append(
                SocialMetricsV1(
                    **{**common, "symbol": "XRP"},
                    source="lunarcrush",
                    galaxy_score=rng.choice([None, rng.uniform(20, 80)]),
                    sentiment=rng.uniform(40, 90),
                )
            )
        else:
            extra.append(TrackCommandV1(**common, source="gateway"))
    return recorded.merged(fng, funding, candles, shifted, extra)


def test_memoised_factors_equal_a_fresh_computation(shared_data: Path) -> None:
    cfg = EngineConfig(primary_timeframe="5m", smc_timeframes=("5m", "15m", "1h"))
    engine = ScoringEngine(cfg)
    statuses: set[tuple[str, str]] = set()
    checked = 0
    for e in _rich_stream(shared_data):
        engine.apply(e)
        if e.symbol != "XRPUSDT" or "XRPUSDT" not in engine.states:
            continue
        now = e.observed_at.timestamp()
        st_ = engine.states["XRPUSDT"]
        for at in (now, now + 1.5):  # twice at the same time, then a little later
            ev = engine.evaluate("XRPUSDT", at)
            bias, by_tf = engine.smc_bias("XRPUSDT")
            assert engine._bias("XRPUSDT") == (bias, by_tf)  # the cached one is current
            memo, st_.memo = st_.memo, {}
            faded = None if bias is None else engine.faded_smc_bias("XRPUSDT", at)
            ctx = EvalContext(at, engine.fear_greed, bias, by_tf, faded, engine.fear_greed_neutral)
            fresh = {name: fn(st_, ctx, cfg) for name, fn in FACTORS.items()}
            st_.memo = memo
            assert ev.results == fresh, (e.type, at)
            statuses |= {(n, r.status) for n, r in fresh.items()}
            checked += 1
    assert checked > 1000
    # every factor was seen ok, and the time-dependent ones also stale or missing
    assert {(n, "ok") for n in FACTORS} <= statuses
    assert {("long_short", "stale"), ("oi_trend", "stale"), ("social", "stale")} <= statuses


def test_signals_from_the_caches_equal_signals_built_fresh(shared_data: Path) -> None:
    """The signal-side caches (FactorScore per reused result, the candle window shifted by
    one bar, the SMC summary and its labels) against an engine that drops them before every
    signal."""
    cfg = EngineConfig(primary_timeframe="5m", smc_timeframes=("5m", "15m", "1h"))
    cached, fresh = ScoringEngine(cfg), ScoringEngine(cfg)
    dump = lambda s: s.model_dump(exclude={"produced_at"})  # noqa: E731
    signals = 0
    for e in _rich_stream(shared_data):
        fresh._scores.clear()
        fresh._windows.clear()
        fresh._summaries.clear()
        fresh._labels.clear()
        a, b = cached.apply(e), fresh.apply(e)
        assert [dump(s) for s in a] == [dump(s) for s in b]
        signals += len(a)
    assert signals > 800
