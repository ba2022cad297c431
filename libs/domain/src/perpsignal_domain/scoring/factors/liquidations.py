"""Liquidations: which side is being forced out over the window.

strength = imbalance x significance, with imbalance = (short_usd - long_usd) / total and
significance = min(1, total / liquidation_full_usd). Shorts being liquidated means price is
squeezing up (bullish); longs being liquidated means forced selling (bearish). A quiet
window with a live feed is neutral, not missing.
"""

from __future__ import annotations

from perpsignal_common.events.factors import liquidations_inputs
from perpsignal_domain.scoring.config import EngineConfig
from perpsignal_domain.scoring.factors.base import (
    EvalContext,
    FactorResult,
    clamp,
    missing,
    stale,
    to_score,
)
from perpsignal_domain.scoring.state import SymbolState


def liquidation_strength(long_usd: float, short_usd: float, full_usd: float) -> float:
    """Return the signed strength of a liquidation imbalance."""
    total = long_usd + short_usd
    if total <= 0:
        return 0.0
    return (short_usd - long_usd) / total * clamp(total / full_usd, 0.0, 1.0)


_NO_DATA = missing("no liquidation data received")


def score_liquidations(state: SymbolState, ctx: EvalContext, cfg: EngineConfig) -> FactorResult:
    """Score the liquidation imbalance of the last `liquidation_window_s`."""
    seen = state.liquidations_seen_at
    if seen is None:
        return _NO_DATA
    age = ctx.now - seen
    limit = cfg.limits["liquidations"]
    if age > limit:
        return stale(age, limit)
    # each liquidation once, whichever sources reported it (see LiquidationLedger)
    long_usd, short_usd = state.liquidations.totals(ctx.now - cfg.liquidation_window_s, ctx.now)
    s = liquidation_strength(long_usd, short_usd, cfg.liquidation_full_usd)
    return FactorResult(
        to_score(s),
        "ok",
        round(max(age, 0.0), 3),
        liquidations_inputs(
            long_liquidations_usd=round(long_usd, 2),
            short_liquidations_usd=round(short_usd, 2),
            window_s=cfg.liquidation_window_s,
        ),
    )
