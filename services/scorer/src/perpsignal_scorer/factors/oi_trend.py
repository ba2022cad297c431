"""Open-interest trend: OI change read against price change over `oi_window_s`.

strength = pull(price change, oi_price_full_change) x (0.5 + 0.5 pull(OI change,
oi_full_change)). Rising OI with rising price is new longs (bullish, full strength);
rising OI with falling price is new shorts (bearish); falling OI (positions closing)
removes up to all of the conviction of the price move.
"""

from __future__ import annotations

from perpsignal_scorer.config import EngineConfig
from perpsignal_scorer.factors.base import EvalContext, FactorResult, missing, pull, stale, to_score
from perpsignal_scorer.state import SymbolState, value_at_or_before


def oi_trend_strength(oi_change: float, price_change: float, cfg: EngineConfig) -> float:
    """Return the strength of a price move weighted by what open interest did."""
    conviction = 0.5 + 0.5 * pull(oi_change, cfg.oi_full_change)
    return pull(price_change, cfg.oi_price_full_change) * conviction


def score_oi_trend(state: SymbolState, ctx: EvalContext, cfg: EngineConfig) -> FactorResult:
    """Score OI change against price change over the same window."""
    latest = value_at_or_before(state.open_interest, ctx.now)
    if latest is None:
        return missing("no open interest received")
    age = ctx.now - latest.t
    limit = cfg.limits["oi_trend"]
    if age > limit:
        return stale(age, limit, {"open_interest": latest.value})
    start = ctx.now - cfg.oi_window_s
    base = value_at_or_before(state.open_interest, start)
    if base is None or base.value <= 0:
        return missing(f"open interest history shorter than {cfg.oi_window_s:.0f}s")
    bars = state.bars(cfg.primary_timeframe)
    if not bars:
        return missing("no candles for the price change")
    p_now = p_then = None
    for b in reversed(bars):
        if p_now is None and b.close_s <= ctx.now:
            p_now = b.close
        if b.close_s <= start:
            p_then = b.close
            break
    if p_now is None or p_then is None:
        return missing(f"candle history shorter than {cfg.oi_window_s:.0f}s")
    oi_change = latest.value / base.value - 1.0
    price_change = p_now / p_then - 1.0
    return FactorResult(
        to_score(oi_trend_strength(oi_change, price_change, cfg)),
        "ok",
        round(age, 3),
        {
            "open_interest": latest.value,
            "oi_change": round(oi_change, 6),
            "price_change": round(price_change, 6),
            "window_s": cfg.oi_window_s,
        },
    )
