"""The vectorized batch evaluation equals the streaming engine bar by bar (recorded data).

The batch is the benchmark's baseline: these tests are what makes "the same factors over the
same history" true, and they hold every incremental indicator, memoised sub-score and O(1)
SMC check of the stream against an independent whole-history computation.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from perpsignal_common.events.base import Event
from perpsignal_common.events.signals import FACTOR_NAMES, SignalScoredV1
from perpsignal_domain.scoring.batch import MISSING, OK, STALE, evaluate_batch
from perpsignal_domain.scoring.config import EngineConfig
from perpsignal_domain.scoring.engine import Evaluation, ScoringEngine, Trigger
from tests.unit.scorer import recorded

CODE = {"ok": OK, "missing": MISSING, "stale": STALE}


def _history(shared_data: Path) -> tuple[list[Event], list[Event], list[Event]]:
    m = shared_data / "market"
    candles = recorded.candles(m / "XRP_USDT_USDT-5m-futures.csv", "XRPUSDT", "5m")
    funding = recorded.funding(m / "XRP_USDT_USDT-8h-funding_rate.csv", "XRPUSDT")
    fng = [
        e
        for e in recorded.fear_greed(m / "alternative_me-fear_greed-1d.csv")
        if e.observed_at.year == 2021
    ]
    return candles, funding, fng  # type: ignore[return-value]


class _Evaluating(ScoringEngine):
    """Also keeps the evaluation at every primary close (a subclass: the compiled engine
    has no per-instance method attributes)."""

    def __init__(self, cfg: EngineConfig) -> None:
        super().__init__(cfg)
        self.stream: list[Evaluation] = []

    def signal(self, symbol: str, trigger: Event, kind: Trigger) -> SignalScoredV1:
        self.stream.append(self.evaluate(symbol, trigger.observed_at.timestamp()))
        return super().signal(symbol, trigger, kind)


def _compare(
    cfg: EngineConfig, candles: list[Event], funding: list[Event], fng: list[Event]
) -> int:
    """Stream the events, evaluate at every primary close, compare with the batch; return
    how many bars were compared."""
    engine = _Evaluating(cfg)
    stream = engine.stream
    for e in recorded.merged(fng, funding, candles):
        engine.apply(e)
    o = np.array([[c.open_time.timestamp(), c.high, c.low, c.close] for c in candles])  # type: ignore[attr-defined]
    batch = evaluate_batch(
        cfg,
        o[:, 0],
        o[:, 1],
        o[:, 2],
        o[:, 3],
        np.array([e.observed_at.timestamp() for e in funding]),
        np.array([e.rate for e in funding]),  # type: ignore[attr-defined]
        np.array([e.observed_at.timestamp() for e in fng]),
        np.array([float(e.value) for e in fng]),  # type: ignore[attr-defined]
    )
    assert len(stream) == len(candles) == len(batch.score)
    for i, ev in enumerate(stream):
        assert ev.now == batch.close_s[i]
        for k, name in enumerate(FACTOR_NAMES):
            r = ev.results[name]
            assert CODE[r.status] == batch.status[i, k], (i, name)
            assert r.score == pytest.approx(batch.scores[i, k], abs=1e-6), (i, name)
            if r.status != "missing":
                assert r.age_s == pytest.approx(batch.age_s[i, k], abs=1e-3), (i, name)
        assert ev.score == pytest.approx(batch.score[i], abs=1e-6), i
        assert ev.confidence == pytest.approx(batch.confidence[i], abs=1e-6), i
        direction = {"LONG": 1, "SHORT": -1, "NEUTRAL": 0}[ev.direction]
        assert direction == batch.direction[i], i
        assert ev.top_factors == tuple(FACTOR_NAMES[j] for j in batch.top[i] if j >= 0), i
    return len(stream)


def test_batch_equals_stream_on_recorded_history(shared_data: Path) -> None:
    candles, funding, fng = _history(shared_data)
    cfg = EngineConfig(primary_timeframe="5m", smc_timeframes=("5m", "15m", "1h"))
    assert _compare(cfg, candles, funding, fng) == 1999


def test_batch_equals_stream_with_gaps_and_other_settings(shared_data: Path) -> None:
    """Missing candles (short higher-timeframe bars), stale funding and Fear & Greed, other
    windows and swing length: still equal bar by bar."""
    candles, funding, fng = _history(shared_data)
    rng = np.random.default_rng(4)
    keep = rng.random(len(candles)) > 0.03
    keep[800:1100] = False  # a 25 h hole: funding and Fear & Greed go stale, trends restart
    candles = [c for c, k in zip(candles, keep, strict=True) if k]
    cfg = EngineConfig(
        primary_timeframe="5m",
        smc_timeframes=("15m", "1h", "4h"),
        swing_length=2,
        momentum_horizons=(2, 6),
        stale_s={"funding": 4 * 3600.0, "fear_greed": 20 * 3600.0},
    )
    assert _compare(cfg, candles, funding, fng) == int(keep.sum())


def test_batch_equals_stream_with_ranked_funding_and_cadence_staleness(
    shared_data: Path,
) -> None:
    """Funding ranked in a short own-history window from the third rate on, and stale after
    0.4 x its own 8 h cadence (3.2 h, above the 2 h floor): the batch replays the stream's
    funding history and limits bar by bar."""
    candles, funding, fng = _history(shared_data)
    cfg = EngineConfig(
        primary_timeframe="5m",
        smc_timeframes=("5m", "1h"),
        neutral_window=5,
        neutral_min_history=3,
        stale_cadence_multiple=0.4,
        stale_s={"funding": 2 * 3600.0},
    )
    assert _compare(cfg, candles, funding, fng) == 1999
    engine = ScoringEngine(cfg)
    statuses, ranks = set(), 0
    for e in recorded.merged(fng, funding, candles):
        for s in engine.apply(e):
            f = next(x for x in s.factors if x.name == "funding")
            statuses.add(f.status)
            ranks += f.status == "ok" and f.inputs.get("rate_rank") is not None
    assert {"ok", "stale"} <= statuses and ranks > 100
