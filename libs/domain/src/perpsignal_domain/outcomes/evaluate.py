"""Outcome arithmetic: pure functions over an entry, a direction and a candle path.

Rules (also in the README):
* P&L % is sign-correct: LONG `(exit - entry) / entry * 100`, SHORT `(entry - exit) / entry * 100`.
* Result: WIN when P&L > band, LOSS when P&L < -band, else NEUTRAL (band default 0.1 %).
* Max favourable / adverse excursion are magnitudes in % of entry (both >= 0), from the highs and
  lows of every candle in the path, not only the end price.
* First hit: the first candle whose range touches the stop or the target. When one candle touches
  both, we cannot know the order inside it and assume the worst case: the stop was hit first.
* Costs (`Costs`, per venue): net P&L % = gross - trading costs - funding paid. Trading costs
  are (taker fee + slippage) bp on the entry notional and on the exit notional, in % of the
  entry: `(fee + slip) / 100 * (1 + exit / entry)`. Funding: the sum of the rates settled
  while the position was open (entry < funding time <= exit), on the entry notional; a LONG
  pays a positive rate, a SHORT receives it. WIN/LOSS stay classified on the gross move (the
  signal's call); the net figure is what a taker would have kept.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Literal

Result = Literal["WIN", "LOSS", "NEUTRAL"]
FirstHit = Literal["stop", "target", "none"]

DEFAULT_NEUTRAL_BAND_PCT = 0.1

# The evaluation horizons every signal is tracked over (service settings and backtest share them).
HORIZON_SECONDS: dict[str, int] = {"1h": 3600, "4h": 14_400, "24h": 86_400}


@dataclass(frozen=True, slots=True)
class Candle:
    """One OHLC candle of the path (open_time is the candle start, UTC)."""

    open_time: datetime
    open: float
    high: float
    low: float
    close: float


@dataclass(frozen=True, slots=True)
class Costs:
    """One venue's round-trip costs in basis points of notional, per side.

    Defaults: Binance USD-M's base-tier taker fee (0.05 %) and 2 bp of slippage for a market
    order on a liquid perpetual; a venue or account with other terms sets its own.
    """

    taker_fee_bp: float = 5.0
    slippage_bp: float = 2.0
    funding: bool = True  # accrue the settled funding rates given to the evaluator

    def trading_pct(self, entry: float, exit_price: float) -> float:
        """Return the fees and slippage of entering and leaving, in % of entry notional."""
        return (self.taker_fee_bp + self.slippage_bp) / 100.0 * (1.0 + exit_price / entry)


NO_COSTS = Costs(taker_fee_bp=0.0, slippage_bp=0.0, funding=False)  # gross: net == gross

MAX_COST_BP = 10_000.0  # 100 % of notional per side: any cost above it is a typo, not a venue


def valid_cost_bp(bp: float) -> bool:
    """Return True for a per-side cost a run can use: finite, 0 to MAX_COST_BP (not NaN)."""
    return 0.0 <= bp <= MAX_COST_BP


# base-tier taker fees of USD-margined perpetuals (bp), as the venues publish them
VENUE_COSTS: dict[str, Costs] = {
    "binance": Costs(taker_fee_bp=5.0),
    "okx": Costs(taker_fee_bp=5.0),
    "bybit": Costs(taker_fee_bp=5.5),
}


def venue_costs(venue: str) -> Costs:
    """Return the default costs of `venue` (case-insensitive; Binance's for an unknown one)."""
    return VENUE_COSTS.get(venue.lower(), Costs())


def settlement_time(at: float) -> float:
    """Return a funding settlement's time (epoch s) as the window rules read it.

    Its whole second: Binance settles on the hour but stamps the record a few ms later
    (00:00:00.012), which would move a settlement out of the window ending on its hour
    (entry < settlement <= due) into the one starting on it. The outcomes service and the
    backtest both read settlements through here, so they charge the same windows.
    """
    return float(round(at))


def settled_between(
    times: Sequence[float], rates: Sequence[float], start: float, end: float
) -> Sequence[float]:
    """Return the rates of sorted funding `times` with start < time <= end (a held position's)."""
    return rates[bisect_right(times, start) : bisect_right(times, end)]


def funding_paid_pct(direction: str, rates: Sequence[float]) -> float:
    """Return the funding a position paid (negative: received), in % of entry notional."""
    total = math.fsum(rates) * 100.0
    return total if direction == "LONG" else -total


@dataclass(frozen=True, slots=True)
class Evaluation:
    """The measured outcome of one signal at one horizon (gross, plus its costs)."""

    exit_price: float
    pnl_pct: float
    result: Result
    max_favorable_pct: float
    max_adverse_pct: float
    first_hit: FirstHit
    candles_used: int
    cost_pct: float = 0.0
    funding_pct: float = 0.0

    @property
    def net_pnl_pct(self) -> float:
        """P&L % after fees, slippage and funding."""
        return self.pnl_pct - self.cost_pct - self.funding_pct


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


def evaluate(
    direction: str,
    entry: float,
    candles: Sequence[Candle],
    *,
    stop: float | None = None,
    target: float | None = None,
    band_pct: float = DEFAULT_NEUTRAL_BAND_PCT,
    costs: Costs = NO_COSTS,
    funding_rates: Sequence[float] = (),
) -> Evaluation:
    """Evaluate a LONG/SHORT entry over `candles` (oldest first; the last close is the exit).

    `funding_rates`: the rates settled while the position was open (see the module doc).
    """
    _check(direction, entry, len(candles))
    highs = [c.high for c in candles]
    lows = [c.low for c in candles]
    ev = _measure(
        direction, entry, highs, lows, 0, len(candles), candles[-1].close, stop, target, band_pct
    )
    return _with_costs(ev, direction, entry, costs, funding_rates)


def _with_costs(
    ev: Evaluation, direction: str, entry: float, costs: Costs, rates: Sequence[float]
) -> Evaluation:
    if costs == NO_COSTS:
        return ev
    return replace(
        ev,
        cost_pct=costs.trading_pct(entry, ev.exit_price),
        funding_pct=funding_paid_pct(direction, rates) if costs.funding else 0.0,
    )


@dataclass(frozen=True, slots=True)
class Series:
    """Candles of one symbol and timeframe as parallel columns, sorted by distinct open time.

    The evaluator measures many paths over one series (every due row of a batch), each a
    window `[lo, hi)` of it: no per-row copy of candles, and the extremes are C-level `max`/`min`
    over list slices.
    """

    times: list[datetime]
    highs: list[float]
    lows: list[float]
    closes: list[float]

    @classmethod
    def of(cls, candles: Sequence[Candle]) -> Series:
        """Columns of `candles` (kept in the given order)."""
        return cls(
            [c.open_time for c in candles],
            [c.high for c in candles],
            [c.low for c in candles],
            [c.close for c in candles],
        )

    def __len__(self) -> int:
        return len(self.times)

    def window(
        self, entry_at: datetime, due_at: datetime, step: timedelta
    ) -> tuple[int, int] | None:
        """Return `[lo, hi)` of the path of (entry_at, due_at), or None when a candle is missing.

        The same window as `path_window` (sorted input: two binary searches).
        """
        return window_sorted(self.times, entry_at, due_at, step)


def evaluate_window(
    direction: str,
    entry: float,
    series: Series,
    lo: int,
    hi: int,
    *,
    stop: float | None = None,
    target: float | None = None,
    band_pct: float = DEFAULT_NEUTRAL_BAND_PCT,
    costs: Costs = NO_COSTS,
    funding_rates: Sequence[float] = (),
) -> Evaluation:
    """`evaluate` over the candles `lo .. hi - 1` of `series` (no copy of the path)."""
    _check(direction, entry, hi - lo)
    ev = _measure(
        direction,
        entry,
        series.highs,
        series.lows,
        lo,
        hi,
        series.closes[hi - 1],
        stop,
        target,
        band_pct,
    )
    return _with_costs(ev, direction, entry, costs, funding_rates)


def _check(direction: str, entry: float, candles: int) -> None:
    if direction not in ("LONG", "SHORT"):
        raise ValueError(f"cannot evaluate direction {direction!r}")
    if candles < 1:
        raise ValueError("an evaluation needs at least one candle")
    if entry <= 0:
        raise ValueError("entry price must be positive")


def _measure(
    direction: str,
    entry: float,
    highs: list[float],
    lows: list[float],
    lo: int,
    hi: int,
    exit_price: float,
    stop: float | None,
    target: float | None,
    band_pct: float,
) -> Evaluation:
    """The rules of the module doc over the path `highs/lows[lo:hi]` ending at `exit_price`."""
    pnl = pnl_pct(direction, entry, exit_price)
    up = (max(highs[lo:hi]) - entry) / entry * 100.0
    down = (entry - min(lows[lo:hi])) / entry * 100.0
    long = direction == "LONG"
    favorable, adverse = (up, down) if long else (down, up)
    # the first candle touching each level (hi: never); a target touched in the candle that
    # touches the stop does not count (stop first), so the target is searched before it only
    if long:
        stop_at = hi if stop is None else _first_at_or_below(lows, lo, hi, stop)
        target_at = stop_at if target is None else _first_at_or_above(highs, lo, stop_at, target)
    else:
        stop_at = hi if stop is None else _first_at_or_above(highs, lo, hi, stop)
        target_at = stop_at if target is None else _first_at_or_below(lows, lo, stop_at, target)
    hit: FirstHit = "target" if target_at < stop_at else "stop" if stop_at < hi else "none"
    return Evaluation(
        exit_price=exit_price,
        pnl_pct=pnl,
        result=classify(pnl, band_pct),
        max_favorable_pct=max(0.0, favorable),
        max_adverse_pct=max(0.0, adverse),
        first_hit=hit,
        candles_used=hi - lo,
    )


def _first_at_or_below(values: list[float], lo: int, hi: int, level: float) -> int:
    """Return the first index in [lo, hi) whose value is <= level, else hi."""
    for i in range(lo, hi):
        if values[i] <= level:
            return i
    return hi


def _first_at_or_above(values: list[float], lo: int, hi: int, level: float) -> int:
    """Return the first index in [lo, hi) whose value is >= level, else hi."""
    for i in range(lo, hi):
        if values[i] >= level:
            return i
    return hi


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


def window_sorted(
    times: Sequence[datetime], entry_at: datetime, due_at: datetime, step: timedelta
) -> tuple[int, int] | None:
    """Return the index range `[lo, hi)` of the path in sorted distinct `times`, or None."""
    lo = bisect_left(times, entry_at)
    hi = bisect_right(times, due_at - step, lo)
    expected = expected_count(entry_at, due_at, step)
    if expected < 1 or hi - lo != expected:
        return None
    return lo, hi


def expected_count(entry_at: datetime, due_at: datetime, step: timedelta) -> int:
    """Return how many aligned candles of `step` fit fully inside [entry_at, due_at]."""
    epoch = datetime(1970, 1, 1, tzinfo=entry_at.tzinfo)
    first = -((epoch - entry_at) // step)  # ceil((entry_at - epoch) / step)
    last = (due_at - epoch) // step  # floor
    return max(0, int(last - first))


MIN_FUNDING_INTERVAL_S = 60.0  # closer settlements are one settlement seen twice


def settled_if_complete(
    times: Sequence[float],
    rates: Sequence[float],
    start: float,
    end: float,
    *,
    slack: float = 0.25,
) -> Sequence[float] | None:
    """Return the rates settled in (start, end], or None when the record cannot prove them all.

    Live funding arrives as events, and one can be missed (an outage, a late start). The
    window counts as complete only when the sorted settlement `times` bracket it (one at or
    before `start`, one at or after `end`) and no two consecutive settlements from the
    bracket's first to its last lie further apart than the symbol's interval (the smallest
    spacing seen in `times`, plus `slack`): otherwise a settlement may be missing and the
    funding paid is unknown, never 0.
    """
    i_prev = bisect_right(times, start) - 1
    i_next = bisect_left(times, end)
    if i_prev < 0 or i_next >= len(times):
        return None
    gaps = [b - a for a, b in pairwise(times) if b - a >= MIN_FUNDING_INTERVAL_S]
    if not gaps:
        return None
    limit = min(gaps) * (1.0 + slack)
    if any(times[k + 1] - times[k] > limit for k in range(i_prev, i_next)):
        return None
    return rates[i_prev + 1 : bisect_right(times, end)]
