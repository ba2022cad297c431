"""Outcomes settings refuse at start-up what the evaluator cannot use later."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from perpsignal_outcomes.settings import OutcomesSettings


@pytest.mark.parametrize("value", ["5m,1h", "", " ", "5m,"])
def test_klines_timeframe_is_exactly_one_timeframe(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a list or nothing passed the old check; every batch that needed the klines then died
    # on a KeyError and its rows stayed pending forever (never even given up)
    monkeypatch.setenv("OUTCOMES_KLINES_TIMEFRAME", value)
    with pytest.raises(ValidationError, match="outcomes_klines_timeframe"):
        OutcomesSettings()


def test_candle_timeframes_are_not_empty(monkeypatch: pytest.MonkeyPatch) -> None:
    # an empty list passed, and the service died with a KeyError '' while it was built
    monkeypatch.setenv("OUTCOMES_CANDLE_TIMEFRAMES", " , ")
    with pytest.raises(ValidationError, match="outcomes_candle_timeframes"):
        OutcomesSettings()


def test_the_default_and_a_spaced_list_are_read() -> None:
    cfg = OutcomesSettings(outcomes_candle_timeframes=" 1h, 5m ", outcomes_klines_timeframe=" 1m")
    assert list(cfg.candle_timeframes()) == ["5m", "1h"]
    assert cfg.outcomes_klines_timeframe == "1m"
