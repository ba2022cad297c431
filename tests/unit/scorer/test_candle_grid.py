"""A candle that does not open on its timeframe's grid is refused (dead-lettered), not scored.

Every venue we read opens a 5m candle at a multiple of 5 minutes (OKX's daily candles are
requested UTC-aligned). A candle opening at 00:06 for 5m is no candle of the series: the
engine took it as one more bar (any open time after the last was accepted), emitted a
signal for it, and shifted every bar-counted horizon (momentum, SMC) by one bar. Candles
come from the Binance klines parser on the recorded XRPUSDT rows.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from perpsignal_common.errors import PoisonMessage
from perpsignal_common.events.base import utcnow
from perpsignal_connectors.binance_usdm.parsing import parse_klines
from perpsignal_connectors.binance_usdm.schemas import KLINES
from perpsignal_domain.scoring.config import EngineConfig
from perpsignal_domain.scoring.engine import ScoringEngine
from tests.poison_helpers import NOW, kline_rows

CFG = EngineConfig(primary_timeframe="5m", smc_timeframes=("5m", "15m"))
TF_MS = 300_000


@pytest.mark.parametrize("offset_ms", [60_000, 1_000, 150_000])
def test_an_off_grid_candle_is_refused_and_changes_nothing(
    shared_data: Path, offset_ms: int
) -> None:
    rows = kline_rows(shared_data / "market" / "XRP_USDT_USDT-5m-futures.csv", TF_MS, 60)
    stray = list(rows[40])
    stray[0] += offset_ms  # open time off the 5-minute grid
    stray[6] += offset_ms  # its close time with it
    candles = parse_klines(KLINES.validate_python(rows), "XRPUSDT", "5m", NOW)
    (bad,) = parse_klines(KLINES.validate_python([stray]), "XRPUSDT", "5m", NOW)

    clean, hit = ScoringEngine(CFG, clock=utcnow), ScoringEngine(CFG, clock=utcnow)
    expected = [s for c in candles for s in clean.apply(c)]
    got = []
    for i, c in enumerate(candles):
        got += hit.apply(c)
        if i == 39:  # right after the candle it would follow
            with pytest.raises(PoisonMessage, match="grid"):
                hit.apply(bad)
    assert [(s.event_id, s.score, s.price) for s in got] == [
        (s.event_id, s.score, s.price) for s in expected
    ]


def test_on_grid_candles_of_every_timeframe_are_taken(shared_data: Path) -> None:
    rows = kline_rows(shared_data / "market" / "XRP_USDT_USDT-1h-futures.csv", 3_600_000, 30)
    candles = parse_klines(KLINES.validate_python(rows), "XRPUSDT", "1h", NOW)
    engine = ScoringEngine(EngineConfig(primary_timeframe="1h", smc_timeframes=("1h",)))
    assert len([s for c in candles for s in engine.apply(c)]) == len(candles)


@pytest.mark.parametrize("late_s", [3600, 2 * 86_400, -300])
def test_a_candle_observed_far_from_its_close_is_refused(shared_data: Path, late_s: int) -> None:
    """`observed_at` is the candle's close time (every producer sets it so): the signal is
    evaluated and stamped at it. A candle claiming to be observed an hour or days after its
    close (or before it) would score a stale price as news, with every other input judged
    fresh or stale against the wrong time."""
    rows = kline_rows(shared_data / "market" / "XRP_USDT_USDT-5m-futures.csv", TF_MS, 41)
    candles = parse_klines(KLINES.validate_python(rows), "XRPUSDT", "5m", NOW)
    last = candles[-1]
    bad = type(last).model_validate(
        {
            **last.model_dump(),
            "observed_at": last.observed_at.timestamp() + late_s,
            "event_id": "late-candle",
        }
    )
    engine = ScoringEngine(CFG, clock=utcnow)
    for c in candles[:-1]:
        engine.apply(c)
    with pytest.raises(PoisonMessage, match="close"):
        engine.apply(bad)
    assert [s.observed_at for s in engine.apply(last)] == [last.observed_at]
