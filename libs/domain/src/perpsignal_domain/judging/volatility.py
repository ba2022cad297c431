"""ATR(14, Wilder) volatility metrics and the trade plan: stop, target and size (pure).

Why these choices (documented in services/judge/README.md):
* ATR comes from TA-Lib (the reference C implementation of Wilder's ATR: seed = mean of
  the first `period` true ranges, then `ATR = (ATR_prev * (n-1) + TR) / n`). The true
  ranges are also computed here as TA-Lib computes them, so that a sliding window's are
  reused (`JudgeCodec`); TA-Lib smooths those, bit for bit its ATR of the candles.
* Volatility classes use ATR as a percentage of price with thresholds defined for 1h
  candles and scaled by sqrt(timeframe / 1h), because price ranges grow with the square
  root of time; one table then serves 5m and 4h signals alike.
* The volatility size is inverse-volatility (risk parity): `reference ATR% / ATR%`,
  clamped to 0.25-2.0, independent of the verdict's risk multiplier.
* The stop widens with the class (1.5 ATR when calm, 3.0 ATR when wild) so noise does not
  stop a trade out; the reward:risk grows with the scorer's confidence (1.5 at 50, 3.0 at 90).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import talib

from perpsignal_common.events.signals import Direction, Ohlc, VolatilityClass, VolatilityMetrics
from perpsignal_domain.trusted import trusted

CLASSES: tuple[VolatilityClass, ...] = ("VERY_LOW", "LOW", "NORMAL", "HIGH", "VERY_HIGH")
# Upper ATR% bounds of VERY_LOW, LOW, NORMAL, HIGH for 1h candles; above the last = VERY_HIGH
THRESHOLDS_1H_PCT: tuple[float, float, float, float] = (0.35, 0.7, 1.5, 3.0)
# Where in [stop_atr_min, stop_atr_max] each class puts the stop (0 = min, 1 = max)
STOP_POSITION: dict[VolatilityClass, float] = {
    "VERY_LOW": 0.0,
    "LOW": 0.0,
    "NORMAL": 1 / 3,
    "HIGH": 2 / 3,
    "VERY_HIGH": 1.0,
}
SIZE_MIN, SIZE_MAX = 0.25, 2.0

_UNITS = {"m": 1, "h": 60, "d": 1440, "w": 10080}


@dataclass(frozen=True)
class PlanParams:
    """Trade-plan knobs (JUDGE_* settings)."""

    atr_period: int = 14
    stop_atr_min: float = 1.5
    stop_atr_max: float = 3.0
    rr_min: float = 1.5
    rr_max: float = 3.0
    reference_atr_pct_1h: float = 1.0


def timeframe_minutes(timeframe: str) -> int:
    """Return the minutes of `5m`, `1h`, `4h`, `1d`, `1w`; raise ValueError otherwise."""
    minutes = _MINUTES.get(timeframe)
    if minutes is None:
        minutes = _timeframe_minutes(timeframe)
        if len(_MINUTES) < 256:
            _MINUTES[timeframe] = minutes
    return minutes


_MINUTES: dict[str, int] = {}  # valid timeframes seen (a per-signal parse otherwise)


def _timeframe_minutes(timeframe: str) -> int:
    tf = timeframe.strip().lower()
    if len(tf) < 2 or tf[-1] not in _UNITS or not tf[:-1].isdigit() or int(tf[:-1]) <= 0:
        raise ValueError(f"unknown timeframe {timeframe!r}")
    return int(tf[:-1]) * _UNITS[tf[-1]]


def time_scale(timeframe: str) -> float:
    """Return sqrt(timeframe / 1h): how ATR% of this timeframe compares with 1h."""
    scale = _SCALES.get(timeframe)
    if scale is None:
        scale = math.sqrt(timeframe_minutes(timeframe) / 60)
        if len(_SCALES) < 256:
            _SCALES[timeframe] = scale
    return scale


_SCALES: dict[str, float] = {}


def aggregate(candles: Sequence[Ohlc], source_tf: str, target_tf: str) -> list[Ohlc]:
    """Merge candles into `target_tf` buckets aligned to the epoch; keep complete ones only.

    Raises ValueError when `target_tf` is not a whole multiple of `source_tf`.
    """
    src, dst = timeframe_minutes(source_tf), timeframe_minutes(target_tf)
    if dst == src:
        return list(candles)
    if dst < src or dst % src:
        raise ValueError(f"cannot build {target_tf} candles from {source_tf}")
    per_bucket = dst // src
    buckets: dict[int, list[Ohlc]] = {}
    for c in candles:
        buckets.setdefault(int(c.open_time.timestamp()) // (dst * 60), []).append(c)
    out = []
    for key in sorted(buckets):
        group = sorted(buckets[key], key=lambda c: c.open_time)
        if len(group) != per_bucket:
            continue
        out.append(
            Ohlc(
                open_time=datetime.fromtimestamp(key * dst * 60, tz=group[0].open_time.tzinfo),
                open=group[0].open,
                high=max(c.high for c in group),
                low=min(c.low for c in group),
                close=group[-1].close,
                volume=sum(c.volume for c in group),
            )
        )
    return out


def true_range(prev_close: float, candle: Ohlc) -> float:
    """Return TA-Lib's true range of `candle` after `prev_close` (its comparisons, its order)."""
    high, low = candle.high, candle.low
    return max(high - low, abs(prev_close - high), abs(prev_close - low))


