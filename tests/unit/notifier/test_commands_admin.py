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
from tests.helpers import eventually
from tests.unit.notifier.test_commands import command

pytestmark = pytest.mark.db

ADMIN_USER = 4242
STRANGER = 5151
ADMIN_GROUP = -100888
OTHER_GROUP = -100999
STRANGER_CHANNEL = -100555
# the service accounts Telegram puts in `from` of a message sent on behalf of a chat
GROUP_ANONYMOUS_BOT = {"id": 1087968824, "is_bot": True, "first_name": "Group"}
CHANNEL_BOT = {"id": 136817688, "is_bot": True, "first_name": "Channel"}


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


async def command_as_chat(
    fake: FakeTelegram, chat_id: int, text: str, *, sender: dict, sender_chat: dict
) -> str:
    """Send a command on behalf of a chat (as Telegram shapes it) and return the reply."""
    before = len(fake.messages_to(chat_id))
    fake.push_command(chat_id, text)
    # the fake sends every command from a user: reshape the queued one (no await in between,
    # so the poller cannot have fetched it) into what Telegram sends for an anonymous admin
    # or a post signed by a channel
    message = fake._updates[-1]["message"]
    message["from"] = sender
    message["sender_chat"] = sender_chat
    replies = await eventually(
        lambda: fake.messages_to(chat_id)[before:], timeout=10, what=f"reply to {text}"
    )
    return str(replies[0].visible_text)


async def test_anonymous_admins_and_channels_are_known_by_their_chat_not_a_shared_account(
    repo: NotifierRepository, bot: Bot, fake_telegram: FakeTelegram
) -> None:
    """An anonymous group admin was told to have 1087968824 added to TELEGRAM_ADMIN_IDS: the
    id of GroupAnonymousBot, which every anonymous admin on Telegram shares. An operator who
    did so (or added Channel_Bot's) let any group on Telegram change its alerts."""
    ids = f"{GROUP_ANONYMOUS_BOT['id']},{CHANNEL_BOT['id']},{ADMIN_GROUP}"
    dispatcher = build_dispatcher(
        Commands(repo),
        configured_chats=(),
        rules=FilterRules(),
        admins=frozenset(NotifierSettings(telegram_admin_ids=ids).telegram_admin_ids),
    )
    poller = CommandPoller(bot, dispatcher, poll_timeout_s=5)
    stop = asyncio.Event()
    task = asyncio.create_task(poller.run(stop))
    try:
        other = {"id": OTHER_GROUP, "type": "supergroup", "title": "someone else's group"}
        reply = await command_as_chat(
            fake_telegram, OTHER_GROUP, "/subscribe", sender=GROUP_ANONYMOUS_BOT, sender_chat=other
        )
        assert reply.startswith("⛔") and str(GROUP_ANONYMOUS_BOT["id"]) not in reply
        assert str(OTHER_GROUP) in reply  # the id the operator may really add
        channel = {"id": STRANGER_CHANNEL, "type": "channel", "title": "a stranger's channel"}
        reply = await command_as_chat(
            fake_telegram, OTHER_GROUP, "/subscribe btc", sender=CHANNEL_BOT, sender_chat=channel
        )
        assert reply.startswith("⛔") and str(STRANGER_CHANNEL) in reply
        assert await repo.targets("BTC", 90.0, ()) == []
        # the admin group's own anonymous admin still can
        mine = {"id": ADMIN_GROUP, "type": "supergroup", "title": "the operator's group"}
        reply = await command_as_chat(
            fake_telegram,
            ADMIN_GROUP,
            "/subscribe btc",
            sender=GROUP_ANONYMOUS_BOT,
            sender_chat=mine,
        )
        assert reply.startswith("✅")
        assert await repo.targets("BTC", 90.0, ()) == [ADMIN_GROUP]
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)
