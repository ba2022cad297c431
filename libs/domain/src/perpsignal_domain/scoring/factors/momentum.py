"""Price momentum: multi-horizon returns, RSI and EMA trend on the primary timeframe.

returns = mean over horizons h (bars) of pull(close / close[h bars ago] - 1,
momentum_full_return * sqrt(h)); rsi = pull(RSI(14) - 50, 20) (RSI 70 = full bullish);
trend = pull(EMA20 / EMA50 - 1, trend_full_gap); flow = rank of the newest taker-flow
imbalance (buy - sell) / (buy + sell) within the symbol's last `neutral_window` imbalances
(history.rank_strength; 0 at their median). strength = 0.4 returns + 0.3 rsi + 0.3 trend +
0.25 flow over the parts available (RSI is required: fewer than 15 bars is "missing").

Taker flow belongs here rather than in smart money: it is every aggressive order, not the
largest accounts, and it is the demand behind the move the other parts measure; buyers
lifting offers harder than usual confirm a rise (trend-following, like the rest of the
factor). It is ranked because 0 is no dependable neutral: a series' imbalance can lean one
way for long stretches (the recorded Coinglass all-exchange hours are all sell-heavy, -2.7 to
-4.3 %). Its freshness follows its own cadence (`stale_cadence_multiple`
x its observed interval, at least the candle limit); a flow that is absent, stale or has
fewer than `neutral_min_history` observations is left out, and the factor is exactly what
it is without taker flow.

Horizons count candles, so after a gap in the series longer than the longest horizon (a
feed down for hours or days) a return would compare prices across the gap as if they were
bars apart. Until the longest horizon has contiguous candles again, the factor is missing
(neutral, lower confidence; the service logs the change once): `bars_after_gap`, the same
rule as the batch evaluation's.
"""

from __future__ import annotations

import math
from collections import deque

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
from perpsignal_domain.scoring.history import input_limit, rank_strength
from perpsignal_domain.scoring.state import Bar, Point, SymbolState, value_at_or_before

TAKER_FLOW_WEIGHT = 0.25  # next to returns 0.4, RSI 0.3, trend 0.3: a fifth of the factor


def _blend(
    returns_mean: float | None,
    rsi: float,
    ema_gap: float | None,
    cfg: EngineConfig,
    flow: float | None = None,
) -> float:
    """blend() of (0.4 mean returns pull, 0.3 rsi, 0.3 trend[, 0.25 flow rank]) written
    out: the same additions in the same order, without building the parts (hot path)."""
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
    if flow is not None:  # last: without flow, the very same operations as before
        total += TAKER_FLOW_WEIGHT
        acc += TAKER_FLOW_WEIGHT * flow
    return acc / total


def momentum_strength(
    returns: dict[int, float],
    rsi: float,
    ema_gap: float | None,
    cfg: EngineConfig,
    flow_rank: float | None = None,
) -> float:
    """Return the trend-following strength of returns (by horizon), RSI, the EMA gap and
    the taker-flow imbalance's rank in its own history (`rank_strength`)."""
    full = cfg.momentum_full_return
    r_sum = 0.0
    for h, ret in returns.items():
        r_sum += pull(ret, full * math.sqrt(h))
    return _blend(r_sum / len(returns) if returns else None, rsi, ema_gap, cfg, flow_rank)


def fresh_taker_flow(
    state: SymbolState, now: float, cfg: EngineConfig
) -> tuple[Point | None, float | None]:
    """Return the newest taker-flow imbalance at `now` and its rank, or (None, None) when
    there is none, it is stale by its own cadence or too little history ranks it (memoised
    per newest point: cadence and rank change only then)."""
    points = state.taker_flow
    if not points:
        return None, None
    p = value_at_or_before(points, now)
    if p is None:
        return None, None
    memo = state.memo.get("taker_flow")
    if memo is None or memo[0] is not p or memo[1] is not cfg:
        limit = input_limit(points, p, cfg.limits["momentum"], cfg.stale_cadence_multiple)
        rank = rank_strength(points, p, cfg.neutral_window, cfg.neutral_min_history)
        memo = state.memo["taker_flow"] = (p, cfg, limit, rank)
    if memo[3] is None or now - p.t > memo[2]:
        return None, None
    return p, memo[3]


def bars_after_gap(bars: deque[Bar], cfg: EngineConfig) -> int | None:
    """Return how many of the newest bars follow a gap longer than the longest momentum
    horizon, when that is not more than the horizon (None: enough contiguous bars).

    A gap is a bar opening more than the horizon's span after the previous bar's close:
    a missing candle or two still leaves the horizons about the time they mean.
    """
    span = cfg.momentum_span
    if not span:
        return None
    window_s = span * cfg.primary_s
    n = len(bars)
    for j in range(1, min(span, n - 1) + 1):
        if bars[n - j].open_s - bars[n - j - 1].close_s > window_s:
            return j
    return None


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
    flow, flow_rank = fresh_taker_flow(state, ctx.now, cfg)
    memo = state.memo.get("momentum")
    if (
        memo is not None
        and memo[0] is last
        and memo[1] is cfg
        and memo[2] == rsi
        and memo[4] is flow
    ):
        cached: FactorResult = memo[3]
        if cached.age_s == age:
            return cached  # same inputs, same age: the same (never mutated) result
        return FactorResult(cached.score, "ok", age, cached.inputs)
    after_gap = bars_after_gap(bars, cfg)
    if after_gap is not None:
        # (not memoised: the next bar asks again; reasons are few: one per count)
        return missing(
            f"{after_gap}/{cfg.momentum_span + 1} contiguous candles after a gap longer "
            f"than {cfg.momentum_span} bars: its returns would span the gap"
        )
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
    if flow is not None and flow_rank is not None:
        inputs.update(
            momentum_inputs(
                taker_imbalance=fround(flow.value, 4), taker_flow_rank=fround(flow_rank, 4)
            )
        )
    strength = _blend(r_sum / count if count else None, rsi, gap, cfg, flow_rank)
    result = FactorResult(to_score(strength), "ok", age, inputs)
    # the sub-score depends on the primary candles and the taker flow used: reused until
    # either changes
    state.memo["momentum"] = (last, cfg, rsi, result, flow)
    return result
