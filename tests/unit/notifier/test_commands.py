"""Bot commands through real long polling against the fake Bot API, stored in PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiogram import Bot

from perpsignal_notifier.commands import Commands, parse_subscribe_args
from perpsignal_notifier.delivery import Deliverer
from perpsignal_notifier.filters import FilterRules, base_asset, unscaled
from perpsignal_notifier.ratelimit import TelegramLimits
from perpsignal_notifier.repository import NotifierRepository
from perpsignal_notifier.service import AlertHandler
from perpsignal_notifier.telegram import BotSender, CommandPoller, build_dispatcher
from tests.fakes.telegram import FakeTelegram
from tests.helpers import eventually
from tests.unit.notifier.builders import judged
from tests.unit.notifier.conftest import VirtualClock

pytestmark = pytest.mark.db

USER = 4242
GROUP = -100777


@pytest.fixture
async def poller(repo: NotifierRepository, bot: Bot) -> AsyncIterator[CommandPoller]:
    dispatcher = build_dispatcher(
        Commands(repo), configured_chats=(GROUP,), rules=FilterRules(min_score=65)
    )
    poller = CommandPoller(bot, dispatcher, poll_timeout_s=5)
    stop = asyncio.Event()
    task = asyncio.create_task(poller.run(stop))
    try:
        yield poller
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)


async def command(fake: FakeTelegram, chat_id: int, text: str) -> str:
    """Send a command as a user and return the bot's reply (visible text)."""
    before = len(fake.messages_to(chat_id))
    fake.push_command(chat_id, text)
    replies = await eventually(
        lambda: fake.messages_to(chat_id)[before:], timeout=10, what=f"reply to {text}"
    )
    return str(replies[0].visible_text)


async def test_subscribe_unsubscribe_mute_round_trip(
    poller: CommandPoller, repo: NotifierRepository, fake_telegram: FakeTelegram
) -> None:
    reply = await command(fake_telegram, USER, "/subscribe btc ETHUSDT 70")
    assert reply == "✅ Subscribed to BTC, ETH with score ≥ 70."
    info = await repo.chat_info(USER)
    assert info.subscriptions == (("BTC", 70.0), ("ETH", 70.0))
    # the subscription decides who gets a BTC alert of strength 78, but not one of 60
    assert await repo.targets("BTC", 78.0, ()) == [USER]
    assert await repo.targets("BTC", 60.0, ()) == []

    reply = await command(fake_telegram, USER, "/unsubscribe eth")
    assert reply == "Removed 1 subscription(s): ETH."
    assert (await repo.chat_info(USER)).subscriptions == (("BTC", 70.0),)

    assert await command(fake_telegram, USER, "/mute") == "🔕 Alerts muted in this chat."
    assert await repo.targets("BTC", 78.0, ()) == []
    status = await command(fake_telegram, USER, "/status")
    assert "Alerts: 🔕 muted" in status
    assert "• BTC (score ≥ 70)" in status
    assert "score ≥ 65" in status  # the global filter is shown too
    assert await command(fake_telegram, USER, "/unmute") == "🔔 Alerts resumed."
    assert await repo.targets("BTC", 78.0, ()) == [USER]

    reply = await command(fake_telegram, USER, "/unsubscribe")
    assert reply == "Removed all 1 subscription(s)."
    assert await repo.targets("BTC", 78.0, ()) == []


async def test_group_commands_addressed_to_the_bot(
    poller: CommandPoller, repo: NotifierRepository, fake_telegram: FakeTelegram
) -> None:
    reply = await command(fake_telegram, GROUP, "/subscribe@perpsignal_test_bot")
    assert reply == "✅ Subscribed to every coin."
    assert await repo.targets("DOGE", None, ()) == [GROUP]
    status = await command(fake_telegram, GROUP, "/status")
    assert "Default destination: yes" in status
    assert "• every coin" in status


