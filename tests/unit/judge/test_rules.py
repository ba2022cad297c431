"""The rule judge: a table of cases, each with the verdict and reason the README documents."""

from __future__ import annotations

from typing import Any

import pytest

from perpsignal_common.events.signals import VolatilityMetrics
from perpsignal_domain.judging.rules import judge_rules
from tests.unit.judge.builders import signal

# the rules read a plan only for whether it has a stop; its levels are checked elsewhere
PLAN = {"stop_loss_price": 0.98, "take_profit_price": 1.04, "risk_reward": 2.0}
NORMAL = VolatilityMetrics(atr=0.01, atr_pct=1.0, volatility_class="NORMAL", **PLAN)
LOW = VolatilityMetrics(atr=0.005, atr_pct=0.5, volatility_class="LOW", **PLAN)
HIGH = VolatilityMetrics(atr=0.02, atr_pct=2.0, volatility_class="HIGH", **PLAN)
VERY_HIGH = VolatilityMetrics(atr=0.05, atr_pct=5.0, volatility_class="VERY_HIGH", **PLAN)
UNKNOWN = VolatilityMetrics()  # too few candles: no ATR, no plan
FLAT = VolatilityMetrics(atr=0.0, atr_pct=0.0, volatility_class="VERY_LOW")  # no range, no plan
VERY_HIGH_NO_PLAN = VolatilityMetrics(atr=0.5, atr_pct=50.0, volatility_class="VERY_HIGH")

BULL6 = dict.fromkeys(
    ("liquidations", "funding", "momentum", "long_short", "smart_money", "oi_trend"), 70.0
)
BEAR6 = dict.fromkeys(BULL6, 30.0)

# (id, signal kwargs, volatility, verdict, risk mode, size, reason)
CASES: list[tuple[str, dict[str, Any], VolatilityMetrics, str, str, float, str]] = [
    (
        "neutral direction",
        {"direction": "NEUTRAL", "score": 50},
        NORMAL,
        "WAIT",
        "AVOID",
        0.0,
        "neutral_direction",
    ),
    (
        "confidence 30 < 35",
        {"confidence": 30, "factors": BULL6},
        NORMAL,
        "SKIP",
        "AVOID",
        0.0,
        "confidence_too_low",
    ),
    (
        "1 of 6 leaning factors agree",
        {"factors": {**BEAR6, "momentum": 70.0}},
        NORMAL,
        "SKIP",
        "AVOID",
        0.0,
        "factors_disagree",
    ),
    (
        "4 of 8 factors missing",
        {
            "factors": BULL6,
            "missing": ("social", "fear_greed"),
            "stale": ("oi_trend", "liquidations"),
        },
        NORMAL,
        "WAIT",
        "REDUCED",
        0.0,
        "data_incomplete",
    ),
    (
        "SMC against (2) + longs paying extreme funding (2)",
        {"factors": {**BULL6, "funding": 50.0}, "smc": "BEARISH", "funding_rate": 0.001},
        NORMAL,
        "SKIP",
        "AVOID",
        0.0,
        "too_many_conflicts",
    ),
    (
        "crowded longs (1) + HIGH volatility (1)",
        {"factors": BULL6, "ls_ratio": 2.2},
        HIGH,
        "DOWNSIZE",
        "REDUCED",
        0.5,
        "conflicts_present",
    ),
    (
        "VERY_HIGH volatility alone (2)",
        {"factors": BULL6},
        VERY_HIGH,
        "DOWNSIZE",
        "REDUCED",
        0.5,
        "conflicts_present",
    ),
    (
        "weak score 55 (1) + confidence 45 (1)",
        {"factors": BULL6, "score": 55, "confidence": 45},
        NORMAL,
        "DOWNSIZE",
        "REDUCED",
        0.5,
        "conflicts_present",
    ),
    (
        "everything lines up",
        {"factors": BULL6, "score": 80, "confidence": 80, "smc": "BULLISH"},
        NORMAL,
        "CONFIRM",
        "AGGRESSIVE",
        1.5,
        "strong_alignment",
    ),
    (
        "lines up but volatility unknown (1): no stop to place",
        {"factors": BULL6, "score": 80, "confidence": 80, "smc": "BULLISH"},
        UNKNOWN,
        "WAIT",
        "REDUCED",
        0.0,
        "no_trade_plan",
    ),
    (
        "lines up but the candles have no range: no stop to place",
        {"factors": BULL6, "score": 65},
        FLAT,
        "WAIT",
        "REDUCED",
        0.0,
        "no_trade_plan",
    ),
    (
        "conflicts to downsize, but the stop would fall below zero",
        {"factors": BULL6},
        VERY_HIGH_NO_PLAN,
        "WAIT",
        "REDUCED",
        0.0,
        "no_trade_plan",
    ),
    (
        "too many conflicts is SKIP before no plan is WAIT",
        {"factors": {**BULL6, "funding": 50.0}, "smc": "BEARISH", "funding_rate": 0.001},
        UNKNOWN,
        "SKIP",
        "AVOID",
        0.0,
        "too_many_conflicts",
    ),
    (
        "plain agreement, moderate confidence",
        {"factors": BULL6, "score": 65},
        NORMAL,
        "CONFIRM",
        "NORMAL",
        1.0,
        "aligned",
    ),
    (
        "SHORT mirror: everything lines up",
        {"direction": "SHORT", "factors": BEAR6, "score": 20, "confidence": 85, "smc": "BEARISH"},
        LOW,
        "CONFIRM",
        "AGGRESSIVE",
        1.5,
        "strong_alignment",
    ),
    (
        "SHORT while shorts pay extreme funding (2)",
        {
            "direction": "SHORT",
            "factors": {**BEAR6, "funding": 50.0},
            "score": 25,
            "funding_rate": -0.001,
        },
        NORMAL,
        "DOWNSIZE",
        "REDUCED",
        0.5,
        "conflicts_present",
    ),
    (
        "SHORT with very crowded shorts (2) + SMC against (2)",
        {"direction": "SHORT", "factors": BEAR6, "score": 25, "ls_ratio": 0.3, "smc": "BULLISH"},
        NORMAL,
        "SKIP",
        "AVOID",
        0.0,
        "too_many_conflicts",
    ),
]


