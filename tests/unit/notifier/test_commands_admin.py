"""Only admin chats or users may change who receives alerts (real polling, fake Bot API)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiogram import Bot

from perpsignal_notifier.commands import Commands
from perpsignal_notifier.filters import FilterRules
from perpsignal_notifier.repository import NotifierRepository
from perpsignal_notifier.settings import NotifierSettings
from perpsignal_notifier.telegram import CommandPoller, build_dispatcher
from tests.fakes.telegram import FakeTelegram
from tests.unit.notifier.test_commands import command

pytestmark = pytest.mark.db

ADMIN_USER = 4242
STRANGER = 5151
ADMIN_GROUP = -100888
OTHER_GROUP = -100999


@pytest.fixture
async def poller(repo: NotifierRepository, bot: Bot) -> AsyncIterator[CommandPoller]:
    settings = NotifierSettings(telegram_admin_ids=f"{ADMIN_USER},{ADMIN_GROUP}")
    dispatcher = build_dispatcher(
        Commands(repo),
        configured_chats=(),
        rules=FilterRules(),
        admins=frozenset(settings.telegram_admin_ids),
    )
    poller = CommandPoller(bot, dispatcher, poll_timeout_s=5)
    stop = asyncio.Event()
    task = asyncio.create_task(poller.run(stop))
    try:
        yield poller
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)


async def test_strangers_cannot_subscribe_mute_or_unsubscribe(
    poller: CommandPoller, repo: NotifierRepository, fake_telegram: FakeTelegram
) -> None:
    for text in ("/subscribe btc", "/mute", "/unmute", "/unsubscribe"):
        reply = await command(fake_telegram, STRANGER, text)
        assert reply.startswith("⛔") and "TELEGRAM_ADMIN_IDS" in reply and str(STRANGER) in reply
    assert await repo.targets("BTC", 90.0, ()) == []
    for text in ("/subscribe btc", "/mute"):
        assert not (await command(fake_telegram, OTHER_GROUP, text)).startswith("✅")
    assert await repo.targets("BTC", 90.0, ()) == []
    # reading stays open
    assert "Status" in await command(fake_telegram, STRANGER, "/status")


async def test_admin_users_and_admin_chats_can(
    poller: CommandPoller, repo: NotifierRepository, fake_telegram: FakeTelegram
) -> None:
    assert (await command(fake_telegram, ADMIN_USER, "/subscribe btc")).startswith("✅")
    assert (await command(fake_telegram, ADMIN_GROUP, "/subscribe eth")).startswith("✅")
    assert await repo.targets("BTC", 90.0, ()) == [ADMIN_USER]
    assert await repo.targets("ETH", 90.0, ()) == [ADMIN_GROUP]


def test_admin_ids_setting_is_a_comma_list(monkeypatch) -> None:
    monkeypatch.setenv("TELEGRAM_ADMIN_IDS", "12, -100345")
    assert NotifierSettings().telegram_admin_ids == (12, -100345)
    monkeypatch.delenv("TELEGRAM_ADMIN_IDS")
    assert NotifierSettings().telegram_admin_ids == ()  # nobody: the secure default
