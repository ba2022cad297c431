"""Telegram conventions: a command menu at start-up, and groups upgraded to supergroups."""

from __future__ import annotations

import asyncio

import pytest
from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import BotCommand

from perpsignal_notifier.commands import Commands
from perpsignal_notifier.delivery import Deliverer
from perpsignal_notifier.filters import FilterRules
from perpsignal_notifier.ratelimit import TelegramLimits
from perpsignal_notifier.repository import NotifierRepository
from perpsignal_notifier.service import AlertHandler
from perpsignal_notifier.telegram import COMMANDS, BotSender, CommandPoller, build_dispatcher
from tests.fakes.telegram import FakeTelegram
from tests.helpers import eventually
from tests.unit.notifier.builders import judged
from tests.unit.notifier.conftest import VirtualClock
from tests.unit.notifier.test_commands import command

pytestmark = pytest.mark.db

GROUP, SUPERGROUP = -4000000001, -1004000000001


def make_handler(
    repo: NotifierRepository, bot: Bot, clock: VirtualClock, configured: tuple[int, ...] = ()
) -> AlertHandler:
    limits = TelegramLimits(
        global_per_s=30, group_per_min=20, private_per_s=1, clock=clock, sleep=clock.sleep
    )
    deliverer = Deliverer(repo=repo, send=BotSender(bot), limits=limits, sleep=clock.sleep)
    return AlertHandler(
        repo=repo,
        deliverer=deliverer,
        rules=FilterRules(cooldown_s=0),
        configured_chats=configured,
    )


async def test_command_menu_is_published_when_polling_starts(
    repo: NotifierRepository, bot: Bot, fake_telegram: FakeTelegram
) -> None:
    rules = FilterRules()
    poller = CommandPoller(
        bot, build_dispatcher(Commands(repo), configured_chats=(), rules=rules), poll_timeout_s=1
    )
    stop = asyncio.Event()
    task = asyncio.create_task(poller.run(stop))
    try:
        await eventually(lambda: bool(fake_telegram.commands), timeout=5)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
    menu = {c["command"] for c in fake_telegram.commands}
    # every command the bot answers is in the menu, except /start (clients send it)
    assert menu == set(COMMANDS) - {"start"}
    assert all(c["description"] for c in fake_telegram.commands)


async def test_fake_rejects_a_menu_telegram_would_reject(
    bot: Bot, fake_telegram: FakeTelegram
) -> None:
    with pytest.raises(TelegramBadRequest, match="BOT_COMMAND_INVALID"):
        await bot.set_my_commands([BotCommand(command="Sub-Scribe", description="x")])
    assert fake_telegram.commands == []


async def test_a_group_upgraded_to_a_supergroup_keeps_its_alerts_and_subscriptions(
    repo: NotifierRepository, bot: Bot, fake_telegram: FakeTelegram, clock: VirtualClock
) -> None:
    await repo.ensure_chat(GROUP, "group", "Traders")
    await repo.subscribe(GROUP, ["BTC"], 50)
    fake_telegram.migrate(GROUP, SUPERGROUP)
    handler = make_handler(repo, bot, clock)

    first = judged()
    await handler.handle(first)  # 400 migrate_to_chat_id: followed, the alert is not lost
    await handler.handle(first)  # redelivered: neither chat gets it twice
    await handler.handle(judged(minutes=60))  # the next alert goes straight to the new id

    assert [m.chat_id for m in fake_telegram.messages] == [SUPERGROUP, SUPERGROUP]
    to_old = [
        p for m, p in fake_telegram.calls if m == "sendMessage" and p["chat_id"] == str(GROUP)
    ]
    assert len(to_old) == 1
    info = await repo.chat_info(SUPERGROUP)
    assert info.subscriptions == (("BTC", 50.0),) and not info.blocked
    assert (await repo.chat_info(GROUP)).subscriptions == ()
    rows = {r.chat_id: r.status for r in await repo.deliveries(first.event_id)}
    assert rows == {GROUP: "migrated", SUPERGROUP: "sent"}


