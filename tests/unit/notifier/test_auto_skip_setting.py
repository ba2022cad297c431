"""`AUTO_SKIP_AVOID_SIGNALS` governs Telegram suppression (it had no effect on the notifier).

The SKIP signals here are the real judge's output for a low-confidence signal, judged with the
same environment the notifier reads.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from perpsignal_common.events.signals import SignalJudgedV1
from perpsignal_judge.judge import Judge
from perpsignal_judge.settings import JudgeSettings
from perpsignal_notifier.filters import suppression_reason
from perpsignal_notifier.service import rules_from
from perpsignal_notifier.settings import NotifierSettings
from tests.unit.judge.builders import load_candles, signal


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AUTO_SKIP_AVOID_SIGNALS", raising=False)
    monkeypatch.delenv("NOTIFIER_SUPPRESS_SKIP_AVOID", raising=False)


async def _skip(shared_data: Path) -> SignalJudgedV1:
    judged = await Judge(JudgeSettings()).judge(
        signal(confidence=20, candles=load_candles(shared_data))
    )
    assert judged.ai_verdict_layer.verdict == "SKIP"
    return judged


@pytest.mark.parametrize(("value", "reason"), [("false", None), ("true", "skip_avoid")])
async def test_auto_skip_avoid_signals_decides_whether_skip_reaches_telegram(
    shared_data: Path, monkeypatch: pytest.MonkeyPatch, value: str, reason: str | None
) -> None:
    monkeypatch.setenv("AUTO_SKIP_AVOID_SIGNALS", value)
    event = await _skip(shared_data)
    assert suppression_reason(event, rules_from(NotifierSettings())) == reason


async def test_by_default_skip_avoid_stay_off_telegram(shared_data: Path) -> None:
    event = await _skip(shared_data)
    assert event.ai_verdict_layer.suppressed is True
    assert suppression_reason(event, rules_from(NotifierSettings())) == "skip_avoid"


async def test_the_old_notifier_name_still_works_with_a_warning(
    shared_data: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("NOTIFIER_SUPPRESS_SKIP_AVOID", "false")
    with caplog.at_level(logging.WARNING):
        rules = rules_from(NotifierSettings())
    assert suppression_reason(await _skip(shared_data), rules) is None
    assert "NOTIFIER_SUPPRESS_SKIP_AVOID is deprecated" in caplog.text


def test_the_shared_name_wins_over_the_old_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFIER_SUPPRESS_SKIP_AVOID", "false")
    monkeypatch.setenv("AUTO_SKIP_AVOID_SIGNALS", "true")
    assert rules_from(NotifierSettings()).suppress_skip_avoid is True
