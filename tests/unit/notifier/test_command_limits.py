"""Replies to bot commands go through the alerts' rate limiter, on a share of their own.

They used to be sent straight away: a group typing /help twenty times got the bot 429-limited
in that group (Telegram's 20 messages/min), and the next alert to it waited out the penalty.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from perpsignal_notifier.commands import Commands
from perpsignal_notifier.delivery import Deliverer
from perpsignal_notifier.filters import FilterRules
from perpsignal_notifier.ratelimit import TelegramLimits
from perpsignal_notifier.repository import NotifierRepository
from perpsignal_notifier.service import AlertHandler
from perpsignal_notifier.telegram import BotSender, CommandPoller, build_dispatcher, create_bot
from tests.fakes.telegram import FakeTelegram
from tests.helpers import eventually
from tests.unit.notifier.builders import judged

GROUP = -100555
USER = 4242
PER_MIN = 6  # the group quota, the fake's and ours (Telegram's is 20; a smaller one is quick)


@pytest.fixture
async def strict_telegram() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram(enforce_limits=True, group_per_min=PER_MIN) as fake:
        yield fake


@pytest.mark.db
async def test_a_chat_spamming_commands_gets_no_429_and_its_alerts_still_go_at_once(
    repo: NotifierRepository, strict_telegram: FakeTelegram
) -> None:
    fake = strict_telegram
    bot = create_bot(fake.token, fake.base_url, timeout_s=2)
    limits = TelegramLimits(global_per_s=30, group_per_min=PER_MIN, private_per_s=1)
    dispatcher = build_dispatcher(
        Commands(repo), configured_chats=(GROUP,), rules=FilterRules(), limits=limits
    )
    poller = CommandPoller(bot, dispatcher, poll_timeout_s=1)
    stop = asyncio.Event()
    task = asyncio.create_task(poller.run(stop))
    try:
        for _ in range(10):
            fake.push_command(GROUP, "/help")
        fake.push_command(USER, "/help")  # another chat's command is still answered
        await eventually(lambda: poller.handled >= 11, timeout=20, what="11 commands handled")
        await eventually(lambda: fake.messages_to(USER), timeout=5, what="the user's reply")
        assert [r for r in fake.rejected if r[1] == 429] == []  # the old code: four 429s
        # half the group's window at most: the rest is kept for alerts
        assert len(fake.messages_to(GROUP)) == PER_MIN // 2

        handler = AlertHandler(
            repo=repo,
            deliverer=Deliverer(repo=repo, send=BotSender(bot), limits=limits),
            rules=FilterRules(cooldown_s=0),
            configured_chats=(GROUP,),
        )
        started = time.monotonic()
        await asyncio.wait_for(handler.handle(judged()), 10)
        assert time.monotonic() - started < 2  # no penalty to wait out
        assert "LONG BTCUSDT" in fake.messages_to(GROUP)[-1].visible_text
        assert [r for r in fake.rejected if r[1] == 429] == []
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)
        await bot.session.close()


async def test_commands_from_many_chats_leave_alerts_most_of_the_bots_rate() -> None:
    # 6 messages/s for the bot: command replies may take 2 of them, alerts keep 4
    limits = TelegramLimits(global_per_s=6, group_per_min=20, private_per_s=1)
    t0 = time.monotonic()
    commands: list[float] = []
    alerts: list[float] = []

    async def command(chat: int) -> None:
        assert await limits.acquire_command(chat, max_wait_s=60) is not None
        commands.append(time.monotonic() - t0)

    async def alert(chat: int) -> None:
        await limits.acquire(chat)
        alerts.append(time.monotonic() - t0)

    # twelve chats' commands queue first, then an alert to six chats
    tasks = [asyncio.create_task(command(1000 + i)) for i in range(12)]
    tasks += [asyncio.create_task(alert(2000 + i)) for i in range(6)]
    try:
        await asyncio.wait_for(asyncio.gather(*tasks[12:]), 5)
        await asyncio.sleep(0.5)
    finally:
        for t in tasks:
            t.cancel()
    # without a share, the commands took the first two windows and the alert waited for them
    assert max(alerts) < 1.5
    assert len([t for t in commands if t < 1.0]) == 2
