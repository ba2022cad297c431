"""Fear & Greed: contrarian at the extremes, neutral in between.

score = 50 + 50 (fear_extreme - v) / fear_extreme when v <= fear_extreme (extreme fear is
bullish, v = 0 gives 100); 50 - 50 (v - greed_extreme) / (100 - greed_extreme) when
v >= greed_extreme (v = 100 gives 0); 50 otherwise.
"""

from __future__ import annotations

from perpsignal_common.events.factors import fear_greed_inputs
from perpsignal_common.events.signals import Scalar
from perpsignal_domain.scoring.config import EngineConfig
from perpsignal_domain.scoring.factors.base import EvalContext, FactorResult, missing, round3, stale


def fear_greed_score(value: float, cfg: EngineConfig) -> float:
    """Return the contrarian sub-score of a Fear & Greed reading."""
    if value <= cfg.fear_extreme:
        return 50.0 + 50.0 * (cfg.fear_extreme - value) / cfg.fear_extreme
    if value >= cfg.greed_extreme:
        return 50.0 - 50.0 * (value - cfg.greed_extreme) / (100.0 - cfg.greed_extreme)
    return 50.0


_NO_INDEX = missing("no fear & greed index received")
# (reading, config, sub-score, inputs) of the last reading scored: the index is daily, so
# nearly every evaluation scores the reading the one before it scored (replaced whole, so
# it is never seen half-updated)
_last: tuple[tuple[float, float], EngineConfig, float, dict[str, Scalar]] | None = None


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
    last = _last
    if last is None or last[0] is not reading or last[1] is not cfg:
        inputs = fear_greed_inputs(fear_greed=value)
        last = _last = (reading, cfg, fear_greed_score(value, cfg), inputs)
    return FactorResult(last[2], "ok", round3(0.0 if age < 0.0 else age), last[3])
