"""The backtest's fast outcome paths and tracked rows equal the outcomes service's own."""

from __future__ import annotations

import random
from datetime import timedelta
from pathlib import Path

from perpsignal_cli.backtesting.importers import CandleSeries, ms_to_dt
from perpsignal_cli.backtesting.pipeline import (
    PathIndex,
    load_history,
    run_in_process,
    tracked_rows,
)
from perpsignal_domain.outcomes.evaluate import HORIZON_SECONDS, Candle, evaluate, path_window
from perpsignal_outcomes.repository import outcome_rows, signal_row


def _series(step_ms: int = 60_000, n: int = 400, seed: int = 1) -> CandleSeries:
    """Sorted candles with gaps (absent minutes) and a few duplicated open times."""
    rng = random.Random(seed)
    s = CandleSeries("1m")
    t = 1_640_995_200_000
    for _ in range(n):
        t += step_ms * (1 if rng.random() > 0.05 else rng.randint(2, 4))
        for _ in range(2 if rng.random() < 0.01 else 1):
            price = 100 + rng.random()
            s.open_ms.append(t)
            s.open.append(price)
            s.high.append(price + rng.random())
            s.low.append(price - rng.random())
            s.close.append(price + rng.uniform(-0.5, 0.5))
            s.volume.append(1.0)
            s.quote_volume.append(None)
    return s


def test_path_index_equals_path_window() -> None:
    series = _series()
    index = PathIndex(series)
    # the reference: every candle of the series, built eagerly (the index builds them lazily)
    candles = [
        Candle(ms_to_dt(t), o, h, lo, c)
        for t, o, h, lo, c in zip(
            series.open_ms, series.open, series.high, series.low, series.close, strict=True
        )
    ]
    rng = random.Random(2)
    first, last = series.open_ms[0], series.open_ms[-1]
    complete = 0
    for _ in range(3000):
        entry = rng.randrange(first - 600_000, last + 600_000, 60_000) + rng.choice(
            (0, 0, 0, 1, 30_000)
        )
        due = (
            entry
            + rng.choice((0, 60_000, 300_000, 3_600_000, 14_400_000))
            + rng.choice((0, 0, -1, 1, 59_999))
        )
        ours = index.path(entry, due)
        theirs = path_window(candles, ms_to_dt(entry), ms_to_dt(due), index.step)
        assert ours == (theirs or None)
        complete += ours is not None
    assert complete > 100  # the comparison covered complete windows too


def test_measure_is_evaluate_on_the_path() -> None:
    index = PathIndex(_series())
    entry_ms = index.open_ms[10]
    for direction in ("LONG", "SHORT"):
        for due_ms in (entry_ms + 60_000, entry_ms + 3_600_000):
            path = index.path(entry_ms, due_ms)
            got = index.measure(direction, 100.0, entry_ms, due_ms, stop=99.5, target=100.8)
            if path is None:
                assert got is None
            else:
                assert got == evaluate(direction, 100.0, path, stop=99.5, target=100.8)
            # memoised: the same answer again
            assert index.measure(direction, 100.0, entry_ms, due_ms, stop=99.5, target=100.8) == got


def test_tracked_rows_equal_the_outcomes_service_rows(xrp_small: Path, market: Path) -> None:
    history = load_history(
        "XRPUSDT", xrp_small, funding=market / "XRP_USDT_USDT-8h-funding_rate.csv"
    )
    judged = [r.judged for r in run_in_process(history, progress=False).records]
    assert judged
    # one with a trade plan, so stop and target are compared with values, not only None
    j = judged[-1]
    layer = j.ai_verdict_layer
    planned = j.model_copy(
        update={
            "direction": "LONG",
            "ai_verdict_layer": layer.model_copy(
                update={
                    "volatility_metrics": layer.volatility_metrics.model_copy(
                        update={
                            "stop_loss_price": j.price * 0.98,
                            "take_profit_price": j.price * 1.03,
                        }
                    )
                }
            ),
        }
    )
    secs = {h: HORIZON_SECONDS[h] for h in ("1h", "4h", "24h")}
    for sig in [*judged, planned]:
        ours = tracked_rows(sig, secs)
        theirs = outcome_rows(signal_row(sig), secs, timedelta(0))
        assert ours == [{k: row[k] for k in ours[0]} for row in theirs]
