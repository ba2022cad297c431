"""Outcomes settings refuse at start-up what the evaluator cannot use later."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from perpsignal_domain.outcomes.evaluate import MAX_COST_BP
from perpsignal_outcomes.settings import MAX_DURATION_S, OutcomesSettings


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


@pytest.mark.parametrize(
    ("name", "value"),
    [
        # "never give up": every batch died on an OverflowError before writing a row
        ("OUTCOMES_GIVE_UP_AFTER_S", "1e15"),
        # a waiting row's retry time overflowed the datetime: the whole batch rolled back
        ("OUTCOMES_RETRY_S", "1e12"),
        # "keep forever": the pruning (and the funding pass before it) died on every loop
        ("OUTCOMES_CANDLE_RETENTION_S", "1e11"),
        ("OUTCOMES_FUNDING_WAIT_S", "1e11"),
        ("OUTCOMES_SETTLE_S", "1e12"),
        # a 24h horizon of more than 2**31 s: every judged signal failed its INSERT
        ("OUTCOMES_TIME_SCALE", "1e6"),
    ],
)
def test_a_duration_the_evaluator_cannot_use_is_refused_at_start(
    name: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=name.lower()):
        OutcomesSettings()


def test_ten_years_is_accepted_as_never(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OUTCOMES_GIVE_UP_AFTER_S", "OUTCOMES_CANDLE_RETENTION_S", "OUTCOMES_RETRY_S"):
        monkeypatch.setenv(name, str(MAX_DURATION_S))
    cfg = OutcomesSettings()
    assert cfg.outcomes_give_up_after_s == MAX_DURATION_S == 10 * 365 * 86_400


@pytest.mark.parametrize("name", ["OUTCOMES_TAKER_FEE_BP", "OUTCOMES_SLIPPAGE_BP"])
def test_a_cost_above_all_of_notional_is_refused_as_the_backtest_does(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 1e6 bp per side (a slip of the decimal point) charged every live outcome 20,000 % of
    # its notional in net P&L; `perpsignal backtest` refuses a cost above MAX_COST_BP
    monkeypatch.setenv(name, "1e6")
    with pytest.raises(ValidationError, match=name.lower()):
        OutcomesSettings()
    monkeypatch.setenv(name, str(MAX_COST_BP))  # 100 % per side: extreme, still a cost
    assert getattr(OutcomesSettings(), name.lower()) == MAX_COST_BP
