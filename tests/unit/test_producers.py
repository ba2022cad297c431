"""The consumers' test input (tests/producers.py) is what the scorer and rule judge emit."""

from __future__ import annotations

from pathlib import Path

import pytest

from perpsignal_common.events.base import utcnow
from perpsignal_domain.judging.judge import JudgeConfig, RuleJudge
from tests.producers import catalogue, real_judged, run


def test_catalogue_has_every_verdict_direction_and_plan_the_consumers_ask_for(
    shared_data: Path,
) -> None:
    keys = set(catalogue())
    assert {v for v, _, _ in keys} == {"CONFIRM", "DOWNSIZE", "SKIP", "WAIT"}
    assert {d for _, d, _ in keys} == {"LONG", "SHORT", "NEUTRAL"}
    # what the notifier, gateway and outcomes tests ask for
    for verdict, direction in (("CONFIRM", "LONG"), ("CONFIRM", "SHORT"), ("DOWNSIZE", "LONG"),
                               ("DOWNSIZE", "SHORT"), ("SKIP", "LONG")):  # fmt: skip
        assert (verdict, direction, True) in keys
    # the rule judge has no plan without an ATR (too few candles) and never for NEUTRAL;
    # without a stop it takes no trade (WAIT, `no_trade_plan`)
    assert ("WAIT", "SHORT", False) in keys and ("WAIT", "NEUTRAL", False) in keys
    assert not any(v in ("CONFIRM", "DOWNSIZE") and not p for v, _, p in keys)
    assert not any(d == "NEUTRAL" and p for _, d, p in keys)


def test_a_signal_is_the_rule_judges_verdict_on_the_scorers_signal(shared_data: Path) -> None:
    j = real_judged("SKIP", "LONG", True, symbol="ETHUSDT", price=3000.0)
    layer = j.ai_verdict_layer
    assert (j.symbol, j.price, layer.verdict, layer.judge) == ("ETHUSDT", 3000.0, "SKIP", "rules")
    assert layer.suppressed and layer.risk_mode == "AVOID"
    assert len(j.factors) == 8 and j.candles and j.smc is not None
    # judging its scored fields again gives the same layer: nothing was set by hand
    vol, rules = RuleJudge(JudgeConfig(), clock=utcnow).assess(j.symbol, j)
    assert vol == layer.volatility_metrics
    assert (rules.verdict, rules.summary) == (layer.verdict, layer.ai_summary)
    assert (rules.agreements, rules.conflicts) == (
        layer.layer_checks.agreements,
        layer.layer_checks.conflicts,
    )


def test_a_path_at_another_price_is_the_same_signal_scaled(shared_data: Path) -> None:
    """Feeding the scorer another price level changes no factor, verdict or relative plan."""
    low, high = run("bear")[50], run("bear", "BTCUSDT", 650.0)[50]  # a SHORT with a plan
    assert high.symbol == "BTCUSDT" and high.price == pytest.approx(low.price * 6.5)
    assert [f.score for f in high.factors] == pytest.approx([f.score for f in low.factors])
    a, b = low.ai_verdict_layer, high.ai_verdict_layer
    assert (a.verdict, a.risk_mode) == (b.verdict, b.risk_mode)
    va, vb = a.volatility_metrics, b.volatility_metrics
    assert va.atr_pct == vb.atr_pct and va.risk_reward == vb.risk_reward
    assert vb.stop_loss_price == pytest.approx((va.stop_loss_price or 0) * 6.5, rel=1e-4)


def test_an_impossible_request_names_what_the_producer_emits(shared_data: Path) -> None:
    with pytest.raises(LookupError, match="never emits CONFIRM/NEUTRAL"):
        real_judged("CONFIRM", "NEUTRAL")