async def test_signal_shows_the_latest_judged_signal(
    poller: CommandPoller, repo: NotifierRepository, fake_telegram: FakeTelegram
) -> None:
    assert await command(fake_telegram, USER, "/signal BTC") == "No judged signal for BTC yet."
    await repo.record_latest(judged(score=70.0, minutes=5), "BTC")
    await repo.record_latest(judged(score=90.0, minutes=1), "BTC")  # older, arrives late
    reply = await command(fake_telegram, USER, "/signal btc")
    assert reply.startswith("🟢 LONG BTCUSDT · 1h")
    assert "Score 70.0/100" in reply


async def test_help_and_bad_arguments(
    poller: CommandPoller, repo: NotifierRepository, fake_telegram: FakeTelegram
) -> None:
    help_text = await command(fake_telegram, USER, "/start")
    for name in ("/subscribe", "/unsubscribe", "/signal", "/status", "/mute", "/unmute"):
        assert name in help_text
    reply = await command(fake_telegram, USER, "/subscribe BTC 150")
    assert reply == "⚠️ the minimum score must be between 0 and 100"
    assert (await repo.chat_info(USER)).subscriptions == ()
    assert await command(fake_telegram, USER, "/signal") == "Usage: /signal BTC"


def test_parse_subscribe_args() -> None:
    assert parse_subscribe_args("BTC eth 55.5") == (["BTC", "ETH"], 55.5)
    assert parse_subscribe_args("") == (["*"], None)
    assert parse_subscribe_args("60") == (["*"], 60.0)
    with pytest.raises(ValueError, match="not a coin"):
        parse_subscribe_args("BTC; DROP")


async def test_an_html_error_page_pauses_polling_instead_of_ending_it(
    repo: NotifierRepository, bot: Bot, fake_telegram: FakeTelegram
) -> None:
    # nginx's 502 page is no Bot API JSON (aiogram: ClientDecodeError, no TelegramAPIError);
    # the poller runs in the service's task group, so an escaping error stops the notifier
    fake_telegram.fail("setMyCommands", status=502, times=1, html=True)
    fake_telegram.fail("getUpdates", status=502, times=1, html=True)
    dispatcher = build_dispatcher(Commands(repo), configured_chats=(), rules=FilterRules())
    poller = CommandPoller(bot, dispatcher, poll_timeout_s=5)
    stop = asyncio.Event()
    task = asyncio.create_task(poller.run(stop))
    try:
        reply = await command(fake_telegram, USER, "/help")
        assert "/subscribe" in reply
        assert not task.done()
        assert fake_telegram.count("getUpdates") >= 2  # the failed poll, then the good one
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)


BIDI = "\u202e\u2066\u2067\u200b\u200f\ufeff"


async def test_hostile_arguments_get_an_escaped_bounded_reply(
    poller: CommandPoller, repo: NotifierRepository, fake_telegram: FakeTelegram
) -> None:
    # tags in an argument are shown as text, never parsed (Telegram would refuse the reply)
    reply = await command(fake_telegram, USER, "/signal <b>x</b>")
    assert reply == "⚠️ not a coin: <B>X<B>"
    assert "&lt;B&gt;X&lt;B&gt;" in fake_telegram.messages_to(USER)[-1].text
    # a huge argument: a short reply, not one Telegram refuses as too long (no reply at all)
    for text in ("/signal " + "A" * 5000, "/subscribe " + "B" * 5000, "/unsubscribe " + "C" * 5000):
        reply = await command(fake_telegram, USER, text)
        assert len(reply) < 300, reply[:80]
    assert (await repo.chat_info(USER)).subscriptions == ()
    # bidi and invisible characters cannot reorder or hide part of the reply
    reply = await command(fake_telegram, USER, f"/signal {BIDI[0]}CTB{BIDI[1:]}")
    assert reply == "No judged signal for CTB yet."
    reply = await command(fake_telegram, USER, "/subscribe BTC\u202e 50")
    assert not set(reply) & set(BIDI)
    # a link or a mention in an argument is not made tappable in the reply
    await command(fake_telegram, USER, "/signal t.me/evil")
    await command(fake_telegram, USER, "/unsubscribe @admin evil.example")
    assert all(m.auto_entities == [] for m in fake_telegram.messages_to(USER))
    assert all(m.link_preview_options == {"is_disabled": True} for m in fake_telegram.messages)


