"""A market whose candles have no range (ATR 0) gets no trade plan, never stop = entry.

The signal is the scorer's own: a synthetic market with every input present, flat candles
(a halted or untraded contract prints open = high = low = close) and positioning data that
pushes the score past the LONG threshold. The judge used to answer CONFIRM with
stop = entry = target ("stop 100 (-0.00%, 1.5 ATR)"): a stop the first tick hits.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from perpsignal_domain.judging.judge import JudgeConfig, RuleJudge
from perpsignal_domain.judging.volatility import PlanParams, build_metrics
from tests.unit.judge.builders import full_market


def _flat_long_signals():  # type: ignore[no-untyped-def]
    m = full_market(
        0.0,
        range_pct=0.0,  # open = high = low = close on every bar
        oi_growth_pct=-3.0,
        funding_rate=-0.003,
        long_share=0.2,
        top_position_share=0.8,
        liquidated=("SHORT", 5e6),
        fear_greed=5,
        sentiment=99,
    )
    return [s for s in m.signals() if s.direction == "LONG"]


def test_flat_candles_give_no_plan_with_the_stop_on_entry() -> None:
    longs = _flat_long_signals()
    assert longs, "the synthetic market no longer scores LONG: adjust its inputs"
    judge = RuleJudge(JudgeConfig(), clock=lambda: datetime.now(UTC))
    for scored in longs:
        assert {c.high - c.low for c in scored.candles} == {0.0}
        vol = judge.judge_rules(scored).ai_verdict_layer.volatility_metrics
        assert vol.atr == 0.0
        assert vol.stop_loss_price is None and vol.take_profit_price is None
        assert vol.risk_reward is None
        assert vol.trade_plan_summary is not None and "No plan" in vol.trade_plan_summary


def test_flat_candles_get_no_volatility_size() -> None:
    """Inverse-volatility sizing divides by the ATR: with none measured, a halted or untraded
    contract was recommended the top size ("volatility x2.00" beside "No plan")."""
    judge = RuleJudge(JudgeConfig(), clock=lambda: datetime.now(UTC))
    for scored in _flat_long_signals():
        vol = judge.judge_rules(scored).ai_verdict_layer.volatility_metrics
        assert vol.atr == 0.0 and vol.volatility_class == "VERY_LOW"
        assert vol.recommended_position_multiplier is None


@pytest.mark.parametrize(("direction", "sign"), [("LONG", 1), ("SHORT", -1)])
def test_a_plan_never_rounds_its_stop_or_target_onto_entry(direction: str, sign: int) -> None:
    """A range under the 8 significant digits a price keeps: the plan would round onto entry."""
    scored = _flat_long_signals()[-1]
    tiny = [c.model_copy(update={"high": c.high * (1 + 2e-10)}) for c in scored.candles]
    m = build_metrics(
        symbol=scored.symbol,
        direction=direction,  # type: ignore[arg-type]
        entry=scored.price,
        confidence=scored.confidence,
        candles=tiny,
        timeframe=scored.timeframe,
        params=PlanParams(),
    )
    assert m.atr is not None and m.atr > 0
    if m.stop_loss_price is not None or m.take_profit_price is not None:
        assert m.stop_loss_price is not None and m.take_profit_price is not None
        assert (scored.price - m.stop_loss_price) * sign > 0
        assert (m.take_profit_price - scored.price) * sign > 0
    else:
        assert m.trade_plan_summary is not None and "No plan" in m.trade_plan_summary