async def test_a_configured_group_is_reached_under_its_new_id(
    repo: NotifierRepository, bot: Bot, fake_telegram: FakeTelegram, clock: VirtualClock
) -> None:
    fake_telegram.migrate(GROUP, SUPERGROUP)
    handler = make_handler(repo, bot, clock, configured=(GROUP,))  # TELEGRAM_CHAT_IDS unchanged
    await handler.handle(judged())
    await handler.handle(judged("ETHUSDT", price=3000.0))
    assert [m.chat_id for m in fake_telegram.messages] == [SUPERGROUP, SUPERGROUP]
    assert fake_telegram.rejected == [("sendMessage", 400, "migrated")]


async def test_an_admin_group_upgraded_to_a_supergroup_keeps_its_rights_and_destination(
    repo: NotifierRepository, bot: Bot, fake_telegram: FakeTelegram, clock: VirtualClock
) -> None:
    """TELEGRAM_ADMIN_IDS and TELEGRAM_CHAT_IDS name the group; Telegram upgrades it (200
    members, a setting changed) and it speaks from its new id: its admins were refused
    every change ("⛔ Only the bot's admins"), and /status said it was no destination,
    while alerts did reach it under the new id."""
    fake_telegram.migrate(GROUP, SUPERGROUP)
    await make_handler(repo, bot, clock, configured=(GROUP,)).handle(judged())  # followed
    dispatcher = build_dispatcher(
        Commands(repo), configured_chats=(GROUP,), rules=FilterRules(), admins=frozenset({GROUP})
    )
    poller = CommandPoller(bot, dispatcher, poll_timeout_s=5)
    stop = asyncio.Event()
    task = asyncio.create_task(poller.run(stop))
    try:
        reply = await command(fake_telegram, SUPERGROUP, "/subscribe eth")
        assert reply == "✅ Subscribed to ETH."
        assert await repo.targets("ETH", 90.0, ()) == [SUPERGROUP]
        assert "Default destination: yes" in await command(fake_telegram, SUPERGROUP, "/status")
        # a group that never was an admin is still refused
        reply = await command(fake_telegram, -1009999999999, "/subscribe eth")
        assert reply.startswith("⛔")
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)


async def test_the_upgrade_service_message_is_followed_before_any_alert(
    repo: NotifierRepository, bot: Bot, fake_telegram: FakeTelegram
) -> None:
    """Telegram tells the bot in the chat itself (`migrate_from_chat_id`) when a group becomes
    a supergroup; only a send's 400 was followed, so until the next alert the new chat had
    neither the group's subscriptions nor its admin rights."""
    await repo.ensure_chat(GROUP, "group", "Traders")
    await repo.subscribe(GROUP, ["BTC"], 50)
    dispatcher = build_dispatcher(
        Commands(repo), configured_chats=(), rules=FilterRules(), admins=frozenset({GROUP})
    )
    poller = CommandPoller(bot, dispatcher, poll_timeout_s=5)
    stop = asyncio.Event()
    task = asyncio.create_task(poller.run(stop))
    try:
        # the service message as Telegram sends it in the new supergroup (the fake sends
        # every update as a user's text: reshaped before the poller can fetch it)
        update_id = fake_telegram.push_command(SUPERGROUP, "upgraded", title="Traders")
        message = fake_telegram._updates[-1]["message"]
        del message["text"]
        message["migrate_from_chat_id"] = GROUP
        await eventually(lambda: poller.handled >= 1, timeout=10, what=f"update {update_id}")
        assert (await repo.chat_info(SUPERGROUP)).subscriptions == (("BTC", 50.0),)
        assert await repo.targets("BTC", 90.0, ()) == [SUPERGROUP]
        reply = await command(fake_telegram, SUPERGROUP, "/subscribe eth")
        assert reply == "✅ Subscribed to ETH."
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)
    assert fake_telegram.messages_to(GROUP) == []  # nothing was sent to find out
