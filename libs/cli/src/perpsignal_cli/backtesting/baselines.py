"""Baselines on the same bars, so what the factors and the judge add is visible.

* buy-and-hold: long one unit from the first signal's entry to the last bar.
* random direction: at the same times and horizon as the platform's trades, a seeded coin
  flip picks LONG or SHORT.
* momentum: at the same times, LONG when the close rose over the previous `horizon` (the
  close at or before `entry - horizon`), else SHORT; no trade without that earlier close.

Each trade is measured with the outcomes service's `evaluate` on the same candle path as the
signals (no stop/target: the baselines have no trade plan).
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Sequence
from dataclasses import dataclass

from perpsignal_cli.backtesting.importers import CandleSeries
from perpsignal_cli.backtesting.pipeline import PathIndex
from perpsignal_domain.outcomes.evaluate import HORIZON_SECONDS, Evaluation

DEFAULT_SEED = 7


@dataclass(frozen=True)
class Trade:
    """One baseline trade: when, which way, and its measured outcome."""

    entry_ms: int
    direction: str
    evaluation: Evaluation


def close_at_or_before(series: CandleSeries, t_ms: int) -> float | None:
    """Return the close of the last bar that had closed by `t_ms` (causal), or None."""
    # a bar opening at o closes at o + step: it is known at t when o + step <= t
    i = bisect.bisect_right(series.open_ms, t_ms - series.step_ms) - 1
    return series.close[i] if i >= 0 else None


def trade(
    index: PathIndex, entry_ms: int, horizon_s: int, direction: str, entry: float, band_pct: float
) -> Trade | None:
    ev = index.measure(direction, entry, entry_ms, entry_ms + horizon_s * 1000, band_pct=band_pct)
    return None if ev is None else Trade(entry_ms, direction, ev)


def random_direction(
    index: PathIndex,
    entries: Sequence[tuple[int, float]],
    horizon: str,
    seed: int = DEFAULT_SEED,
    band_pct: float = 0.1,
) -> list[Trade]:
    """Return seeded coin-flip trades at the given (entry time ms, entry price) points."""
    rng = random.Random(f"{seed}:{horizon}")
    out = []
    for t, price in entries:
        side = "LONG" if rng.random() < 0.5 else "SHORT"
        tr = trade(index, t, HORIZON_SECONDS[horizon], side, price, band_pct)
        if tr:
            out.append(tr)
    return out


def momentum(
    series: CandleSeries,
    index: PathIndex,
    entries: Sequence[tuple[int, float]],
    horizon: str,
    band_pct: float = 0.1,
) -> list[Trade]:
    """Return trend-following trades: the sign of the past `horizon` return picks the side."""
    secs = HORIZON_SECONDS[horizon]
    out = []
    for t, price in entries:
        before = close_at_or_before(series, t - secs * 1000)
        if before is None or before <= 0:
            continue
        side = "LONG" if price >= before else "SHORT"
        tr = trade(index, t, secs, side, price, band_pct)
        if tr:
            out.append(tr)
    return out


def always_long(
    index: PathIndex, entries: Sequence[tuple[int, float]], horizon: str, band_pct: float = 0.1
) -> list[Trade]:
    """Return LONG trades at every given point (the market's drift at the same times)."""
    out = []
    for t, price in entries:
        tr = trade(index, t, HORIZON_SECONDS[horizon], "LONG", price, band_pct)
        if tr:
            out.append(tr)
    return out


def buy_and_hold(series: CandleSeries, start_ms: int) -> list[tuple[int, float]]:
    """Return (close time ms, P&L % of one unit held long) from `start_ms` to the last bar."""
    i = bisect.bisect_left(series.open_ms, start_ms)
    if i >= len(series):
        return []
    entry = close_at_or_before(series, start_ms) or series.open[i]
    step = series.step_ms
    return [
        (series.open_ms[k] + step, (series.close[k] / entry - 1.0) * 100.0)
        for k in range(i, len(series))
    ]
