"""Social sentiment (LunarCrush): sentiment, galaxy score and social volume growth.

Sentiment (percent of positive posts, typically 70-85) and galaxy score sit far from any
fixed midpoint for weeks, so each is ranked within the coin's last `neutral_window`
readings (history.rank_strength: 0 at their median); the volume change keeps its natural
zero. strength = 0.4 rank(sentiment) + 0.4 rank(galaxy) + 0.2 pull(social volume change %,
100) over the parts present (a level from `neutral_min_history` readings on). Stale after
`stale_cadence_multiple` x the readings' own cadence (at least the `stale_s` entry).
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
from perpsignal_domain.scoring.history import input_limit, rank_strength
from perpsignal_domain.scoring.state import SymbolState, value_at_or_before


def social_strength(
    sentiment_rank: float | None,
    galaxy_rank: float | None,
    volume_change_pct: float | None,
) -> float:
    """Return the strength of social sentiment and attention (ranks from `rank_strength`)."""
    parts = []
    if sentiment_rank is not None:
        parts.append((0.4, sentiment_rank))
    if galaxy_rank is not None:
        parts.append((0.4, galaxy_rank))
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
    memo = state.memo.get("social")
    if memo is None or memo[0] is not s or memo[1] is not cfg:
        limit = cfg.limits["social"]
        ranks: list[float | None] = []
        for key in ("sentiment", "galaxy_score"):
            series = state.social_history.get(key)
            latest = value_at_or_before(series, at) if series else None
            if series is None or latest is None or s.get(key) is None:
                ranks.append(None)
                continue
            limit = input_limit(series, latest, cfg.limits["social"], cfg.stale_cadence_multiple)
            ranks.append(rank_strength(series, latest, cfg.neutral_window, cfg.neutral_min_history))
        inputs = social_inputs(
            sentiment=values[0],
            galaxy_score=values[1],
            social_volume_change_pct=values[2],
            sentiment_rank=None if ranks[0] is None else round(ranks[0], 4),
            galaxy_score_rank=None if ranks[1] is None else round(ranks[1], 4),
        )
        usable = ranks[0] is not None or ranks[1] is not None or values[2] is not None
        score = to_score(social_strength(ranks[0], ranks[1], values[2]))
        memo = state.memo["social"] = (s, cfg, score, inputs, limit, usable)
    limit = memo[4]
    if age > limit:
        return stale(age, limit)
    if not memo[5]:
        return missing(f"fewer than {cfg.neutral_min_history} social readings: no neutral yet")
    return FactorResult(memo[2], "ok", round3(0.0 if age < 0.0 else age), memo[3], None, limit)
