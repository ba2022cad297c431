"""After a gap longer than its longest horizon, momentum is unknown until the horizon has
contiguous candles again, in the stream and in the batch alike.

Horizons count candles: the 16-bar return of the first candle after a feed outage compared
the price before the outage with the price after it as if they were 16 bars apart, and the
signal scored that as an 80-minute move. The recorded ADA/BTC 5m history has such a hole
(170 minutes, candle 1518); around it the factor now says `missing` with the count, the
signal's confidence drops, and the service logs the change once each way.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from perpsignal_common.events.signals import SignalScoredV1
from perpsignal_domain.scoring.config import EngineConfig
from perpsignal_domain.scoring.engine import ScoringEngine
from perpsignal_scorer.service import InputStatusLog
from tests.unit.scorer import recorded
from tests.unit.scorer.test_batch import _compare

CFG = EngineConfig(primary_timeframe="5m", smc_timeframes=("5m", "15m"))
HOLE = 1518  # the first candle after the recorded 170-minute hole
FIRST = 1300


@pytest.fixture(scope="module")
def candles(shared_data: Path) -> list[object]:
    events = recorded.candles(shared_data / "market" / "ADA_BTC-5m.csv", "ADABTC", "5m")
    gap = events[HOLE].open_time - events[HOLE - 1].open_time
    assert gap.total_seconds() == 170 * 60  # the recording's hole
    return events[FIRST : HOLE + 40]  # type: ignore[return-value]


def _signals(candles: list[object]) -> list[SignalScoredV1]:
    engine = ScoringEngine(CFG)
    return [s for c in candles for s in engine.apply(c)]  # type: ignore[arg-type]


def test_momentum_is_missing_until_the_longest_horizon_is_contiguous_again(
    candles: list[object],
) -> None:
    signals = _signals(candles)
    momentum = [next(f for f in s.factors if f.name == "momentum") for s in signals]
    after = HOLE - FIRST
    assert all(f.status == "ok" for f in momentum[30:after])  # warmed up, before the hole
    span = max(CFG.momentum_horizons)
    for j in range(1, span + 1):  # the hole's 1st..16th candles: a return would span it
        f, s = momentum[after + j - 1], signals[after + j - 1]
        assert (f.status, f.score, f.contribution) == ("missing", 50.0, 0.0)
        assert f.reason is not None and f.reason.startswith(f"{j}/{span + 1} contiguous")
        assert "momentum" in s.missing_factors
    assert all(f.status == "ok" for f in momentum[after + span :])
    # unknown lowers the confidence: the same bars scored with momentum in range did more
    before = [s.confidence for s in signals[after - span : after]]
    during = [s.confidence for s in signals[after : after + span]]
    assert max(during) < min(before)


def test_the_batch_says_the_same_bar_by_bar(candles: list[object]) -> None:
    assert _compare(CFG, candles, [], []) == len(candles)  # type: ignore[arg-type]


def test_the_service_logs_the_unknown_stretch_once_each_way(
    candles: list[object], caplog: pytest.LogCaptureFixture
) -> None:
    log = InputStatusLog()
    with caplog.at_level(logging.INFO, logger="perpsignal_scorer.service"):
        for s in _signals(candles)[HOLE - FIRST - 5 :]:
            log.observe(s)
    lines = [r.getMessage() for r in caplog.records]
    assert len([m for m in lines if "input lost: momentum missing" in m]) == 1
    assert len([m for m in lines if "now scores momentum" in m]) == 1
