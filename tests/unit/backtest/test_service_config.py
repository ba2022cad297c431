"""The in-process backtest runs the engine and rule judge the services' settings describe.

The command line may not import a service (lint-imports), so it asks the service itself
(`python -m perpsignal_scorer --print-config`) when SCORER_* / JUDGE_* variables are set.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from perpsignal_cli.backtesting.broker import service_env
from perpsignal_cli.backtesting.importers import candle_events, read_candles
from perpsignal_cli.backtesting.pipeline import ServiceConfigError, engine_config, rules_judge
from perpsignal_common.settings import KafkaSettings
from perpsignal_domain.scoring.config import EngineConfig
from perpsignal_domain.scoring.engine import ScoringEngine
from perpsignal_scorer.settings import ScorerSettings


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


def test_broker_mode_scorer_scores_the_history_from_its_first_candle(
    monkeypatch: pytest.MonkeyPatch, market: Path
) -> None:
    """`--through-broker` runs the scorer service with `service_env`: the history (venue
    `history`) must drive its symbol from the first candle as in process, whatever primary
    venue is configured for live use. With the service default (binance) the first two
    candles scored nothing and the run waited for their signals until it timed out."""
    monkeypatch.setenv("SCORER_PRIMARY_VENUE", "okx")
    env = service_env(KafkaSettings(), EngineConfig(primary_timeframe="5m"), use_llm=False)
    for name, value in env.items():
        if name.startswith("SCORER_"):
            monkeypatch.setenv(name, value)
    settings = ScorerSettings()  # what the child process reads
    engine = ScoringEngine(settings.engine_config(), venues=settings.primary_venues())
    series = read_candles(market / "XRP_USDT_USDT-5m-futures.csv").slice(0, 6)
    candles = candle_events(series, "XRPUSDT")
    signals = [s for c in candles for s in engine.apply(c)]
    assert [s.observed_at for s in signals] == [c.observed_at for c in candles]
