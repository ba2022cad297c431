"""Open-interest trend: OI change read against price change over `oi_window_s`.

strength = pull(price change, oi_price_full_change) x (0.5 + 0.5 pull(OI change,
oi_full_change)). Rising OI with rising price is new longs (bullish, full strength);
rising OI with falling price is new shorts (bearish); falling OI (positions closing)
removes up to all of the conviction of the price move. Neutral: no price move (a change has
a universal zero; the OI level itself is never scored). Stale after
`stale_cadence_multiple` x the series' own cadence (at least its `stale_s` entry).
"""

from __future__ import annotations

import math

from perpsignal_common.events.factors import oi_trend_inputs
from perpsignal_domain.scoring.config import EngineConfig
from perpsignal_domain.scoring.factors.base import (
    EvalContext,
    FactorResult,
    missing,
    pull,
    round3,
    stale,
    to_score,
)
from perpsignal_domain.scoring.history import input_limit
from perpsignal_domain.scoring.state import SymbolState, bar_at_or_before, value_at_or_before


def oi_trend_strength(oi_change: float, price_change: float, cfg: EngineConfig) -> float:
    """Return the strength of a price move weighted by what open interest did."""
    conviction = 0.5 + 0.5 * pull(oi_change, cfg.oi_full_change)
    return pull(price_change, cfg.oi_price_full_change) * conviction


_NO_OI = missing("no open interest received")
_NO_CHANGE = missing("open interest change overflows: the earlier reading is too small")


def score_oi_trend(state: SymbolState, ctx: EvalContext, cfg: EngineConfig) -> FactorResult:
    """Score OI change against price change over the same window."""
    latest = value_at_or_before(state.open_interest, ctx.now)
    if latest is None:
        return _NO_OI
    age = ctx.now - latest.t
    cad = state.memo.get("oi:limit")
    if cad is None or cad[0] is not latest or cad[1] is not cfg:
        limit = input_limit(
            state.open_interest, latest, cfg.limits["oi_trend"], cfg.stale_cadence_multiple
        )
        cad = state.memo["oi:limit"] = (latest, cfg, limit)
    limit = cad[2]
    if age > limit:
        return stale(age, limit, oi_trend_inputs(open_interest=latest.value))
    start = ctx.now - cfg.oi_window_s
    base = value_at_or_before(state.open_interest, start)
    if base is None or base.value <= 0:
        return missing(f"open interest history shorter than {cfg.oi_window_s:.0f}s")
    if latest.value / base.value == math.inf:  # a base of 5e-324 (valid): no change read
        return _NO_CHANGE
    bars = state.candles.get(cfg.primary_timeframe)
    if not bars:
        return missing("no candles for the price change")
    # the newest candle closed by now and the newest closed by the window start (bars are
    # time-ordered: binary search, not a walk back over the window)
    b_now = bar_at_or_before(bars, ctx.now)
    b_then = bar_at_or_before(bars, start)
    if b_now is None or b_then is None:
        return missing(f"candle history shorter than {cfg.oi_window_s:.0f}s")
    memo = state.memo.get("oi_trend")
    if (
        memo is None
        or memo[0] is not latest
        or memo[1] is not base
        or memo[2] is not b_now
        or memo[3] is not b_then
        or memo[4] is not cfg
    ):
        oi_change = latest.value / base.value - 1.0
        price_change = b_now.close / b_then.close - 1.0
        inputs = oi_trend_inputs(
            open_interest=latest.value,
            oi_change=round(oi_change, 6),
            price_change=round(price_change, 6),
            window_s=cfg.oi_window_s,
        )
        score = to_score(oi_trend_strength(oi_change, price_change, cfg))
        memo = state.memo["oi_trend"] = (latest, base, b_now, b_then, cfg, score, inputs)
    return FactorResult(memo[5], "ok", round3(age), memo[6], None, limit)
