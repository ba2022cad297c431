"""Candles no live venue sends: off their timeframe's grid, or observed away from their close.

Every venue the live scorer reads opens a 5m candle at a multiple of 5 minutes (OKX's daily
candles are requested UTC-aligned) and stamps `observed_at` at the close. A candle opening
at 00:06 was taken as one more bar (any open time after the last was accepted), got a signal
of its own and shifted every bar-counted horizon (momentum, SMC); one observed an hour after
its close was scored as news at that time. `candle_mismatch` names them; the live scorer
dead-letters them (tests/integration/scorer/test_scorer_refusals.py); the engine itself
takes any series (a backtest file may follow another grid). Candles come from the Binance
klines parser on the recorded XRPUSDT rows.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from perpsignal_common.events.market import CandleClosedV1
from perpsignal_connectors.binance_usdm.parsing import parse_klines
from perpsignal_connectors.binance_usdm.schemas import KLINES
from perpsignal_domain.scoring.engine import candle_mismatch
from tests.poison_helpers import NOW, kline_rows

TF_MS = 300_000


def off_grid(shared_data: Path, offset_ms: int) -> CandleClosedV1:
    """Recorded row 40 with its open and close time moved by `offset_ms`."""
    rows = kline_rows(shared_data / "market" / "XRP_USDT_USDT-5m-futures.csv", TF_MS, 41)
    stray = list(rows[40])
    stray[0] += offset_ms
    stray[6] += offset_ms
    (bad,) = parse_klines(KLINES.validate_python([stray]), "XRPUSDT", "5m", NOW)
    return bad


def observed_late(candle: CandleClosedV1, late_s: float) -> CandleClosedV1:
    """`candle` re-validated with observed_at moved by `late_s`."""
    return CandleClosedV1.model_validate(
        {
            **candle.model_dump(),
            "observed_at": candle.observed_at.timestamp() + late_s,
            "event_id": f"late-{late_s}",
        }
    )


@pytest.mark.parametrize("offset_ms", [60_000, 1_000, 150_000])
def test_an_off_grid_candle_is_named(shared_data: Path, offset_ms: int) -> None:
    reason = candle_mismatch(off_grid(shared_data, offset_ms))
    assert reason is not None and "grid" in reason


@pytest.mark.parametrize("late_s", [3600, 2 * 86_400, -300])
def test_a_candle_observed_far_from_its_close_is_named(shared_data: Path, late_s: int) -> None:
    rows = kline_rows(shared_data / "market" / "XRP_USDT_USDT-5m-futures.csv", TF_MS, 3)
    candle = parse_klines(KLINES.validate_python(rows), "XRPUSDT", "5m", NOW)[-1]
    reason = candle_mismatch(observed_late(candle, late_s))
    assert reason is not None and "close" in reason


@pytest.mark.parametrize(
    ("name", "tf", "tf_ms"),
    [
        ("XRP_USDT_USDT-5m-futures.csv", "5m", TF_MS),
        ("XRP_USDT_USDT-1h-futures.csv", "1h", 3_600_000),
    ],
)
def test_every_recorded_candle_passes(shared_data: Path, name: str, tf: str, tf_ms: int) -> None:
    rows = kline_rows(shared_data / "market" / name, tf_ms, 500)
    candles = parse_klines(KLINES.validate_python(rows), "XRPUSDT", tf, NOW)  # type: ignore[arg-type]
    assert [c for c in candles if candle_mismatch(c) is not None] == []
