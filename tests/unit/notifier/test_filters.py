"""Suppression rules and per-symbol cooldown."""

from __future__ import annotations

from datetime import timedelta

import pytest

from perpsignal_notifier.filters import (
    FilterRules,
    base_asset,
    in_cooldown,
    strength,
    suppression_reason,
)
from tests.unit.notifier.builders import T0, judged


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({}, None),
        ({"verdict": "SKIP", "risk_mode": "AVOID"}, "skip_avoid"),
        ({"verdict": "DOWNSIZE", "risk_mode": "AVOID"}, "skip_avoid"),
        ({"suppressed": True}, "skip_avoid"),
        ({"direction": "NEUTRAL", "score": 50.0}, "neutral"),
        ({"confidence": 40.0}, "below_min_confidence"),
        ({"score": 66.0}, "below_min_score"),
        # SHORT strength is 100 - score: 30 -> 70 passes, 38 -> 62 does not
        ({"direction": "SHORT", "score": 30.0}, None),
        ({"direction": "SHORT", "score": 38.0}, "below_min_score"),
    ],
)
def test_suppression_rules(kwargs: dict[str, object], reason: str | None) -> None:
    rules = FilterRules(min_score=70, min_confidence=50)
    assert suppression_reason(judged(**kwargs), rules) == reason  # type: ignore[arg-type]


def test_skip_avoid_can_be_let_through_by_configuration() -> None:
    event = judged(verdict="SKIP", risk_mode="AVOID", suppressed=True)
    assert suppression_reason(event, FilterRules(suppress_skip_avoid=False)) is None


def test_strength_is_directional() -> None:
    assert strength(judged(score=80)) == 80
    assert strength(judged(direction="SHORT", score=15)) == 85


@pytest.mark.parametrize(
    ("token", "asset"), [("BTCUSDT", "BTC"), ("btc", "BTC"), ("ETH/USDT", "ETH"), ("USDT", "USDT")]
)
def test_base_asset(token: str, asset: str) -> None:
    assert base_asset(token) == asset


def test_cooldown_uses_event_time_and_spares_the_alert_that_started_it() -> None:
    def check(minutes: float, event_id: str = "new") -> bool:
        return in_cooldown(
            event_id=event_id,
            observed_at=T0 + timedelta(minutes=minutes),
            last_alert_event_id="first",
            last_alert_at=T0,
            cooldown_s=600,
        )

    assert check(5)  # a different alert 5 minutes later is quiet
    assert not check(10)  # cooldown is over at exactly 10 minutes
    assert not check(5, event_id="first")  # the redelivered first alert is not its own cooldown
    assert check(-3)  # a late, older alert is also inside the window
    assert not in_cooldown(
        event_id="x", observed_at=T0, last_alert_event_id=None, last_alert_at=None, cooldown_s=600
    )
