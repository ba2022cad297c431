"""Social sentiment (LunarCrush): sentiment, galaxy score and social volume growth.

strength = 0.4 pull(sentiment - social_sentiment_neutral, 25) + 0.4 pull(galaxy - 50, 25)
         + 0.2 pull(social volume change %, 100) over the parts present. Sentiment is the
percent of positive posts (typically well above 50, hence a configurable neutral).
"""

from __future__ import annotations

from perpsignal_common.events.factors import social_inputs
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
from perpsignal_domain.scoring.state import SymbolState


def social_strength(
    sentiment: float | None,
    galaxy: float | None,
    volume_change_pct: float | None,
    cfg: EngineConfig,
) -> float:
    """Return the strength of social sentiment and attention."""
    parts = []
    if sentiment is not None:
        parts.append((0.4, pull(sentiment - cfg.social_sentiment_neutral, 25.0)))
    if galaxy is not None:
        parts.append((0.4, pull(galaxy - 50.0, 25.0)))
    if volume_change_pct is not None:
        parts.append((0.2, pull(volume_change_pct, 100.0)))
    return blend(parts)


_NO_METRICS = missing("no social metrics received")


def score_social(state: SymbolState, ctx: EvalContext, cfg: EngineConfig) -> FactorResult:
    """Score the latest social metrics of the symbol's coin."""
    at = state.social_at
    if at is None:
        return _NO_METRICS
    s = state.social
    values = (s.get("sentiment"), s.get("galaxy_score"), s.get("social_volume_change_pct"))
    if all(v is None for v in values):
        return _NO_METRICS
    age = ctx.now - at
    limit = cfg.limits["social"]
    if age > limit:
        return stale(age, limit)
    memo = state.memo.get("social")
    if memo is None or memo[0] is not s or memo[1] is not cfg:
        inputs = social_inputs(
            sentiment=values[0], galaxy_score=values[1], social_volume_change_pct=values[2]
        )
        memo = state.memo["social"] = (s, cfg, to_score(social_strength(*values, cfg)), inputs)
    return FactorResult(memo[2], "ok", round3(0.0 if age < 0.0 else age), memo[3])