async def test_an_argument_the_database_refuses_does_not_stall_the_commands(
    poller: CommandPoller, repo: NotifierRepository, fake_telegram: FakeTelegram
) -> None:
    # PostgreSQL refuses NUL in text; Telegram would not send one, a fake or a bug might
    reply = await command(fake_telegram, USER, "/signal BT\x00C")
    assert reply == "No judged signal for BTC yet."
    reply = await command(fake_telegram, USER, "/unsubscribe E\x00TH")
    assert reply == "No subscription to remove: ETH."
    assert await command(fake_telegram, USER, "/mute") == "🔕 Alerts muted in this chat."


async def test_a_command_that_fails_on_our_side_still_gets_a_reply(
    poller: CommandPoller, repo: NotifierRepository, fake_telegram: FakeTelegram
) -> None:
    """A stored latest signal the contract now refuses (a trade plan on the wrong side of
    the price, kept by an older version) made /signal raise: the user got no reply at all."""
    good = judged(direction="LONG")
    vol = good.ai_verdict_layer.volatility_metrics
    assert vol.stop_loss_price is not None and vol.take_profit_price is not None
    swapped = vol.model_copy(
        update={"stop_loss_price": vol.take_profit_price, "take_profit_price": vol.stop_loss_price}
    )
    layer = good.ai_verdict_layer.model_copy(update={"volatility_metrics": swapped})
    await repo.record_latest(good.model_copy(update={"ai_verdict_layer": layer}), "BTC")
    reply = await command(fake_telegram, USER, "/signal BTC")
    assert reply == "⚠️ That command failed on our side; the operator's log says why."
    # the bot goes on answering
    assert await command(fake_telegram, USER, "/mute") == "🔕 Alerts muted in this chat."


async def test_status_of_a_chat_with_hundreds_of_subscriptions_still_gets_a_reply(
    poller: CommandPoller, repo: NotifierRepository, fake_telegram: FakeTelegram
) -> None:
    """Every subscription was listed: past ~150 coins with a floor the reply passed Telegram's
    4096 characters, Telegram refused it and /status answered nothing at all."""
    coins = [f"COIN{i:03d}" for i in range(300)]
    for start in range(0, len(coins), 50):  # at most 50 coins per command
        batch = " ".join(coins[start : start + 50])
        reply = await command(fake_telegram, USER, f"/subscribe {batch} 55.5")
        assert reply.startswith("✅ Subscribed to COIN")
    assert len((await repo.chat_info(USER)).subscriptions) == 300
    status = await command(fake_telegram, USER, "/status")
    assert fake_telegram.rejected == []
    lines = status.splitlines()
    assert "Subscriptions (300):" in lines
    shown = [line for line in lines if line.startswith("• COIN")]
    assert lines[lines.index("Subscriptions (300):") + 1] == "• COIN000 (score ≥ 55.5)"
    assert 100 < len(shown) < 300
    assert f"• … and {300 - len(shown)} more" in lines
    assert lines[-1].startswith("Filters: score ≥ 65")  # the global filters are still shown


