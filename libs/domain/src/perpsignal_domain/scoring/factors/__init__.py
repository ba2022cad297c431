"""The eight factors: each a pure function (state, context, config) -> FactorResult.

Formulas are in each module's docstring and in services/scorer/README.md.
"""

from __future__ import annotations

from collections.abc import Callable

from perpsignal_domain.scoring.config import EngineConfig
from perpsignal_domain.scoring.factors.base import EvalContext, FactorResult
from perpsignal_domain.scoring.factors.fear_greed import score_fear_greed
from perpsignal_domain.scoring.factors.funding import score_funding
from perpsignal_domain.scoring.factors.liquidations import score_liquidations
from perpsignal_domain.scoring.factors.long_short import score_long_short
from perpsignal_domain.scoring.factors.momentum import score_momentum
from perpsignal_domain.scoring.factors.oi_trend import score_oi_trend
from perpsignal_domain.scoring.factors.smart_money import score_smart_money
from perpsignal_domain.scoring.factors.social import score_social
from perpsignal_domain.scoring.state import SymbolState

FactorFn = Callable[[SymbolState, EvalContext, EngineConfig], FactorResult]

# same order as perpsignal_common.events.signals.FACTOR_NAMES
FACTORS: dict[str, FactorFn] = {
    "liquidations": score_liquidations,
    "funding": score_funding,
    "momentum": score_momentum,
    "long_short": score_long_short,
    "smart_money": score_smart_money,
    "oi_trend": score_oi_trend,
    "social": score_social,
    "fear_greed": score_fear_greed,
}

__all__ = ["FACTORS", "EvalContext", "FactorFn", "FactorResult"]
