"""JUDGE_MIN_CONFIDENCE: rule 2's threshold, from the env through the judge's config."""

from __future__ import annotations

import pytest

from perpsignal_domain.judging.judge import (
    JudgeConfig,
    RuleJudge,
    judge_config_from_json,
    judge_config_to_json,
)
from perpsignal_domain.judging.rules import MIN_CONFIDENCE
from perpsignal_judge.judge import judge_config
from perpsignal_judge.settings import JudgeSettings
from tests.unit.judge.builders import signal
from tests.unit.judge.test_rules import BULL6


def _verdict(cfg: JudgeConfig, confidence: float) -> tuple[str, str]:
    sig = signal(confidence=confidence, factors=BULL6)
    _, rules = RuleJudge(cfg, clock=lambda: sig.produced_at).assess(sig.symbol, sig)
    return rules.verdict, rules.reason


def test_the_default_is_the_documented_35() -> None:
    assert JudgeSettings().judge_min_confidence == MIN_CONFIDENCE == 35.0
    assert _verdict(JudgeConfig(), 30) == ("SKIP", "confidence_too_low")


def test_the_setting_moves_rule_2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JUDGE_MIN_CONFIDENCE", "20")
    cfg = judge_config(JudgeSettings())
    assert cfg.min_confidence == 20.0
    assert _verdict(cfg, 30)[1] != "confidence_too_low"
    assert _verdict(cfg, 15) == ("SKIP", "confidence_too_low")
    # the backtest runs what the service would: the --print-config round trip keeps it
    assert judge_config_from_json(judge_config_to_json(cfg)).min_confidence == 20.0


def test_an_out_of_range_value_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JUDGE_MIN_CONFIDENCE", "120")
    with pytest.raises(ValueError, match="judge_min_confidence"):
        JudgeSettings()
