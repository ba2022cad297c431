"""Outcome arithmetic: pure functions over an entry, a direction and a candle path.

Rules (also in the README):
* P&L % is sign-correct: LONG `(exit - entry) / entry * 100`, SHORT `(entry - exit) / entry * 100`.
* Result: WIN when P&L > band, LOSS when P&L < -band, else NEUTRAL (band default 0.1 %).
* Max favourable / adverse excursion are magnitudes in % of entry (both >= 0), from the highs and
  lows of every candle in the path, not only the end price.
* First hit: the first candle whose range touches the stop or the target. When one candle touches
  both, we cannot know the order inside it and assume the worst case: the stop was hit first.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

Result = Literal["WIN", "LOSS", "NEUTRAL"]
FirstHit = Literal["stop", "target", "none"]

DEFAULT_NEUTRAL_BAND_PCT = 0.1


@dataclass(frozen=True, slots=True)
class Candle:
    """One OHLC candle of the path (open_time is the candle start, UTC)."""

    open_time: datetime
    open: float
    high: float
    low: float
    close: float


@dataclass(frozen=True, slots=True)
class Evaluation:
    """The measured outcome of one signal at one horizon."""

    exit_price: float
    pnl_pct: float
    result: Result
    max_favorable_pct: float
    max_adverse_pct: float
    first_hit: FirstHit
    candles_used: int


def pnl_pct(direction: str, entry: float, exit_price: float) -> float:
    """Return the P&L in percent of entry, positive when the move favoured `direction`."""
    move = (exit_price - entry) / entry * 100.0
    return move if direction == "LONG" else -move


def classify(pnl: float, band_pct: float = DEFAULT_NEUTRAL_BAND_PCT) -> Result:
    """Return WIN/LOSS/NEUTRAL: moves inside +-band are noise, not a verdict on the signal."""
    if pnl > band_pct:
        return "WIN"
    if pnl < -band_pct:
        return "LOSS"
    return "NEUTRAL"


def first_hit(
    direction: str, candles: Sequence[Candle], stop: float | None, target: float | None
) -> FirstHit:
    """Return which of stop/target the path touched first (stop when both in one candle)."""
    if stop is None and target is None:
        return "none"
    long = direction == "LONG"
    for c in candles:
        if long:
            stop_hit = stop is not None and c.low <= stop
            target_hit = target is not None and c.high >= target
        else:
            stop_hit = stop is not None and c.high >= stop
            target_hit = target is not None and c.low <= target
        if stop_hit:
            return "stop"
        if target_hit:
            return "target"
    return "none"


def evaluate(
    direction: str,
    entry: float,
    candles: Sequence[Candle],
    *,
    stop: float | None = None,
    target: float | None = None,
    band_pct: float = DEFAULT_NEUTRAL_BAND_PCT,
) -> Evaluation:
    """Evaluate a LONG/SHORT entry over `candles` (oldest first; the last close is the exit)."""
    if direction not in ("LONG", "SHORT"):
        raise ValueError(f"cannot evaluate direction {direction!r}")
    if not candles:
        raise ValueError("an evaluation needs at least one candle")
    if entry <= 0:
        raise ValueError("entry price must be positive")
    exit_price = candles[-1].close
    pnl = pnl_pct(direction, entry, exit_price)
    highest = max(c.high for c in candles)
    lowest = min(c.low for c in candles)
    up = (highest - entry) / entry * 100.0
    down = (entry - lowest) / entry * 100.0
    favorable, adverse = (up, down) if direction == "LONG" else (down, up)
    return Evaluation(
        exit_price=exit_price,
        pnl_pct=pnl,
        result=classify(pnl, band_pct),
        max_favorable_pct=max(0.0, favorable),
        max_adverse_pct=max(0.0, adverse),
        first_hit=first_hit(direction, candles, stop, target),
        candles_used=len(candles),
    )


def path_window(
    candles: Sequence[Candle], entry_at: datetime, due_at: datetime, step: timedelta
) -> list[Candle] | None:
    """Return the candles fully inside [entry_at, due_at], or None when any is missing.

    The path starts at the first candle opening at or after the entry (a signal is emitted at a
    candle close, so that is the next candle) and ends with the candle closing at or before the
    due time; its close is the price at the horizon.
    """
    inside = sorted(
        (c for c in candles if c.open_time >= entry_at and c.open_time + step <= due_at),
        key=lambda c: c.open_time,
    )
    expected = expected_count(entry_at, due_at, step)
    if expected < 1 or len(inside) != expected:
        return None
    return inside


def path_window_sorted(
    candles: Sequence[Candle],
    times: Sequence[datetime],
    entry_at: datetime,
    due_at: datetime,
    step: timedelta,
) -> list[Candle] | None:
    """`path_window` for candles sorted by distinct `open_time` (`times` = their open times).

    Two binary searches instead of a scan of every candle: the same result on sorted input.
    """
    lo = bisect_left(times, entry_at)
    hi = bisect_right(times, due_at - step, lo)
    expected = expected_count(entry_at, due_at, step)
    if expected < 1 or hi - lo != expected:
        return None
    return list(candles[lo:hi])


def expected_count(entry_at: datetime, due_at: datetime, step: timedelta) -> int:
    """Return how many aligned candles of `step` fit fully inside [entry_at, due_at]."""
    epoch = datetime(1970, 1, 1, tzinfo=entry_at.tzinfo)
    first = -((epoch - entry_at) // step)  # ceil((entry_at - epoch) / step)
    last = (due_at - epoch) // step  # floor
    return max(0, int(last - first))
