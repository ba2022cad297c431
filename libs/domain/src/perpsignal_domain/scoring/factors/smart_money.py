"""Smart money: SMC structure bias across timeframes plus top-trader position share.

smc = combined structure bias in [-1, 1]: the weighted mean (1, 2, 3... from the lowest
timeframe up) of each timeframe's trend (+1 after a bullish BOS/CHoCH, -1 after a bearish
one) x 0.5 ** (age of that break / (smc_half_life_bars x the timeframe)): a break is news
that ages, so a trend held for days fades toward neutral instead of pulling fully forever;
top = rank of top_position_long_share within the symbol's last `neutral_window` top-position
shares (history.rank_strength; 0 at their median: top traders' positions lean one way for
weeks), followed, not faded: these are the largest accounts. strength = 0.7 smc + 0.3 top
over the parts available (top from `neutral_min_history` observations on).
"""

from __future__ import annotations

from perpsignal_common.events.factors import smart_money_inputs
from perpsignal_domain.scoring.config import EngineConfig
from perpsignal_domain.scoring.factors.base import (
    EvalContext,
    FactorResult,
    blend,
    missing,
    round3,
    stale,
    to_score,
)
from perpsignal_domain.scoring.factors.long_short import fresh_point
from perpsignal_domain.scoring.state import SymbolState

_KEYS: dict[str, str] = {}


def smart_money_strength(smc_bias: float | None, top_position_rank: float | None) -> float:
    """Return the strength of structure bias and top-trader positioning (its rank in the
    symbol's own history, from `rank_strength`)."""
    parts = []
    if smc_bias is not None:
        parts.append((0.7, smc_bias))
    if top_position_rank is not None:
        parts.append((0.3, top_position_rank))
    return blend(parts)


_NOTHING = missing("no SMC structure yet and no top-trader position ratio")


def score_smart_money(state: SymbolState, ctx: EvalContext, cfg: EngineConfig) -> FactorResult:
    """Score SMC structure (fresh candles) and top-trader positions (fresh ratios)."""
    bars = state.candles.get(cfg.primary_timeframe)
    if bars is None:
        bars = state.bars(cfg.primary_timeframe)
    now, limits = ctx.now, cfg.limits
    top, top_limit, top_rank = fresh_point(
        state, "top_position", state.long_short.get("top_position"), now, cfg
    )
    # the youngest input's age (None: no input), as min() over the inputs present
    age = None
    smc = None
    if ctx.smc_faded is not None and bars:
        age = now - bars[-1].close_s
        if age <= limits["smart_money"]:
            smc = ctx.smc_faded
    top_share = None
    young = False  # a fresh top-position ratio without enough history to rank it
    if top is not None:
        age_top = now - top.t
        if age is None or age_top < age:
            age = age_top
        if age_top <= top_limit:
            if top_rank is not None:
                top_share = top.value
            else:
                young = True
    if age is None:
        return _NOTHING
    age = age if age > 0.0 else 0.0  # max(0.0, age)
    if smc is None and top_share is None:
        if young:
            return missing(
                f"no fresh SMC structure; fewer than {cfg.neutral_min_history} top-trader "
                "position ratios to rank"
            )
        return stale(age, limits["smart_money"])
    used_top = top if top_share is not None else None
    memo = state.memo.get("smart_money")
    if (
        memo is None
        or memo[0] != smc
        or memo[1] is not used_top
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
            top_position_rank=None if top_share is None or top_rank is None else round(top_rank, 4),
            **by_tf,  # dynamic keys (see the model)
        )
        result = FactorResult(
            to_score(smart_money_strength(smc, top_rank if top_share is not None else None)),
            "ok",
            round3(age),
            inputs,
        )
        state.memo["smart_money"] = (smc, used_top, ctx.smc_by_tf, cfg, result)
        return result
    cached: FactorResult = memo[4]
    age = round3(age)
    if cached.age_s == age:
        return cached  # same inputs, same age: the same (never mutated) result
    return FactorResult(cached.score, "ok", age, cached.inputs)
