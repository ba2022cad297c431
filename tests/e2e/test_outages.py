"""Our own infrastructure failing: PostgreSQL stopped under the outcomes service.

Its own PostgreSQL server (not the session one, which other tests share) is stopped for
`fault_window(20)` seconds (E2E_FAULT_SCALE, see stack.py) while judged signals keep arriving.
Pass condition (issue 10): the service stays up, commits no offset past a record it could not
write, and when the database returns it catches up: every signal stored, every horizon
evaluated exactly once, with the exit price of the recorded candle at the horizon.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from perpsignal_common.db.migrate import upgrade
from perpsignal_common.embedded import EmbeddedKafka, EmbeddedPostgres, free_port
from perpsignal_common.events.base import deterministic_id
from perpsignal_common.events.market import CandleClosedV1
from perpsignal_common.events.registry import encode
from perpsignal_common.events.signals import OutcomeEvaluatedV1, SignalJudgedV1, VerdictLayer
from perpsignal_common.events.topics import Topic
from perpsignal_common.settings import KafkaSettings
from tests.conftest import PgServer
from tests.e2e.checks import read_topic
from tests.e2e.conftest import E2E_SYMBOLS, e2e_kafka, fresh_database, kafka_env_of
from tests.e2e.stack import Stack, fault_window
from tests.helpers import ServiceProcess, eventually

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

XRP_5M = "XRP_USDT_USDT-5m-futures.csv"
STEP = timedelta(minutes=5)


def load_candles(shared_data: Path) -> list[tuple[datetime, float, float, float, float]]:
    with (shared_data / "market" / XRP_5M).open() as f:
        return [
            (datetime.fromtimestamp(int(r["open_time"]) / 1000, UTC), float(r["open"]),
             float(r["high"]), float(r["low"]), float(r["close"]))
            for r in csv.DictReader(f)
        ][:200]  # fmt: skip


def candle_event(row: tuple[datetime, float, float, float, float]) -> CandleClosedV1:
    open_time, o, h, low, c = row
    close = open_time + STEP
    return CandleClosedV1(
        event_id=deterministic_id("e2e-pg", "XRPUSDT", close),
        source="binance",
        symbol="XRPUSDT",
        observed_at=close,
        timeframe="5m",
        open_time=open_time,
        open=o,
        high=h,
        low=low,
        close=c,
        volume=1.0,
    )


def judged_at(row: tuple[datetime, float, float, float, float], n: int) -> SignalJudgedV1:
    """A LONG judged at the close of `row` (entry = that close), as the judge publishes it."""
    close_at, price = row[0] + STEP, row[4]
    sid = deterministic_id("e2e-pg-signal", n)
    return SignalJudgedV1(
        event_id=deterministic_id(sid, "judge"),
        source="judge",
        symbol="XRPUSDT",
        observed_at=close_at,
        signal_id=sid,
        timeframe="5m",
        direction="LONG",
        score=70.0,
        confidence=60.0,
        price=price,
        ai_verdict_layer=VerdictLayer(
            verdict="CONFIRM", risk_mode="NORMAL", position_multiplier=1.0, ai_summary="e2e"
        ),
    )


async def rows(url: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url.replace("+asyncpg", ""))
    try:
        return list(
            await conn.fetch(
                "select signal_id, status, exit_price, evaluation_count from signal_outcomes"
            )
        )
    finally:
        await conn.close()


async def test_postgres_outage_outcomes_hold_offsets_and_catch_up(
    shared_data: Path, kafka_bootstrap: str, tmp_path: Path
) -> None:
    candles = load_candles(shared_data)
    pg = EmbeddedPostgres(tmp_path / "pg", database="outcomes_e2e").start()
    url = pg.url()
    await asyncio.to_thread(upgrade, url)
    k: KafkaSettings = e2e_kafka(kafka_bootstrap)
    env = {
        **kafka_env_of(k),
        "DATABASE_URL": url,
        "OPS_HOST": "127.0.0.1",
        "OPS_PORT": "0",
        "OUTCOMES_HORIZONS": "1h",
        "OUTCOMES_CANDLE_TIMEFRAMES": "5m",
        "OUTCOMES_KLINES_FALLBACK": "false",
        "OUTCOMES_SETTLE_S": "0",
        "OUTCOMES_RETRY_S": "1",
        "OUTCOMES_POLL_INTERVAL_S": "0.5",
        "DATABASE_STATEMENT_TIMEOUT_MS": "2000",
    }
    env["OPS_PORT"] = str(free_port())
    proc = ServiceProcess("outcomes", env, tmp_path).start()
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    signals = [judged_at(candles[10 + 5 * i], i) for i in range(10)]
    # 1h horizon = 12 candles of 5 minutes after the entry; the exit is the 12th one's close
    want_exit = {s.signal_id: candles[10 + 5 * i + 12][4] for i, s in enumerate(signals)}
    try:
        await eventually(lambda: '"service started"' in proc.logs(), timeout=180,
                         what="outcomes started")  # fmt: skip
        for row in candles[:100]:
            ev = candle_event(row)
            await producer.send(k.topic(Topic.MARKET), encode(ev), key=ev.partition_key())
        for s in signals[:5]:
            await producer.send(k.topic(Topic.SIGNALS_JUDGED), encode(s), key=s.partition_key())
        await producer.flush()

        async def first_half_done() -> bool:
            got = await rows(url)
            return len(got) == 5 and all(r["status"] == "completed" for r in got)

        await eventually(first_half_done, timeout=90, interval=0.5, what="first 5 evaluated")

        pg.stop()
        outage_started = time.monotonic()
        offsets: dict[int, int] = {}
        for s in signals[5:]:
            md = await producer.send_and_wait(
                k.topic(Topic.SIGNALS_JUDGED), encode(s), key=s.partition_key()
            )
            offsets.setdefault(md.partition, md.offset)  # first unwritten record per partition
        group = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=k.group("outcomes"),
                                 enable_auto_commit=False)  # fmt: skip
        await group.start()
        try:
            while time.monotonic() - outage_started < fault_window(20):
                assert proc.proc is not None and proc.proc.poll() is None, proc.logs()[-3000:]
                for part, first in offsets.items():
                    tp = TopicPartition(k.topic(Topic.SIGNALS_JUDGED), part)
                    committed = await group.committed(tp)
                    assert committed is None or committed <= first, (
                        f"committed {committed} past unwritten offset {first} during the outage"
                    )
                await asyncio.sleep(0.5)
        finally:
            await group.stop()
        pg.start()

        async def all_done() -> bool:
            got = await rows(url)
            return len(got) == 10 and all(r["status"] == "completed" for r in got)

        await eventually(all_done, timeout=120, interval=0.5, what="catch-up after the outage")
        for r in await rows(url):
            assert r["evaluation_count"] == 1, dict(r)
            assert r["exit_price"] == pytest.approx(want_exit[r["signal_id"]]), dict(r)
        outs = [e for e in await read_topic(k, Topic.OUTCOMES)
                if isinstance(e, OutcomeEvaluatedV1)]  # fmt: skip
        assert {e.signal_id for e in outs} == set(want_exit)
        assert proc.proc is not None and proc.proc.poll() is None, "outcomes exited"
        assert proc.logs().count('"service starting"') == 1
    finally:
        await producer.stop()
        proc.terminate(20)
        pg.stop()


async def test_broker_outage_every_service_recovers_by_itself(
    shared_data: Path, pg_server: PgServer, tmp_path: Path
) -> None:
    """The broker is down for `fault_window(20)` s, then comes back on the same port.

    The embedded broker keeps data in memory, so it comes back empty (a real cluster would
    keep topics, data and offsets: docs/OPERATIONS.md). Every service must recover in
    process: re-create the vanished topics, re-read from its committed offsets, seek readers
    whose position is past the new log's end back to its start. The test still plays the
    orchestrator (a process exiting with code 3 is started again, as Kubernetes would) so a
    regression shows as a clear assertion. Pass condition: no process exits at all, and the
    chain again turns the source's next candles into judged signals at GET /signals and on
    /ws/signals.
    """
    port = free_port()
    broker = EmbeddedKafka(port=port, log_path=tmp_path / "broker.log").start()
    url = await asyncio.to_thread(fresh_database, pg_server)
    s = Stack(
        shared_data=shared_data,
        kafka_env=kafka_env_of(e2e_kafka(broker.bootstrap)),
        database_url=url,
        log_dir=tmp_path,
        symbols=E2E_SYMBOLS[:2],
        extra_env={"gateway": {"GATEWAY_ENABLE_DATABASE": "false"}},
    )
    names = ("scorer", "judge", "gateway", "ingestor")
    try:
        s.start_fakes()
        s.start_all(names)
        s.wait_started(names)
        await wait_signal(s, "BTCUSDT", after=0)
        inbox = s.open_ws()

        exits: list[tuple[str, int]] = []

        async def orchestrator() -> None:
            while True:
                for n, p in s.procs.items():
                    rc = p.proc.poll() if p.proc else None
                    if rc is not None:
                        exits.append((n, rc))
                        if rc == 3 and sum(1 for x, _ in exits if x == n) <= 2:
                            s.start(n)
                await asyncio.sleep(0.5)

        supervisor = asyncio.create_task(orchestrator())
        try:
            broker.stop()
            await asyncio.sleep(fault_window(20))  # the outage itself, not a wait for an effect
            broker = EmbeddedKafka(port=port, log_path=tmp_path / "broker2.log").start()
            back_at = time.time()

            # the next candles the source serves must come out judged
            for sym in E2E_SYMBOLS[:2]:
                await wait_signal(s, sym, after=back_at, deadline_s=180)

            def ws_after() -> bool:
                return any(m.get("type") == "signal" and m["_received_at"] > back_at for m in inbox)

            await eventually(ws_after, timeout=60, what="a judged signal on /ws/signals after")
        finally:
            supervisor.cancel()
        assert not exits, {n: s.logs(n)[-2000:] for n, _ in exits}  # recovered in process
    finally:
        s.stop()
        broker.stop()
        with contextlib.suppress(Exception):
            await pg_server.drop(url.rsplit("/", 1)[-1])


async def wait_signal(s: Stack, sym: str, after: float, deadline_s: float = 240) -> None:
    """Wait until GET /signals/{sym} serves a signal whose candle closed after `after`."""
    import httpx

    async with httpx.AsyncClient(base_url=s.gateway_url, headers={"X-API-Key": "e2e-key"}) as h:

        async def fresh() -> bool:
            try:
                r = await h.get(f"/signals/{sym}", timeout=10)
            except httpx.HTTPError:
                return False
            if r.status_code != 200:
                return False
            ts = datetime.fromisoformat(r.json()["timestamp"].replace("Z", "+00:00"))
            return ts.timestamp() > after

        await eventually(fresh, timeout=deadline_s, interval=1,
                         what=f"a judged {sym} signal newer than {after}")  # fmt: skip
