"""Funding rate: crowded funding is contrarian, judged against the symbol's own history.

Rates are normalised to 8 h. A rate has no universal neutral (a venue's base rate, a coin's
usual carry), so its level is ranked within the symbol's last `neutral_window` rates:
level = -rank (history.rank_strength: +1 above every earlier rate, 0 at their median);
change = -pull(rate - rate `funding_change_window_s` earlier, funding_full_rate).
strength = 0.7 level + 0.3 change; the change alone before `neutral_min_history` rates,
neutral without either. Longs paying a rate high for this symbol, or rising, are crowded:
bearish.
"""

from __future__ import annotations

from perpsignal_common.events.factors import funding_inputs
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
from perpsignal_domain.scoring.history import input_limit, rank_strength
from perpsignal_domain.scoring.state import SymbolState, value_at_or_before


def funding_strength(
    level_rank: float | None, rate: float, previous: float | None, cfg: EngineConfig
) -> float:
    """Return the contrarian strength of a funding rate's rank in its history and its
    change (`level_rank` from `rank_strength`; None: too little history)."""
    parts = []
    if level_rank is not None:
        parts.append((0.7, -level_rank))
    if previous is not None:
        parts.append((0.3, -pull(rate - previous, cfg.funding_full_rate)))
    return blend(parts)


_NO_RATE = missing("no funding rate received")


def score_funding(state: SymbolState, ctx: EvalContext, cfg: EngineConfig) -> FactorResult:
    """Score the latest funding rate against the symbol's own rates and its earlier value."""
    points, now = state.funding, ctx.now
    latest = value_at_or_before(points, now)
    if latest is None:
        return _NO_RATE
    age = now - latest.t
    memo = state.memo.get("funding")
    if memo is None or memo[0] is not latest or memo[2] is not cfg:
        limit = input_limit(points, latest, cfg.limits["funding"], cfg.stale_cadence_multiple)
        rank = rank_strength(points, latest, cfg.neutral_window, cfg.neutral_min_history)
        memo = (latest, None, cfg, limit, rank, 0.0, {}, None)
        state.memo["funding"] = memo
    limit = memo[3]
    if age > limit:
        return stale(age, limit, funding_inputs(rate_8h=latest.value))
    before = value_at_or_before(points, now - cfg.funding_change_window_s)
    if memo[1] is not before or not memo[6]:
        rank = memo[4]
        prev = before.value if before is not None else None
        reason = None
        if rank is None:
            reason = f"fewer than {cfg.neutral_min_history} rates: level not scored"
        elif prev is None:
            reason = "no earlier rate: level only"
        memo = state.memo["funding"] = (
            latest,
            before,
            cfg,
            limit,
            rank,
            to_score(funding_strength(rank, latest.value, prev, cfg)),
            funding_inputs(
                rate_8h=latest.value,
                previous_rate_8h=prev,
                rate_rank=None if rank is None else round(rank, 4),
            ),
            reason,
        )
    if memo[4] is None and memo[1] is None:
        return missing(f"fewer than {cfg.neutral_min_history} funding rates and no earlier rate")
    return FactorResult(memo[5], "ok", round3(age), memo[6], memo[7], limit)
