"""Smart money: SMC structure bias across timeframes plus top-trader position share.

smc = combined structure bias in [-1, 1] (mean of the per-timeframe trend, +1 after a
bullish BOS/CHoCH, -1 after a bearish one, weighted 1, 2, 3... from the lowest timeframe up);
top = pull(top_position_long_share - 0.5, top_position_full) (followed, not faded: these are
the largest accounts). strength = 0.7 smc + 0.3 top over the parts available.
"""

from __future__ import annotations

from perpsignal_common.events.factors import smart_money_inputs
from perpsignal_domain.scoring.config import EngineConfig
from perpsignal_domain.scoring.factors.base import (
    EvalContext,
    FactorResult,
    blend,
    missing,
    pull,
    round3,
    stale,
    to_score,
)
from perpsignal_domain.scoring.state import SymbolState, value_at_or_before

_KEYS: dict[str, str] = {}


def smart_money_strength(
    smc_bias: float | None, top_position_share: float | None, cfg: EngineConfig
) -> float:
    """Return the strength of structure bias and top-trader positioning."""
    parts = []
    if smc_bias is not None:
        parts.append((0.7, smc_bias))
    if top_position_share is not None:
        parts.append((0.3, pull(top_position_share - 0.5, cfg.top_position_full)))
    return blend(parts)


_NOTHING = missing("no SMC structure yet and no top-trader position ratio")


def score_smart_money(state: SymbolState, ctx: EvalContext, cfg: EngineConfig) -> FactorResult:
    """Score SMC structure (fresh candles) and top-trader positions (fresh ratios)."""
    bars = state.candles.get(cfg.primary_timeframe)
    if bars is None:
        bars = state.bars(cfg.primary_timeframe)
    now, limits = ctx.now, cfg.limits
    tops = state.long_short.get("top_position")
    top = value_at_or_before(tops, now) if tops else None
    # the youngest input's age (None: no input), as min() over the inputs present
    age = None
    smc = None
    if ctx.smc_bias is not None and bars:
        age = now - bars[-1].close_s
        if age <= limits["smart_money"]:
            smc = ctx.smc_bias
    top_share = None
    if top is not None:
        age_top = now - top.t
        if age is None or age_top < age:
            age = age_top
        if age_top <= limits["long_short"]:
            top_share = top.value
    if age is None:
        return _NOTHING
    age = age if age > 0.0 else 0.0  # max(0.0, age)
    if smc is None and top_share is None:
        return stale(age, limits["smart_money"])
    memo = state.memo.get("smart_money")
    if (
        memo is None
        or memo[0] != smc
        or memo[1] != top_share
        or memo[2] is not ctx.smc_by_tf
        or memo[3] is not cfg
    ):
        by_tf: dict[str, int] = {}
        for tf, v in ctx.smc_by_tf.items():
            key = _KEYS.get(tf)
            if key is None:
                key = _KEYS[tf] = f"smc_{tf}"
            by_tf[key] = v
        inputs = smart_money_inputs(
            smc_bias=None if smc is None else round(smc, 4),
            top_position_long_share=top_share,
            **by_tf,  # dynamic keys (see the model)
        )
        result = FactorResult(
            to_score(smart_money_strength(smc, top_share, cfg)), "ok", round3(age), inputs
        )
        state.memo["smart_money"] = (smc, top_share, ctx.smc_by_tf, cfg, result)
        return result
    cached: FactorResult = memo[4]
    age = round3(age)
    if cached.age_s == age:
        return cached  # same inputs, same age: the same (never mutated) result
    return FactorResult(cached.score, "ok", age, cached.inputs)