def true_ranges(candles: Sequence[Ohlc]) -> list[float]:
    """Return the true range of each candle after the first."""
    out = []
    prev_close = candles[0].close if candles else 0.0
    for c in candles[1:]:
        out.append(true_range(prev_close, c))
        prev_close = c.close
    return out


def atr(
    candles: Sequence[Ohlc], period: int = 14, ranges: Sequence[float] | None = None
) -> float | None:
    """Return the latest Wilder ATR, or None with fewer than `period + 1` candles.

    `ranges`: the candles' true ranges when already known (`JudgeCodec` keeps them with each
    window, which slides by one bar). TA-Lib smooths them: given them as highs and zeros as
    lows and closes, it finds each true range again exactly (r - 0, |0 - r| and |0 - 0| round
    nothing), so the result is its ATR of the candles bit for bit. Only a NaN price in the
    first candle changes that (TA-Lib then starts at the first candle without one), so such
    candles go to TA-Lib as they are. Tests hold both ways to `talib.ATR`.
    """
    n = len(candles)
    if n < period + 1:
        return None
    first = candles[0]
    if ranges is None or math.isnan(first.high) or math.isnan(first.low) or math.isnan(first.close):
        high = np.fromiter([c.high for c in candles], np.float64, n)
        low = np.fromiter([c.low for c in candles], np.float64, n)
        close = np.fromiter([c.close for c in candles], np.float64, n)
    else:
        low = close = _zeros(n)
        high = np.concatenate((low[:1], np.fromiter(ranges, np.float64, n - 1)))
    value = float(talib.ATR(high, low, close, timeperiod=period)[-1])
    return None if math.isnan(value) else value


_ZEROS: dict[int, np.ndarray[Any, np.dtype[np.float64]]] = {}


def _zeros(n: int) -> np.ndarray[Any, np.dtype[np.float64]]:
    zeros = _ZEROS.get(n)
    if zeros is None:
        zeros = np.zeros(n)
        if len(_ZEROS) < 64:
            _ZEROS[n] = zeros
    return zeros


def classify(atr_pct: float, timeframe: str) -> VolatilityClass:
    """Return the volatility class of `atr_pct` (percent) on `timeframe`."""
    bounds = _BOUNDS.get(timeframe)
    if bounds is None:  # each class's upper bound on this timeframe, computed once
        scale = time_scale(timeframe)
        bounds = tuple(
            [(cls, bound * scale) for cls, bound in zip(CLASSES, THRESHOLDS_1H_PCT, strict=False)]
        )
        if len(_BOUNDS) < 256:
            _BOUNDS[timeframe] = bounds
    for cls, bound in bounds:
        if atr_pct < bound:
            return cls
    return "VERY_HIGH"


_BOUNDS: dict[str, tuple[tuple[VolatilityClass, float], ...]] = {}


def volatility_size(atr_pct: float, timeframe: str, reference_pct_1h: float = 1.0) -> float:
    """Return the inverse-volatility position multiplier, 0.25-2.0."""
    if atr_pct <= 0:
        return SIZE_MAX
    raw = reference_pct_1h * time_scale(timeframe) / atr_pct
    return round(min(SIZE_MAX, max(SIZE_MIN, raw)), 2)


def stop_multiple(cls: VolatilityClass, params: PlanParams) -> float:
    """Return the stop distance in ATRs for a volatility class."""
    span = params.stop_atr_max - params.stop_atr_min
    return round(params.stop_atr_min + span * STOP_POSITION[cls], 2)


