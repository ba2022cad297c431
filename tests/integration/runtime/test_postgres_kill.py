"""SIGKILL of the embedded PostgreSQL's postmaster mid-stream, with real services writing to it.

The outcomes and notifier processes consume a steady stream of judged signals while the
postmaster is SIGKILLed twice and restarted on the same port and data folder. Their consumer
offsets are committed only after their effects are committed in PostgreSQL, so once the server
is back every signal must be stored once with its three outcome rows and every alert must
have reached every chat exactly once. With `synchronous_commit=off` (the embedded server's
old default) the last ~200 ms of acknowledged commits die with the server while their offsets
are already committed: signals go missing and alerts are sent twice.
"""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from perpsignal_common.embedded import EmbeddedPostgres, free_port
from perpsignal_common.events.base import Event
from perpsignal_common.kafka.admin import ensure_topics
from perpsignal_common.kafka.producer import EventProducer
from perpsignal_common.settings import KafkaSettings
from tests.fakes.telegram import FakeTelegram
from tests.helpers import ServiceProcess, eventually, kill_on_exit
from tests.unit.notifier.builders import judged

pytestmark = [pytest.mark.kafka, pytest.mark.db, pytest.mark.timeout(180)]

CHATS = (-1001, -1002)
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT")
PER_SYMBOL = 60  # 240 signals, ~8 s of stream
KILLS = 2


@pytest.fixture
def durable_pg(tmp_path: Path) -> Iterator[EmbeddedPostgres]:
    """A durable embedded server of this test alone (it is killed), migrated."""
    from perpsignal_common.db.migrate import upgrade

    pg = EmbeddedPostgres(tmp_path / "pg", database=f"k_{uuid.uuid4().hex[:8]}", durable=True)
    forget = kill_on_exit(pg.stop)
    try:
        pg.start()
        upgrade(pg.url())
        yield pg
    finally:
        pg.stop()
        forget()


async def ready(port: int) -> bool:
    try:
        async with httpx.AsyncClient() as client:
            return (await client.get(f"http://127.0.0.1:{port}/readyz", timeout=2)).is_success
    except httpx.HTTPError:
        return False


async def scalar(url: str, sql: str) -> int:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return int(await conn.scalar(text(sql)) or 0)
    finally:
        await engine.dispose()


async def rows_of(url: str, sql: str) -> dict[str, int]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return {str(k): int(v) for k, v in (await conn.execute(text(sql))).all()}
    finally:
        await engine.dispose()


async def stream(kafka: KafkaSettings, events: list[Event], pg: EmbeddedPostgres) -> int:
    """Publish `events` ~30/s; SIGKILL the postmaster KILLS times mid-way and restart it."""
    await ensure_topics(kafka)
    producer = EventProducer(kafka, "test")
    await producer.start()
    kill_at = {len(events) * (k + 1) // (KILLS + 1) for k in range(KILLS)}
    kills = 0
    try:
        for i, event in enumerate(events):
            if i in kill_at and pg.pid is not None:
                os.kill(pg.pid, signal.SIGKILL)
                kills += 1
                # a few more records reach the services while the server is down
                for later in events[i : i + 10]:
                    await producer.publish(later)
                await asyncio.sleep(0.5)
                pg.restart()  # blocks the loop ~1 s: the services are other processes
            await producer.publish(event)
            await asyncio.sleep(0.03)
        await producer.wait_delivered()
    finally:
        await producer.stop()
    return kills


async def test_sigkill_postmaster_mid_stream_loses_and_duplicates_nothing(
    kafka_settings: KafkaSettings,
    kafka_env: dict[str, str],
    durable_pg: EmbeddedPostgres,
    tmp_path: Path,
) -> None:
    url = durable_pg.url()
    ports = {"outcomes": free_port(), "notifier": free_port()}
    async with FakeTelegram() as telegram:
        common = {**kafka_env, "DATABASE_URL": url, "LOG_LEVEL": "WARNING"}
        envs = {
            "outcomes": {**common, "OUTCOMES_KLINES_FALLBACK": "false"},
            "notifier": {
                **common,
                "TELEGRAM_BOT_TOKEN": telegram.token,
                "TELEGRAM_API_BASE": telegram.base_url,
                "TELEGRAM_CHAT_IDS": ",".join(str(c) for c in CHATS),
                "NOTIFIER_COOLDOWN_S": "0",
                "NOTIFIER_RATE_GROUP_PER_MIN": "60000",
                "NOTIFIER_RATE_GLOBAL_PER_S": "1000",
                "NOTIFIER_POLL_COMMANDS": "false",
                "TELEGRAM_REQUEST_TIMEOUT_S": "60",
            },
        }
        procs = [
            ServiceProcess(name, {**env, "OPS_PORT": str(ports[name])}, tmp_path).start()
            for name, env in envs.items()
        ]
        try:
            for name, port in ports.items():
                await eventually(lambda p=port: ready(p), timeout=120, what=f"{name} ready")
            events: list[Event] = [
                judged(s, minutes=m, price=100.0 + m) for m in range(PER_SYMBOL) for s in SYMBOLS
            ]
            assert await stream(kafka_settings, events, durable_pg) == KILLS
            n = len(events)

            async def all_stored() -> bool:
                return await scalar(url, "select count(*) from outcome_signals") >= n

            await eventually(all_stored, timeout=60, what=f"{n} signals stored")

            async def all_resolved() -> bool:
                return await scalar(
                    url, "select count(*) from notifier_deliveries where status <> 'sending'"
                ) >= n * len(CHATS)

            await eventually(all_resolved, timeout=60, what="every alert resolved")
            # both services are still the processes we started: they rode out the outages
            assert [p.proc.poll() for p in procs if p.proc] == [None, None]
            for p in procs:
                assert p.terminate(30) == 0, p.logs()[-3000:]
        finally:
            for p in procs:
                p.kill()

        stored = await scalar(url, "select count(distinct signal_id) from outcome_signals")
        rows = await scalar(url, "select count(*) from signal_outcomes")
        assert (stored, rows) == (n, 3 * n)
        ledger = await rows_of(url, "select status, count(*) from notifier_deliveries group by 1")
        assert ledger == {"sent": n * len(CHATS)}
        sent = Counter((m.chat_id, m.text) for m in telegram.messages)
        assert {k: c for k, c in sent.items() if c > 1} == {}
        assert len(sent) == n * len(CHATS)
