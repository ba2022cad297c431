"""The in-process backtest runs the engine and rule judge the services' settings describe.

The command line may not import a service (lint-imports), so it asks the service itself
(`python -m perpsignal_scorer --print-config`) when SCORER_* / JUDGE_* variables are set.
"""

from __future__ import annotations

import pytest

from perpsignal_cli.backtesting.pipeline import ServiceConfigError, engine_config, rules_judge
from perpsignal_domain.scoring.config import EngineConfig


def test_defaults_without_settings_and_no_process(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SCORER_WEIGHTS", "JUDGE_ATR_PERIOD"):
        monkeypatch.delenv(name, raising=False)
    assert engine_config("15m") == EngineConfig()
    assert rules_judge().params.atr_period == 14


def test_scorer_and_judge_settings_reach_the_backtest(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCORER_WEIGHTS", "momentum=30,funding=5")
    monkeypatch.setenv("SCORER_LONG_THRESHOLD", "70")
    monkeypatch.setenv("JUDGE_ATR_PERIOD", "10")
    cfg = engine_config("5m")
    assert cfg.weights["momentum"] == 30 and cfg.weights["funding"] == 5
    assert cfg.long_threshold == 70 and cfg.primary_timeframe == "5m"
    assert rules_judge().params.atr_period == 10


def test_invalid_settings_are_reported_not_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCORER_WEIGHTS", "momentum=90")  # no longer sums to 100
    with pytest.raises(ServiceConfigError, match="SCORER_WEIGHTS") as err:
        engine_config("15m")
    assert "sum to 100" in str(err.value)  # the scorer's own reason
