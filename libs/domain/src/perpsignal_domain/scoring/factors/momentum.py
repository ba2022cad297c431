"""Price momentum: multi-horizon returns, RSI and EMA trend on the primary timeframe.

returns = mean over horizons h (bars) of pull(close / close[h bars ago] - 1,
momentum_full_return * sqrt(h)); rsi = pull(RSI(14) - 50, 20) (RSI 70 = full bullish);
trend = pull(EMA20 / EMA50 - 1, trend_full_gap). strength = 0.4 returns + 0.3 rsi +
0.3 trend over the parts available (RSI is required: fewer than 15 bars is "missing").
"""

from __future__ import annotations

import math

from perpsignal_common.events.factors import momentum_inputs
from perpsignal_domain.scoring.config import EngineConfig
from perpsignal_domain.scoring.factors.base import (
    EvalContext,
    FactorResult,
    fround,
    missing,
    pull,
    round3,
    stale,
    to_score,
)
from perpsignal_domain.scoring.state import SymbolState


def _blend(
    returns_mean: float | None, rsi: float, ema_gap: float | None, cfg: EngineConfig
) -> float:
    """blend() of (0.4 mean returns pull, 0.3 rsi, 0.3 trend) written out: the same additions
    in the same order, without building the parts (hot path)."""
    total = acc = 0.0
    if returns_mean is not None:
        total += 0.4
        acc += 0.4 * returns_mean
    v = (rsi - 50.0) / 20.0
    total += 0.3
    acc += 0.3 * (-1.0 if v < -1.0 else 1.0 if v > 1.0 else v)  # pull(rsi - 50, 20)
    if ema_gap is not None:
        total += 0.3
        acc += 0.3 * pull(ema_gap, cfg.trend_full_gap)
    return acc / total


def momentum_strength(
    returns: dict[int, float], rsi: float, ema_gap: float | None, cfg: EngineConfig
) -> float:
    """Return the trend-following strength of returns (by horizon), RSI and the EMA gap."""
    full = cfg.momentum_full_return
    r_sum = 0.0
    for h, ret in returns.items():
        r_sum += pull(ret, full * math.sqrt(h))
    return _blend(r_sum / len(returns) if returns else None, rsi, ema_gap, cfg)


def score_momentum(state: SymbolState, ctx: EvalContext, cfg: EngineConfig) -> FactorResult:
    """Score momentum from the primary candles and their incremental indicators."""
    bars = state.candles.get(cfg.primary_timeframe)
    if bars is None:
        bars = state.bars(cfg.primary_timeframe)
    rsi = state.rsi.value
    if not bars or rsi is None:
        return missing(f"warming up: {len(bars)}/{cfg.rsi_period + 1} candles")
    last = bars[-1]
    age = ctx.now - last.close_s
    limit = cfg.limits["momentum"]
    if age > limit:
        return stale(age, limit)
    age = round3(0.0 if age < 0.0 else age)
    memo = state.memo.get("momentum")
    if memo is not None and memo[0] is last and memo[1] is cfg and memo[2] == rsi:
        cached: FactorResult = memo[3]
        if cached.age_s == age:
            return cached  # same inputs, same age: the same (never mutated) result
        return FactorResult(cached.score, "ok", age, cached.inputs)
    # momentum_strength() of the returns by horizon, fused with building the inputs: the
    # same pulls summed in the same (horizon) order, without the intermediate dict
    returns: dict[str, float] = {}
    n, close = len(bars), last.close
    r_sum = 0.0
    count = 0
    for h, key, full in cfg.horizon_table:
        if n > h:
            r = close / bars[-1 - h].close - 1.0
            returns[key] = fround(r, 6)
            v = r / full if full else 0.0
            r_sum += -1.0 if v < -1.0 else 1.0 if v > 1.0 else v  # pull(r, full)
            count += 1
    fast, slow = state.ema_fast.value, state.ema_slow.value
    gap = fast / slow - 1.0 if fast is not None and slow else None
    inputs = momentum_inputs(
        **returns,  # dynamic keys (see the model)
        rsi=fround(rsi, 4),
        ema_gap=None if gap is None else fround(gap, 6),
    )
    strength = _blend(r_sum / count if count else None, rsi, gap, cfg)
    result = FactorResult(to_score(strength), "ok", age, inputs)
    # the sub-score depends on the primary candles only: reused until the next one closes
    state.memo["momentum"] = (last, cfg, rsi, result)
    return result