@pytest.mark.parametrize(
    ("kwargs", "vol", "verdict", "mode", "size", "reason"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_rule_table(
    kwargs: dict[str, Any],
    vol: VolatilityMetrics,
    verdict: str,
    mode: str,
    size: float,
    reason: str,
) -> None:
    sig = signal(**kwargs)
    r = judge_rules(sig, sig.symbol, vol)
    assert (r.verdict, r.risk_mode, r.position_multiplier, r.reason) == (
        verdict,
        mode,
        size,
        reason,
    )
    assert r.verdict in r.summary and sig.symbol in r.summary
    assert not set("<>&") & set(r.summary)  # safe inside a Telegram HTML message


def test_layer_checks_name_the_evidence() -> None:
    sig = signal(
        factors={**BULL6, "funding": 50.0},
        smc="BEARISH",
        funding_rate=0.001,
        ls_ratio=0.7,
        confidence=80,
    )
    r = judge_rules(sig, sig.symbol, NORMAL)
    text = " | ".join(r.conflicts)
    assert "SMC structure BEARISH against LONG" in text
    assert "extreme funding +0.100%" in text
    agreements = " | ".join(r.agreements)
    assert "5 of 5 leaning factors support LONG" in agreements
    assert "crowd leans against LONG" in agreements
    assert "high confidence 80" in agreements


def test_funding_that_favours_the_side_is_an_agreement() -> None:
    sig = signal(direction="SHORT", factors=BEAR6, score=25, funding_rate=0.001)
    r = judge_rules(sig, sig.symbol, NORMAL)
    assert any("favours SHORT" in a for a in r.agreements)
    assert not any("funding" in c for c in r.conflicts)


def test_rules_are_deterministic() -> None:
    sig = signal(factors=BULL6, ls_ratio=2.5)
    assert judge_rules(sig, "XRPUSDT", HIGH) == judge_rules(sig, "XRPUSDT", HIGH)


@pytest.mark.parametrize(
    ("keep", "verdict", "reason"),
    [(0, "WAIT", "data_incomplete"), (3, "WAIT", "data_incomplete"), (6, "CONFIRM", "aligned")],
    ids=["no-breakdown", "3-of-8", "6-of-8"],
)
def test_a_factor_the_breakdown_lacks_is_a_data_gap(
    keep: int, verdict: str, reason: str | None
) -> None:
    """The scorer lists all eight factors (missing ones as such); a signal from another
    producer may lack some, or carry none. Those were no gap at all: a signal without any
    factor breakdown was CONFIRMed at 1x with no conflict, judged on no evidence."""
    sig = signal(factors=BULL6, score=80, confidence=80, smc="BULLISH")
    assert judge_rules(sig, sig.symbol, NORMAL).verdict == "CONFIRM"
    # the breakdown cut by hand: no producer here emits a signal without all eight factors
    cut = sig.model_copy(update={"factors": sig.factors[:keep]})
    r = judge_rules(cut, cut.symbol, NORMAL)
    assert r.verdict == verdict and (reason is None or r.reason == reason)
    lacking = [f.name for f in sig.factors[keep:]]
    assert any(c.startswith("missing/stale data:") and lacking[0] in c for c in r.conflicts)
    assert not any("factors fresh" in a for a in r.agreements)