async def test_a_coin_subscription_covers_its_scaled_contracts_and_says_so(
    poller: CommandPoller,
    repo: NotifierRepository,
    bot: Bot,
    fake_telegram: FakeTelegram,
    clock: VirtualClock,
) -> None:
    # Binance trades PEPE as 1000PEPEUSDT (1,000 PEPE a contract): `/subscribe PEPE` used to
    # match no alert of it, and the user never heard why
    for symbol in ("1000PEPEUSDT", "PEPECOINUSDT"):
        await repo.record_latest(judged(symbol), base_asset(symbol))
    reply = await command(fake_telegram, USER, "/subscribe PEPE")
    assert reply == "✅ Subscribed to PEPE.\nPEPE includes its contracts 1000PEPEUSDT."

    limits = TelegramLimits(
        global_per_s=30, group_per_min=20, private_per_s=1, clock=clock, sleep=clock.sleep
    )
    handler = AlertHandler(
        repo=repo,
        deliverer=Deliverer(repo=repo, send=BotSender(bot), limits=limits, sleep=clock.sleep),
        rules=FilterRules(cooldown_s=0),
        configured_chats=(),
    )
    before = len(fake_telegram.messages_to(USER))
    await handler.handle(judged("1000PEPEUSDT"))
    await handler.handle(judged("PEPECOINUSDT"))  # another coin, whatever its name starts with
    got = fake_telegram.messages_to(USER)[before:]
    assert [m.visible_text.split(" · ")[0] for m in got] == ["🟢 LONG 1000PEPEUSDT"]

    # /signal PEPE finds the contract's signal too
    assert (await command(fake_telegram, USER, "/signal pepe")).startswith("🟢 LONG 1000PEPEUSDT")


async def test_unsubscribing_a_coin_removes_its_scaled_contracts_as_subscribe_covers_them(
    poller: CommandPoller, repo: NotifierRepository, fake_telegram: FakeTelegram
) -> None:
    # `/unsubscribe PEPE` used to leave a `/subscribe 1000PEPE` in place (1000PEPEUSDT alerts
    # kept coming) while replying "Removed 0 subscription(s): PEPE."
    await command(fake_telegram, USER, "/subscribe 1000PEPEUSDT 1000000MOG PEPECOIN BTC")
    assert await repo.targets("1000PEPE", None, ()) == [USER]

    reply = await command(fake_telegram, USER, "/unsubscribe pepe")
    assert reply == "Removed 1 subscription(s): 1000PEPE."
    assert await repo.targets("1000PEPE", None, ()) == []
    # another coin whatever its name starts with, and a contract of another coin, are kept
    assert [a for a, _ in (await repo.chat_info(USER)).subscriptions] == [
        "1000000MOG",
        "BTC",
        "PEPECOIN",
    ]

    # a contract names itself alone, as `/subscribe 1000MOG` does
    await command(fake_telegram, USER, "/subscribe MOG")
    reply = await command(fake_telegram, USER, "/unsubscribe 1000000MOG")
    assert reply == "Removed 1 subscription(s): 1000000MOG."
    reply = await command(fake_telegram, USER, "/unsubscribe MOG ETH")
    assert reply == "Removed 1 subscription(s): MOG."  # what was removed, not what was asked
    assert await command(fake_telegram, USER, "/unsubscribe ETH") == (
        "No subscription to remove: ETH."
    )
    assert [a for a, _ in (await repo.chat_info(USER)).subscriptions] == ["BTC", "PEPECOIN"]


@pytest.mark.parametrize(
    ("asset", "coin"),
    [
        ("1000PEPE", "PEPE"),
        ("1000SHIB", "SHIB"),
        ("1000BONK", "BONK"),
        ("1MBABYDOGE", "BABYDOGE"),
        ("1000000MOG", "MOG"),
        ("10000LADYS", "LADYS"),
        ("PEPECOIN", "PEPECOIN"),  # not PEPE
        ("1INCH", "1INCH"),  # a coin whose name starts with a digit
        ("1000", "1000"),
        ("10001X", "10001X"),  # not a multiple venues use
    ],
)
def test_unscaled_strips_only_the_venues_multiples(asset: str, coin: str) -> None:
    assert unscaled(asset) == coin