def reward_risk(confidence: float, params: PlanParams) -> float:
    """Return the reward:risk target: rr_min at confidence <= 50, rr_max at >= 90."""
    t = min(1.0, max(0.0, (confidence - 50.0) / 40.0))
    return round(params.rr_min + (params.rr_max - params.rr_min) * t, 1)


def _num(x: float) -> float:
    """Round to 8 significant digits: exact enough for any tick size, free of float noise."""
    return float(f"{x:.8g}")


def fmt_price(x: float) -> str:
    """Six significant digits in plain decimals: `:g` wrote a 3e-9 coin's entry as
    "3e-09" and a price of 1,234,567 as "1.23457e+06" in the plan a trader reads."""
    if x == 0 or not math.isfinite(x):
        return f"{x:g}"
    exponent = math.floor(math.log10(abs(x)))
    text = f"{x:.{max(0, 5 - exponent)}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def build_metrics(
    *,
    symbol: str,
    direction: Direction,
    entry: float,
    confidence: float,
    candles: Sequence[Ohlc],
    timeframe: str,
    params: PlanParams,
    ranges: Sequence[float] | None = None,
) -> VolatilityMetrics:
    """Return ATR, class, volatility size and (for LONG/SHORT) the stop/target plan.

    `ranges`: the candles' true ranges when known (see `atr`). Too few candles or a
    non-positive price yields empty metrics (the rules then report "volatility unknown");
    NEUTRAL signals carry volatility but no plan; nor does a stop or target that would
    sit on entry (or across it) once rounded.
    """
    value = atr(candles, params.atr_period, ranges)
    if value is None or entry <= 0:
        return VolatilityMetrics()
    atr_pct = value / entry * 100
    cls = classify(atr_pct, timeframe)
    size = volatility_size(atr_pct, timeframe, params.reference_atr_pct_1h)
    fields: dict[str, Any] = {
        "atr": _num(value),
        "atr_pct": round(atr_pct, 4),
        "volatility_class": cls,
    }
    if value > 0:
        # no size without a measured risk: flat candles (a halted or untraded contract) were
        # recommended the top size, 2x ("volatility x2.00" beside "No plan")
        fields["recommended_position_multiplier"] = size
    if direction == "NEUTRAL":
        return _metrics(fields)
    k = stop_multiple(cls, params)
    rr = reward_risk(confidence, params)
    risk = k * value
    sign = 1.0 if direction == "LONG" else -1.0
    stop = entry - sign * risk
    target = entry + sign * rr * risk
    if stop <= 0 or target <= 0:
        fields["trade_plan_summary"] = "No plan: the ATR stop would fall below zero"
        return _metrics(fields)
    stop_price, target_price = _num(stop), _num(target)
    # flat candles (ATR 0: a halted or untraded contract) or a range below the 8 digits a
    # price keeps put the stop on entry: a plan the first tick stops out
    if (entry - stop_price) * sign <= 0 or (target_price - entry) * sign <= 0:
        fields["trade_plan_summary"] = (
            f"No plan: the candles' range (ATR {fmt_price(value)}) is too small for a stop "
            "away from entry"
        )
        return _metrics(fields)
    summary = (
        f"{direction} {symbol} @ {fmt_price(entry)} | stop {fmt_price(stop)} "
        f"({-sign * risk / entry * 100:+.2f}%, {k:g} ATR) | target {fmt_price(target)} "
        f"({sign * rr * risk / entry * 100:+.2f}%, R:R {rr:g}) | ATR {fmt_price(value)} "
        f"({atr_pct:.2f}%, {cls}) | vol size {size:g}x"
    )
    fields["stop_loss_price"] = stop_price
    fields["take_profit_price"] = target_price
    fields["risk_reward"] = rr
    fields["trade_plan_summary"] = summary
    return _metrics(fields)


_METRIC_FIELDS = tuple(VolatilityMetrics.model_fields)
_isfinite = math.isfinite


def _metrics(given: dict[str, Any]) -> VolatilityMetrics:
    """Return the metrics of `given` (a validated constructor's keyword arguments).

    Built without re-validation (one per signal): the class is a Literal of `classify`, the
    size is clamped to its bounds by `volatility_size`; a value that is not a finite float
    (only absurd prices give one) goes through the validated constructor instead.
    """
    for v in given.values():
        if type(v) is float:
            if not _isfinite(v):
                return VolatilityMetrics(**given)
        elif type(v) is not str:  # e.g. an int a float field would convert
            return VolatilityMetrics(**given)
    values = dict.fromkeys(_METRIC_FIELDS)  # every default is None
    values.update(given)
    return trusted(VolatilityMetrics, values, given)
