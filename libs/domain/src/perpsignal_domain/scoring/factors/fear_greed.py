"""Fear & Greed: contrarian to the index's move away from its own recent neutral.

neutral = the median of the last `fear_greed_neutral_readings` (2) daily readings before the
newest one (fewer when fewer came; engine.fear_greed_neutral); score = 50 - 50 pull(v -
neutral, fear_greed_full_change) (30 index points = full pull): greed jumping above its
recent norm is bearish, fear deepening below it bullish. Without an earlier reading there
is no neutral and the factor is missing (the ingestor fetches the last two readings).

Why not fixed extremes (fear <= 25 bullish, greed >= 75 bearish): the index is a slow daily
level that stays extreme for weeks, so a fixed scale scored whole fortnights far from 50 (on
alternative.me's 2018-2024 history, 9 % of 14-day windows averaged outside 35-65, as low as
14). Ranking the level in its own last 7 to 288 readings is worse (20-70 % of fortnights
outside): the level's persistence survives any level-based neutral. Against the median of
its last two readings it cancels, and every fortnight of that history averages within
38.8-60.5 (tests/unit/scorer/test_fear_greed_neutral.py).
"""

from __future__ import annotations

from perpsignal_common.events.factors import fear_greed_inputs
from perpsignal_common.events.signals import Scalar
from perpsignal_domain.scoring.config import EngineConfig
from perpsignal_domain.scoring.factors.base import (
    EvalContext,
    FactorResult,
    missing,
    pull,
    round3,
    stale,
    to_score,
)


def fear_greed_score(value: float, neutral: float, cfg: EngineConfig) -> float:
    """Return the contrarian sub-score of a Fear & Greed reading against its neutral."""
    return to_score(-pull(value - neutral, cfg.fear_greed_full_change))


_NO_INDEX = missing("no fear & greed index received")
_NO_NEUTRAL = missing("a single fear & greed reading: no earlier one to set its neutral")
# (reading, neutral, config, sub-score, inputs) of the last reading scored: the index is
# daily, so nearly every evaluation scores the reading the one before it scored (replaced
# whole, so it is never seen half-updated)
_last: tuple[tuple[float, float], float, EngineConfig, float, dict[str, Scalar]] | None = None


def score_fear_greed(_state: object, ctx: EvalContext, cfg: EngineConfig) -> FactorResult:
    """Score the market-wide Fear & Greed index."""
    global _last
    reading = ctx.fear_greed
    if reading is None:
        return _NO_INDEX
    at, value = reading
    age = ctx.now - at
    limit = cfg.limits["fear_greed"]
    if age > limit:
        return stale(age, limit, fear_greed_inputs(fear_greed=value))
    neutral = ctx.fear_greed_neutral
    if neutral is None:
        return _NO_NEUTRAL
    last = _last
    if last is None or last[0] is not reading or last[1] != neutral or last[2] is not cfg:
        inputs = fear_greed_inputs(fear_greed=value, neutral=neutral)
        last = _last = (reading, neutral, cfg, fear_greed_score(value, neutral, cfg), inputs)
    return FactorResult(last[3], "ok", round3(0.0 if age < 0.0 else age), last[4])
