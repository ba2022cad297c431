"""Delivery through the ledger against the fake Bot API: targets, suppression, faults, dedupe."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from aiogram import Bot
from prometheus_client import REGISTRY

from perpsignal_common.errors import PermanentError
from perpsignal_common.events.values import MAX_ID_LENGTH
from perpsignal_notifier.delivery import Alert, Deliverer
from perpsignal_notifier.filters import FilterRules, base_asset
from perpsignal_notifier.ratelimit import TelegramLimits
from perpsignal_notifier.repository import NotifierRepository
from perpsignal_notifier.service import AlertHandler
from perpsignal_notifier.telegram import BotSender
from tests.fakes.telegram import FakeTelegram
from tests.helpers import eventually
from tests.unit.notifier.builders import judged, listing, mss
from tests.unit.notifier.conftest import VirtualClock

pytestmark = pytest.mark.db

CONFIGURED = -1001


def make_handler(
    repo: NotifierRepository,
    bot: Bot,
    clock: VirtualClock | None,
    *,
    rules: FilterRules | None = None,
    configured: tuple[int, ...] = (CONFIGURED,),
    resend_uncertain: bool = False,
) -> AlertHandler:
    kwargs = {} if clock is None else {"clock": clock, "sleep": clock.sleep}
    limits = TelegramLimits(global_per_s=30, group_per_min=20, private_per_s=1, **kwargs)  # type: ignore[arg-type]
    deliverer = Deliverer(
        repo=repo,
        send=BotSender(bot),
        limits=limits,
        max_attempts=4,
        resend_uncertain=resend_uncertain,
        **({} if clock is None else {"sleep": clock.sleep}),  # type: ignore[arg-type]
    )
    return AlertHandler(
        repo=repo,
        deliverer=deliverer,
        rules=rules or FilterRules(cooldown_s=600),
        configured_chats=configured,
    )


async def test_signal_goes_once_to_configured_and_matching_subscribers(
    repo: NotifierRepository, bot: Bot, fake_telegram: FakeTelegram, clock: VirtualClock
) -> None:
    await repo.subscribe(222, ["BTC"], 70)  # strength 78 >= 70: yes
    await repo.subscribe(333, ["ETH"], None)  # other coin: no
    await repo.subscribe(444, ["BTC"], 90)  # floor above 78: no
    await repo.subscribe(555, ["*"], None)  # everything, but muted: no
    await repo.set_muted(555, True)
    await repo.subscribe(666, ["*"], None)  # everything: yes
    handler = make_handler(repo, bot, clock)
    event = judged()

    await handler.handle(event)
    await handler.handle(event)  # redelivered after a crash: no second message

    assert sorted(m.chat_id for m in fake_telegram.messages) == [CONFIGURED, 222, 666]
    assert all("LONG BTCUSDT" in m.visible_text for m in fake_telegram.messages)
    assert all(m.parse_mode == "HTML" for m in fake_telegram.messages)
    rows = await repo.deliveries(event.event_id)
    assert {(r.chat_id, r.status) for r in rows} == {
        (CONFIGURED, "sent"),
        (222, "sent"),
        (666, "sent"),
    }


async def test_suppressed_and_cooled_down_signals_send_nothing(
    repo: NotifierRepository, bot: Bot, fake_telegram: FakeTelegram, clock: VirtualClock
) -> None:
    handler = make_handler(repo, bot, clock, rules=FilterRules(min_score=70, cooldown_s=600))
    await handler.handle(judged(verdict="SKIP", risk_mode="AVOID", suppressed=True))
    await handler.handle(judged(score=66.0, minutes=1))  # strength below 70
    await handler.handle(judged(direction="NEUTRAL", score=50.0, minutes=2))
    assert fake_telegram.messages == []

    await handler.handle(judged(minutes=3))  # alerts and starts BTC's 10-minute cooldown
    await handler.handle(judged(direction="SHORT", score=20.0, minutes=8))  # choppy: quiet
    await handler.handle(judged("ETHUSDT", price=3000.0, minutes=8))  # other symbol: alerts
    await handler.handle(judged(score=80.0, minutes=13))  # cooldown over: alerts
    texts = [m.visible_text.splitlines()[0] for m in fake_telegram.messages]
    assert texts == ["🟢 LONG BTCUSDT · 1h", "🟢 LONG ETHUSDT · 1h", "🟢 LONG BTCUSDT · 1h"]
    assert handler.stats.suppressed == {
        "skip_avoid": 1,
        "below_min_score": 1,
        "neutral": 1,
        "cooldown": 1,
    }


async def test_an_upgraded_call_passes_the_cooldown_a_weaker_one_does_not(
    repo: NotifierRepository, bot: Bot, fake_telegram: FakeTelegram, clock: VirtualClock
) -> None:
    """A WAIT alert started the symbol's cooldown, and the CONFIRM it announced a few
    minutes later was held back as "cooldown": the trader heard "wait" and never "go"."""
    handler = make_handler(repo, bot, clock, rules=FilterRules(cooldown_s=600))
    await handler.handle(judged(verdict="WAIT", minutes=0))  # alerts, starts the cooldown
    await handler.handle(judged(verdict="CONFIRM", minutes=3))  # the upgrade: alerts
    await handler.handle(judged(verdict="WAIT", minutes=4))  # weaker again: quiet
    await handler.handle(judged(verdict="CONFIRM", minutes=5))  # a repeat: quiet
    await handler.handle(judged(direction="SHORT", score=20.0, minutes=6))  # choppy: quiet
    verdicts = [m.visible_text for m in fake_telegram.messages]
    assert len(verdicts) == 2, verdicts
    assert "WAIT" in verdicts[0] and "CONFIRM" in verdicts[1]
    assert handler.stats.suppressed == {"cooldown": 3}


async def test_mss_and_listing_alerts_reach_their_audience(
    repo: NotifierRepository, bot: Bot, fake_telegram: FakeTelegram, clock: VirtualClock
) -> None:
    await repo.subscribe(222, ["PEPE"], None)
    await repo.subscribe(333, ["BTC"], None)
    handler = make_handler(repo, bot, clock)
    await handler.handle(mss(score=82.0))
    await handler.handle(mss("DOGE", score=40.0))  # below the MSS floor of 60
    await handler.handle(listing())
    got = sorted((m.chat_id, m.visible_text.splitlines()[0]) for m in fake_telegram.messages)
    assert got == [
        (CONFIGURED, "🆕 New listing: NEWUSDT on binance"),
        (CONFIGURED, "🚀 MSS PEPE (Pepe <Frog> & Co) · tier A"),
        (222, "🚀 MSS PEPE (Pepe <Frog> & Co) · tier A"),
    ]


async def test_429_retry_after_is_honoured(
    repo: NotifierRepository, bot: Bot, fake_telegram: FakeTelegram
) -> None:
    fake_telegram.fail("sendMessage", status=429, retry_after=1, times=1)
    handler = make_handler(repo, bot, None)  # real time: the wait itself is the point
    started = time.monotonic()
    await handler.handle(judged())
    calls = fake_telegram.count("sendMessage")
    assert calls == 2
    assert len(fake_telegram.messages) == 1
    assert fake_telegram.messages[0].at - started >= 1.0


async def test_blocked_chat_is_marked_and_skipped_afterwards(
    repo: NotifierRepository, bot: Bot, fake_telegram: FakeTelegram, clock: VirtualClock
) -> None:
    await repo.subscribe(222, ["*"], None)
    fake_telegram.block(222)
    handler = make_handler(repo, bot, clock)
    await handler.handle(judged())  # no exception: a blocked chat is not a failure
    assert (await repo.chat_info(222)).blocked
    await handler.handle(judged("ETHUSDT", price=3000.0))
    to_blocked = [p for m, p in fake_telegram.calls if m == "sendMessage" and p["chat_id"] == "222"]
    assert len(to_blocked) == 1  # tried once, then never again
    assert [m.chat_id for m in fake_telegram.messages] == [CONFIGURED, CONFIGURED]


async def test_5xx_and_timeouts_are_retried_with_backoff(
    repo: NotifierRepository, bot: Bot, fake_telegram: FakeTelegram, clock: VirtualClock
) -> None:
    fake_telegram.fail("sendMessage", status=502, times=2)
    fake_telegram.slow(2.0, times=1, deliver=False)  # the bot's 0.5 s timeout fires first
    handler = make_handler(repo, bot, clock)
    await handler.handle(judged())
    assert fake_telegram.count("sendMessage") == 4
    assert len(fake_telegram.messages) == 1
    assert len(clock.sleeps) >= 3  # one backoff before each retry
    rows = await repo.deliveries()
    assert [(r.status, r.attempts) for r in rows] == [("sent", 4)]


async def test_html_error_page_is_retried_like_a_5xx_and_the_alert_is_not_lost(
    repo: NotifierRepository, bot: Bot, fake_telegram: FakeTelegram, clock: VirtualClock
) -> None:
    # nginx's "502 Bad Gateway" page is not Bot API JSON: aiogram raises ClientDecodeError,
    # which is no TelegramAPIError; it must not leave the ledger row in `sending` (a retry
    # of the event would then read a crash and never send)
    fake_telegram.fail("sendMessage", status=502, times=2, html=True)
    handler = make_handler(repo, bot, clock)
    event = judged()
    for _ in range(3):  # the consumer loop retries an event whose handler raised
        try:
            await handler.handle(event)
            break
        except Exception:  # retried like the consumer loop does
            continue
    assert fake_telegram.count("sendMessage") == 3
    assert [m.chat_id for m in fake_telegram.messages] == [CONFIGURED]
    rows = await repo.deliveries()
    assert [(r.status, r.attempts) for r in rows] == [("sent", 3)]


async def test_undeliverable_alert_is_dead_lettered_with_reason_and_replay_retries_only_it(
    repo: NotifierRepository, bot: Bot, fake_telegram: FakeTelegram, clock: VirtualClock
) -> None:
    await repo.subscribe(222, ["*"], None)
    fake_telegram.fail("sendMessage", status=500, times=None, chat_id=222)
    handler = make_handler(repo, bot, clock)
    event = judged()
    with pytest.raises(PermanentError, match="chat 222: TelegramServerError"):
        await handler.handle(event)
    assert fake_telegram.count("sendMessage") == 1 + 4  # configured chat once, 222 four times
    assert {r.chat_id: r.status for r in await repo.deliveries()} == {
        CONFIGURED: "sent",
        222: "failed",
    }
    fake_telegram.clear_faults()
    await handler.handle(event)  # a replay from the DLQ
    assert sorted(m.chat_id for m in fake_telegram.messages) == [CONFIGURED, 222]


async def test_bad_request_is_not_retried(
    repo: NotifierRepository, bot: Bot, fake_telegram: FakeTelegram, clock: VirtualClock
) -> None:
    fake_telegram.fail(
        "sendMessage", status=400, times=None, description="Bad Request: message is too long"
    )
    handler = make_handler(repo, bot, clock)
    with pytest.raises(PermanentError, match="message is too long"):
        await handler.handle(judged())
    assert fake_telegram.count("sendMessage") == 1


async def test_send_interrupted_by_a_crash_is_not_repeated_unless_configured(
    repo: NotifierRepository, bot: Bot, fake_telegram: FakeTelegram, clock: VirtualClock
) -> None:
    event = judged()
    # what a SIGKILL between the HTTP call and the `sent` mark leaves behind
    assert await repo.begin_send(event.event_id, CONFIGURED, "signal", event.symbol) is None
    await make_handler(repo, bot, clock).handle(event)
    assert fake_telegram.messages == []
    assert [r.status for r in await repo.deliveries()] == ["uncertain"]

    await make_handler(repo, bot, clock, resend_uncertain=True).handle(event)
    assert len(fake_telegram.messages) == 1


async def test_without_telegram_events_are_consumed_silently(
    repo: NotifierRepository, fake_telegram: FakeTelegram
) -> None:
    handler = AlertHandler(
        repo=repo, deliverer=None, rules=FilterRules(), configured_chats=(CONFIGURED,)
    )
    await handler.handle(judged())
    await handler.handle(listing())
    assert fake_telegram.calls == []
    assert await repo.deliveries() == []
    assert (await repo.latest_signal("BTC")) is not None  # /signal still has data later


async def test_bot_token_never_appears_in_errors_logs_or_the_ledger(
    repo: NotifierRepository,
    bot: Bot,
    fake_telegram: FakeTelegram,
    clock: VirtualClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # aiohttp names the request URL (/bot<token>/sendMessage) in some errors, e.g. a proxy's
    # redirect loop, and aiogram copies that text into TelegramNetworkError
    secret = fake_telegram.token.split(":", 1)[1]
    fake_telegram.fail("sendMessage", status=307, times=None)
    handler = make_handler(repo, bot, clock)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(PermanentError) as failure:
        await handler.handle(judged())
    assert "TooManyRedirects" in str(failure.value)  # the reason is still there ...
    assert secret not in str(failure.value)  # ... without the token
    assert secret not in caplog.text
    rows = await repo.deliveries()
    assert rows and all(secret not in (r.error or "") for r in rows)


@pytest.mark.parametrize("status", [429, 502])
async def test_a_crash_while_waiting_to_retry_does_not_lose_the_alert(
    repo: NotifierRepository,
    bot: Bot,
    fake_telegram: FakeTelegram,
    clock: VirtualClock,
    status: int,
) -> None:
    # Telegram refused the first attempt (nothing sent); the process dies (SIGKILL, or the
    # handler timeout cancels it) while it waits out retry_after or the backoff. The row
    # must not read as "a crash during a send" afterwards, or the alert is never sent.
    fake_telegram.fail("sendMessage", status=status, retry_after=5, times=1)

    async def killed(seconds: float) -> None:
        raise asyncio.CancelledError

    limits = TelegramLimits(global_per_s=30, group_per_min=20, private_per_s=1)
    dying = Deliverer(repo=repo, send=BotSender(bot), limits=limits, sleep=killed)
    with pytest.raises(asyncio.CancelledError):
        await dying.deliver(Alert("evt-1", "signal", "BTCUSDT", "<b>alert</b>"), [CONFIGURED])
    assert fake_telegram.messages == []

    restarted = make_handler(repo, bot, clock)._deliverer  # a new process, same ledger
    assert restarted is not None
    await restarted.deliver(Alert("evt-1", "signal", "BTCUSDT", "<b>alert</b>"), [CONFIGURED])
    assert [m.text for m in fake_telegram.messages] == ["<b>alert</b>"]
    assert [r.status for r in await repo.deliveries()] == ["sent"]


async def test_a_configured_chat_gets_alerts_again_once_the_bot_is_back(
    repo: NotifierRepository, bot: Bot, fake_telegram: FakeTelegram, clock: VirtualClock
) -> None:
    # the operator's channel (TELEGRAM_CHAT_IDS) removed the bot for a while: a channel never
    # sends /start (its posts are no `message` updates), so a blocked mark that only /start
    # clears silenced the configured destination for good
    fake_telegram.block(CONFIGURED)
    handler = make_handler(repo, bot, clock)
    await handler.handle(judged())  # 403: not an error, nothing sent
    assert fake_telegram.messages == []
    fake_telegram.clear_faults()  # an admin adds the bot back
    await handler.handle(judged("ETHUSDT", price=3000.0))
    assert [m.chat_id for m in fake_telegram.messages] == [CONFIGURED]
    assert "LONG ETHUSDT" in fake_telegram.messages[0].visible_text


async def test_an_answer_cut_mid_body_is_not_resent_unless_configured(
    repo: NotifierRepository, bot: Bot, fake_telegram: FakeTelegram, clock: VirtualClock
) -> None:
    # Telegram delivered the message and began its answer; the connection dropped mid-body.
    # Resending would duplicate it: like a crash mid-send, it is `uncertain`, not retried
    fake_telegram.cut_body(times=1)
    await make_handler(repo, bot, clock).handle(judged())
    assert fake_telegram.count("sendMessage") == 1
    assert [m.chat_id for m in fake_telegram.messages] == [CONFIGURED]
    assert [r.status for r in await repo.deliveries()] == ["uncertain"]

    fake_telegram.cut_body(times=1)  # NOTIFIER_RESEND_UNCERTAIN: never miss, may duplicate
    handler = make_handler(repo, bot, clock, resend_uncertain=True)
    await handler.handle(judged("ETHUSDT", price=3000.0))
    assert fake_telegram.count("sendMessage") == 3


async def test_a_subscriber_chat_that_no_longer_exists_does_not_dead_letter_every_alert(
    repo: NotifierRepository, bot: Bot, fake_telegram: FakeTelegram, clock: VirtualClock
) -> None:
    # a subscribed group was deleted: Telegram answers 400 "chat not found" from then on.
    # Like a 403 it is the chat that is gone, not the alert that is bad: every later alert
    # must not land in the DLQ (with a warning) because of it
    await repo.subscribe(222, ["*"], None)
    fake_telegram.fail("sendMessage", status=400, times=None, chat_id=222)
    handler = make_handler(repo, bot, clock)
    await handler.handle(judged())  # no PermanentError: the other chats are done
    assert (await repo.chat_info(222)).blocked
    await handler.handle(judged("ETHUSDT", price=3000.0))
    to_gone = [p for m, p in fake_telegram.calls if m == "sendMessage" and p["chat_id"] == "222"]
    assert len(to_gone) == 1  # tried once, then skipped
    assert [m.chat_id for m in fake_telegram.messages] == [CONFIGURED, CONFIGURED]


def sends(outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "perpsignal_notifier_sends_total", {"kind": "signal", "outcome": outcome}
    )
    return value or 0.0


class PauseGate(VirtualClock):
    """Virtual time whose 7 s pause (chat 222's retry_after) ends only once chat 333 has its
    alert: a delivery that made 333 wait for 222's pause would never end it (the test fails
    on the timeout), whatever the real I/O timing."""

    def __init__(self, fake: FakeTelegram) -> None:
        super().__init__()
        self.fake = fake

    async def sleep(self, seconds: float) -> None:
        if seconds >= 7:
            await eventually(
                lambda: any(m.chat_id == 333 for m in self.fake.messages),
                timeout=10,
                what="chat 333's alert while chat 222 is paused",
            )
        await super().sleep(seconds)


async def test_429_for_one_chat_pauses_that_chat_only_and_duplicates_nothing(
    repo: NotifierRepository, bot: Bot, fake_telegram: FakeTelegram
) -> None:
    # Telegram's answer: {"ok":false,"error_code":429,"description":"Too Many Requests: retry
    # after 7","parameters":{"retry_after":7}}, for chat 222 only
    clock = PauseGate(fake_telegram)
    await repo.subscribe(222, ["*"], None)
    await repo.subscribe(333, ["*"], None)
    fake_telegram.fail("sendMessage", status=429, retry_after=7, times=1, chat_id=222)
    handler = make_handler(repo, bot, clock)
    event = judged()
    await handler.handle(event)
    await handler.handle(event)  # a redelivery sends nothing again
    assert fake_telegram.rejected == [("sendMessage", 429, "Too Many Requests: retry after 7")]
    calls = [int(p["chat_id"]) for m, p in fake_telegram.calls if m == "sendMessage"]
    assert sorted(calls) == [CONFIGURED, 222, 222, 333]  # only the refused send is repeated
    assert sorted(m.chat_id for m in fake_telegram.messages) == [CONFIGURED, 222, 333]
    # the others did not wait for it (PauseGate), and retry_after was honoured before the retry
    assert 7 in clock.sleeps
    # the chat's own window was shut for retry_after; the bot's global window was not
    limits = handler._deliverer._limits  # type: ignore[union-attr]
    assert limits.chat(222)._paused_until >= 7
    assert limits.chat(333)._paused_until == limits.global_limit._paused_until == 0
    rows = {r.chat_id: (r.status, r.attempts) for r in await repo.deliveries(event.event_id)}
    assert rows == {CONFIGURED: ("sent", 1), 222: ("sent", 2), 333: ("sent", 1)}


async def test_unreachable_chats_are_tried_once_counted_and_do_not_hold_up_the_others(
    repo: NotifierRepository,
    bot: Bot,
    fake_telegram: FakeTelegram,
    clock: VirtualClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    for chat in (222, 333, 444):
        await repo.subscribe(chat, ["*"], None)
    fake_telegram.block(222)  # 403 "Forbidden: bot was blocked by the user"
    fake_telegram.fail("sendMessage", status=400, times=None, chat_id=333)  # chat not found
    handler = make_handler(repo, bot, clock)
    blocked_before = sends("blocked")
    caplog.set_level(logging.WARNING, logger="perpsignal_notifier.delivery")
    await handler.handle(judged())  # no exception, no dead letter
    await handler.handle(judged("ETHUSDT", price=3000.0))
    assert sorted(m.chat_id for m in fake_telegram.messages) == [CONFIGURED, CONFIGURED, 444, 444]
    calls = [int(p["chat_id"]) for m, p in fake_telegram.calls if m == "sendMessage"]
    assert calls.count(222) == 1 and calls.count(333) == 1  # never retried, then skipped
    assert sends("blocked") - blocked_before == 2
    unreachable = [r for r in caplog.records if r.getMessage().startswith("chat unreachable")]
    assert sorted(r.chat_id for r in unreachable) == [222, 333]  # type: ignore[attr-defined]


async def test_a_configured_chat_that_blocked_the_bot_is_logged_once_not_per_alert(
    repo: NotifierRepository,
    bot: Bot,
    fake_telegram: FakeTelegram,
    clock: VirtualClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # a configured chat is tried with every alert (README): one warning, then quiet until
    # it is reachable again; each refusal is still counted in the sends metric
    fake_telegram.block(CONFIGURED)
    handler = make_handler(repo, bot, clock)
    caplog.set_level(logging.WARNING, logger="perpsignal_notifier.delivery")
    blocked_before = sends("blocked")
    for minutes, symbol in enumerate(("BTCUSDT", "ETHUSDT", "SOLUSDT")):
        await handler.handle(judged(symbol, minutes=minutes))
    assert fake_telegram.count("sendMessage") == 3
    assert sends("blocked") - blocked_before == 3
    warned = [r for r in caplog.records if r.getMessage().startswith("chat unreachable")]
    assert len(warned) == 1
    fake_telegram.clear_faults()  # the bot is added back: sent, and a new block warns again
    await handler.handle(judged("XRPUSDT", price=1.0, minutes=5))
    fake_telegram.block(CONFIGURED)
    await handler.handle(judged("ADAUSDT", price=1.0, minutes=6))
    warned = [r for r in caplog.records if r.getMessage().startswith("chat unreachable")]
    assert len(warned) == 2


async def test_the_longest_symbols_the_contract_allows_are_alerted(
    repo: NotifierRepository, bot: Bot, fake_telegram: FakeTelegram, clock: VirtualClock
) -> None:
    # a symbol is 1-64 word characters (and . : / + $ -): its base asset is longer than the
    # 32 characters of the asset columns, and `mss:<coin>` longer than the 64 of the
    # cooldown key; the database refused them and the alert was never sent
    await repo.subscribe(222, ["*"], None)
    handler = make_handler(repo, bot, clock)
    long_symbol = "币安人生" * 15 + "USDT"  # 64 characters
    await handler.handle(judged(long_symbol))
    await handler.handle(mss("M" * 64, score=90.0))
    await handler.handle(judged(long_symbol, minutes=1))  # in its cooldown: quiet
    firsts = sorted(m.visible_text.splitlines()[0] for m in fake_telegram.messages)
    assert firsts == [
        f"🚀 MSS {'M' * 64} (Pepe <Frog> & Co) · tier A",
        f"🚀 MSS {'M' * 64} (Pepe <Frog> & Co) · tier A",
        f"🟢 LONG {long_symbol} · 1h",
        f"🟢 LONG {long_symbol} · 1h",
    ]
    assert await repo.latest_signal(base_asset(long_symbol)) is not None  # /signal finds it


async def test_the_longest_event_ids_the_contract_allows_are_alerted_once(
    repo: NotifierRepository, bot: Bot, fake_telegram: FakeTelegram, clock: VirtualClock
) -> None:
    # an event id may have 256 characters (events/values.py), the notifier's ledger and
    # symbol state held 64: the database refused the signal, the handler was retried and the
    # event dead-lettered, so no chat ever got the alert (and /signal never showed it)
    await repo.subscribe(222, ["*"], None)
    handler = make_handler(repo, bot, clock)
    events = [
        judged().model_copy(update={"event_id": "e" * MAX_ID_LENGTH}),
        mss("PEPE", score=90.0).model_copy(update={"event_id": "m" * MAX_ID_LENGTH}),
        listing().model_copy(update={"event_id": "l" * MAX_ID_LENGTH}),
    ]
    for event in events:
        await handler.handle(event)
    for event in events:
        await handler.handle(event)  # redelivered: the ledger keeps it from going twice
    assert len(fake_telegram.messages) == 2 * 3  # each to the configured chat and 222
    rows = await repo.deliveries()
    assert sorted({r.event_id for r in rows}) == sorted(e.event_id for e in events)
    assert {r.status for r in rows} == {"sent"}
    latest = await repo.latest_signal("BTC")
    assert latest is not None and latest.event_id == events[0].event_id


async def test_a_429_on_the_last_attempt_is_not_waited_out_for_nothing(
    repo: NotifierRepository, bot: Bot, fake_telegram: FakeTelegram, clock: VirtualClock
) -> None:
    # each 429 was waited out, also the last attempt's, after which the alert failed anyway:
    # the event's lane stood still for retry_after (up to NOTIFIER_MAX_RETRY_AFTER_S) more
    fake_telegram.fail("sendMessage", status=429, retry_after=7, times=None, chat_id=CONFIGURED)
    handler = make_handler(repo, bot, clock)  # 4 attempts
    with pytest.raises(PermanentError, match="429 retry_after=7s"):
        await handler.handle(judged())
    assert fake_telegram.count("sendMessage") == 4
    # between the attempts, not after the last one (which was a 429: the reason says so); a
    # first request timed out by a loaded machine is backed off instead, not by retry_after
    answered_429 = [r for r in fake_telegram.rejected if r[1] == 429]
    assert clock.sleeps.count(7) == len(answered_429) - 1 > 0
    assert [(r.status, r.attempts) for r in await repo.deliveries()] == [("failed", 4)]
