"""The notifier as its own process: Kafka in, the fake Bot API out, PostgreSQL ledger.

The kill test is deterministic: the fake server records a message and then holds its answer,
so the SIGKILL lands exactly between "Telegram got it" and "the ledger says sent" — the
window that would duplicate without the ledger.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from perpsignal_common.embedded import free_port
from perpsignal_common.events.base import Event
from perpsignal_common.events.topics import Topic, dlq_topic
from perpsignal_common.kafka.admin import ensure_topics
from perpsignal_common.kafka.producer import EventProducer
from perpsignal_common.settings import DatabaseSettings, KafkaSettings, OpsSettings
from perpsignal_notifier.service import NotifierService
from perpsignal_notifier.settings import NotifierSettings
from tests.fakes.telegram import FakeTelegram
from tests.helpers import InLoop, ServiceProcess, TopicReader, eventually
from tests.unit.notifier.builders import judged, listing, mss

pytestmark = [pytest.mark.kafka, pytest.mark.db]

CHATS = (-1001, -1002)


def notifier_env(
    kafka_env: dict[str, str], database_url: str, fake: FakeTelegram | None, **extra: str
) -> dict[str, str]:
    env = {
        **kafka_env,
        "DATABASE_URL": database_url,
        "OPS_PORT": str(free_port()),
        "TELEGRAM_CHAT_IDS": ",".join(str(c) for c in CHATS),
        "NOTIFIER_COOLDOWN_S": "0",
        "NOTIFIER_RATE_GROUP_PER_MIN": "6000",
        "NOTIFIER_POLL_COMMANDS": "false",
        # a timed-out send is retried (a duplicate at the fake): generous under load
        "TELEGRAM_REQUEST_TIMEOUT_S": "60",
        **extra,
    }
    if fake is not None:
        env["TELEGRAM_BOT_TOKEN"] = fake.token
        env["TELEGRAM_API_BASE"] = fake.base_url
    else:
        env["TELEGRAM_BOT_TOKEN"] = ""
    return env


async def publish(kafka: KafkaSettings, events: list[Event]) -> None:
    await ensure_topics(kafka)
    producer = EventProducer(kafka, "test")
    await producer.start()
    try:
        await producer.publish_many(events)
    finally:
        await producer.stop()


def stream() -> list[Event]:
    symbols = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "DOGEUSDT")
    events: list[Event] = [judged(s, minutes=m, price=100.0 + m) for m in range(4) for s in symbols]
    events += [mss("PEPE"), mss("WIF", score=75.0), listing("NEWUSDT"), listing("FRESHUSDT")]
    return events


def headline(text: str) -> str:
    return text.splitlines()[0] + " | " + text.splitlines()[-1]


# two cold starts of a process that imports aiogram take most of this test's time
@pytest.mark.timeout(300)
async def test_kill_mid_stream_and_restart_sends_no_duplicate_and_misses_nothing(
    kafka_settings: KafkaSettings,
    kafka_env: dict[str, str],
    database_url: str,
    fake_telegram: FakeTelegram,
    tmp_path: Path,
) -> None:
    events = stream()
    await publish(kafka_settings, events)
    # one event at a time: when both chats' messages of an event are held, nothing else is
    # in flight, so the kill is exactly "sent but not yet marked" for those two
    env = notifier_env(kafka_env, database_url, fake_telegram, NOTIFIER_CONCURRENCY="1")
    held_after = 10
    fake_telegram.hold_after(held_after)

    first = ServiceProcess("notifier", env, tmp_path).start()
    try:
        await eventually(
            lambda: len(fake_telegram.messages) >= held_after + 2,
            timeout=120,
            what="messages up to the held pair",
        )
        first.kill()
    finally:
        first.kill()
    assert len(fake_telegram.messages) == held_after + 2
    fake_telegram.release()

    second = ServiceProcess("notifier", env, tmp_path).start()
    try:
        expected = len(events) * len(CHATS)
        await eventually(
            lambda: len(fake_telegram.messages) >= expected,
            timeout=120,
            what=f"{expected} messages (have {len(fake_telegram.messages)})",
        )

        # the redelivered held event must be handled too (its rows leave "sending"); it may
        # sit in another partition than the last messages, so wait for it explicitly
        async def nothing_sending() -> bool:
            engine = create_async_engine(database_url)
            try:
                async with engine.connect() as conn:
                    n = await conn.scalar(
                        text("select count(*) from notifier_deliveries where status = 'sending'")
                    )
            finally:
                await engine.dispose()
            return n == 0

        await eventually(nothing_sending, timeout=60, what="the held pair resolved")
        # nothing more trickles in once the lag is drained: SIGTERM drains and commits
        assert second.terminate(30) == 0
    finally:
        second.kill()

    sent = Counter((m.chat_id, m.text) for m in fake_telegram.messages)
    duplicates = {k: n for k, n in sent.items() if n > 1}
    assert duplicates == {}
    assert len(sent) == expected
    # every event reached every chat: its headline is in each chat's log
    for chat in CHATS:
        got = sorted(headline(m.visible_text) for m in fake_telegram.messages_to(chat))
        assert len(got) == len(events)
        assert len(set(got)) == len(events)
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            rows = (
                await conn.execute(
                    text("select status, count(*) from notifier_deliveries group by status")
                )
            ).all()
    finally:
        await engine.dispose()
    # the two held messages were sent before the kill and are recorded as such
    assert dict(rows) == {"sent": expected - 2, "uncertain": 2}


class Running(InLoop[NotifierService]):
    """A NotifierService in this event loop (no process start: aiogram imports are slow)."""

    def __init__(self, settings: NotifierSettings) -> None:
        super().__init__(NotifierService(settings))


def in_process_settings(
    kafka: KafkaSettings, database_url: str, fake: FakeTelegram | None, **extra: object
) -> NotifierSettings:
    return NotifierSettings(
        kafka=kafka,
        database=DatabaseSettings(database_url=SecretStr(database_url)),
        ops=OpsSettings(ops_port=free_port()),
        telegram_bot_token=SecretStr(fake.token) if fake else None,
        telegram_api_base=fake.base_url if fake else "http://127.0.0.1:9",
        telegram_chat_ids=CHATS,
        notifier_cooldown_s=0,
        notifier_poll_commands=False,
        **extra,  # type: ignore[arg-type]
    )


async def test_undeliverable_alert_is_dead_lettered_with_the_reason(
    kafka_settings: KafkaSettings, database_url: str, fake_telegram: FakeTelegram
) -> None:
    event = judged("BTCUSDT")
    await publish(kafka_settings, [event])
    fake_telegram.fail("sendMessage", status=500, times=None, chat_id=CHATS[1])
    settings = in_process_settings(
        kafka_settings, database_url, fake_telegram, notifier_send_max_attempts=2
    )
    async with (
        Running(settings),
        TopicReader(kafka_settings, dlq_topic(Topic.SIGNALS_JUDGED)) as dlq,
    ):
        records = await dlq.wait_for(1, timeout=60)
    headers = dict(records[0].headers)
    assert headers["event_id"].decode() == event.event_id
    assert headers["dlq.error_type"] == b"PermanentError"
    reason = headers["dlq.error"].decode()
    assert f"chat {CHATS[1]}" in reason
    assert "Internal Server Error" in reason
    assert [m.chat_id for m in fake_telegram.messages] == [CHATS[0]]


async def test_without_a_token_it_consumes_and_says_so_once(
    kafka_settings: KafkaSettings,
    database_url: str,
    fake_telegram: FakeTelegram,
    caplog: pytest.LogCaptureFixture,
) -> None:
    events = stream()
    await publish(kafka_settings, events)
    engine = create_async_engine(database_url)

    async def symbols_seen() -> int:
        async with engine.connect() as conn:
            count = await conn.execute(text("select count(*) from notifier_symbol_state"))
            return int(count.scalar() or 0)

    async def all_five() -> bool:
        return await symbols_seen() == 5  # the latest signal of each symbol, for /signal

    try:
        async with Running(in_process_settings(kafka_settings, database_url, None)) as running:
            await eventually(all_five, timeout=60, what="all 5 symbols consumed")
            loop = running.service.loops[0]
            await eventually(lambda: loop.processed == len(events), what="every event handled")
    finally:
        await engine.dispose()
    disabled = [r for r in caplog.records if "Telegram disabled" in r.getMessage()]
    assert len(disabled) == 1
    assert fake_telegram.calls == []
