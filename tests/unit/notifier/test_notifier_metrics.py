"""The notifier's own metrics, as Prometheus scrapes them, after real sends to the fake Bot API."""

from __future__ import annotations

from datetime import timedelta

import pytest
from aiogram import Bot
from prometheus_client import REGISTRY

from perpsignal_common.errors import PermanentError
from perpsignal_notifier.delivery import Deliverer
from perpsignal_notifier.filters import FilterRules
from perpsignal_notifier.ratelimit import TelegramLimits
from perpsignal_notifier.repository import NotifierRepository
from perpsignal_notifier.service import AlertHandler
from perpsignal_notifier.telegram import BotSender
from tests.fakes.telegram import FakeTelegram
from tests.unit.notifier.builders import judged
from tests.unit.notifier.conftest import VirtualClock

pytestmark = pytest.mark.db

CONFIGURED = -1001


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def handler_for(
    repo: NotifierRepository, bot: Bot, clock: VirtualClock, age_s: float
) -> AlertHandler:
    event = judged()
    deliverer = Deliverer(
        repo=repo,
        send=BotSender(bot),
        limits=TelegramLimits(
            global_per_s=30, group_per_min=20, private_per_s=1, clock=clock, sleep=clock.sleep
        ),
        max_attempts=3,
        sleep=clock.sleep,
        clock=lambda: event.observed_at + timedelta(seconds=age_s),
    )
    return AlertHandler(
        repo=repo,
        deliverer=deliverer,
        rules=FilterRules(min_score=70, cooldown_s=600),
        configured_chats=(CONFIGURED,),
    )


async def test_sends_retries_suppressions_and_pipeline_latency_are_exported(
    repo: NotifierRepository, bot: Bot, fake_telegram: FakeTelegram, clock: VirtualClock
) -> None:
    await repo.subscribe(222, ["*"], None)
    sent = sample("perpsignal_notifier_sends_total", kind="signal", outcome="sent")
    again = sample("perpsignal_notifier_sends_total", kind="signal", outcome="already_sent")
    retried = sample("perpsignal_notifier_send_retries_total", reason="server")
    below = sample("perpsignal_notifier_suppressed_total", reason="below_min_score")
    notified = sample("perpsignal_pipeline_latency_seconds_bucket", stage="notified", le="5.0")
    judged_n = sample("perpsignal_pipeline_latency_seconds_count", stage="judged")
    fake_telegram.fail("sendMessage", status=502, times=1)
    handler = handler_for(repo, bot, clock, age_s=4.0)

    event = judged()
    await handler.handle(event)
    await handler.handle(event)  # redelivered: no second message, counted as already sent
    await handler.handle(judged(score=60.0, minutes=1))  # strength under 70

    assert len(fake_telegram.messages) == 2
    assert sample("perpsignal_notifier_sends_total", kind="signal", outcome="sent") == sent + 2
    assert (
        sample("perpsignal_notifier_sends_total", kind="signal", outcome="already_sent")
        == again + 2
    )
    assert sample("perpsignal_notifier_send_retries_total", reason="server") == retried + 1
    assert sample("perpsignal_notifier_suppressed_total", reason="below_min_score") == below + 1
    # the first handling sent: candle close -> Telegram took 4 s, inside the 5 s bucket
    assert (
        sample("perpsignal_pipeline_latency_seconds_bucket", stage="notified", le="5.0")
        == notified + 1
    )
    # every judged signal the notifier reads, alerted or not, times the judge's stage
    assert sample("perpsignal_pipeline_latency_seconds_count", stage="judged") == judged_n + 3


async def test_failed_sends_are_counted_as_failed(
    repo: NotifierRepository, bot: Bot, fake_telegram: FakeTelegram, clock: VirtualClock
) -> None:
    failed = sample("perpsignal_notifier_sends_total", kind="signal", outcome="failed")
    # a 400 that fails the message ("chat not found" marks the chat blocked instead)
    fake_telegram.fail(
        "sendMessage", status=400, times=None, description="Bad Request: message is too long"
    )
    with pytest.raises(PermanentError):
        await handler_for(repo, bot, clock, age_s=1.0).handle(judged())
    assert sample("perpsignal_notifier_sends_total", kind="signal", outcome="failed") == failed + 1
