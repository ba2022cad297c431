"""Funding rate: crowded funding is contrarian.

Rates are normalised to 8 h. level = -(rate - funding_neutral_rate) / funding_full_rate,
change = -(rate - rate `funding_change_window_s` earlier) / funding_full_rate, both clipped;
strength = 0.7 level + 0.3 change (level alone without an earlier rate). Longs paying a
high or rising rate are crowded: bearish.
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
from perpsignal_domain.scoring.state import SymbolState, value_at_or_before


def funding_strength(rate: float, previous: float | None, cfg: EngineConfig) -> float:
    """Return the contrarian strength of a funding rate and its change."""
    parts = [(0.7, -pull(rate - cfg.funding_neutral_rate, cfg.funding_full_rate))]
    if previous is not None:
        parts.append((0.3, -pull(rate - previous, cfg.funding_full_rate)))
    return blend(parts)


_NO_RATE = missing("no funding rate received")


def score_funding(state: SymbolState, ctx: EvalContext, cfg: EngineConfig) -> FactorResult:
    """Score the latest funding rate against neutral and against its earlier value."""
    points, now = state.funding, ctx.now
    latest = value_at_or_before(points, now)
    if latest is None:
        return _NO_RATE
    age = now - latest.t
    limit = cfg.limits["funding"]
    if age > limit:
        return stale(age, limit, funding_inputs(rate_8h=latest.value))
    before = value_at_or_before(points, now - cfg.funding_change_window_s)
    memo = state.memo.get("funding")
    if memo is None or memo[0] is not latest or memo[1] is not before or memo[2] is not cfg:
        prev = before.value if before is not None else None
        memo = state.memo["funding"] = (
            latest,
            before,
            cfg,
            to_score(funding_strength(latest.value, prev, cfg)),
            funding_inputs(rate_8h=latest.value, previous_rate_8h=prev),
            None if prev is not None else "no earlier rate: level only",
        )
    return FactorResult(memo[3], "ok", round3(age), memo[4], memo[5])
