"""The consumer runtime on the real broker: DLQ, per-key order, drain on stop, crash safety."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import asyncpg
import pytest

from perpsignal_common.embedded import die_with_parent, free_port
from perpsignal_common.errors import TransientError
from perpsignal_common.events.base import Event, deterministic_id
from perpsignal_common.events.market import CandleClosedV1
from perpsignal_common.events.registry import decode, encode
from perpsignal_common.events.topics import Topic, dlq_topic
from perpsignal_common.kafka import rebalance
from perpsignal_common.kafka.admin import ensure_topics
from perpsignal_common.kafka.consumer import ConsumerLoop, ConsumerOptions, Record
from perpsignal_common.kafka.producer import EventProducer
from perpsignal_common.retry import RetryPolicy
from perpsignal_common.settings import KafkaSettings
from tests.helpers import REPO, TopicReader, eventually, kill_group, kill_on_exit

pytestmark = pytest.mark.kafka

T0 = datetime(2024, 1, 1, tzinfo=UTC)


async def _nosleep(_: float) -> None:
    await asyncio.sleep(0)


def candle(i: int, symbol: str = "BTCUSDT") -> CandleClosedV1:
    at = T0 + timedelta(minutes=i)
    return CandleClosedV1(
        event_id=deterministic_id("test", symbol, i),
        source="test",
        symbol=symbol,
        observed_at=at,
        timeframe="1m",
        open_time=at - timedelta(minutes=1),
        open=100 + i,
        high=101 + i,
        low=99 + i,
        close=100.5 + i,
        volume=1.0,
    )


async def _producer(kafka: KafkaSettings) -> EventProducer:
    await ensure_topics(kafka)
    producer = EventProducer(kafka, "test")
    await producer.start()
    return producer


def _loop(kafka: KafkaSettings, producer: EventProducer, handler, **opts) -> ConsumerLoop:  # type: ignore[no-untyped-def]
    options = ConsumerOptions(
        group_id="g",
        topics=[Topic.MARKET],
        retry=RetryPolicy(max_attempts=3, sleep=_nosleep),
        **opts,
    )
    return ConsumerLoop(
        kafka=kafka, service="test", options=options, handler=handler, producer=producer
    )


async def test_malformed_event_goes_to_dlq_with_reason_and_partition_moves_on(
    kafka_settings: KafkaSettings,
) -> None:
    producer = await _producer(kafka_settings)
    topic = kafka_settings.topic(Topic.MARKET)
    seen: list[str] = []

    async def handler(event: Event, record: Record) -> None:
        seen.append(event.event_id)

    # everything on one key -> one partition: the good event after the poison must still flow
    await producer.send_raw(topic, b"BTCUSDT", b'{"type": "market.candle", "open": "x"}', wait=True)
    await producer.send_raw(topic, b"BTCUSDT", b"not json at all", wait=True)
    good = candle(1)
    await producer.publish(good, wait=True)

    loop = _loop(kafka_settings, producer, handler)
    await loop.start()
    stop = asyncio.Event()
    task = asyncio.create_task(loop.run(stop))
    try:
        await eventually(lambda: good.event_id in seen, what="the good event after poison")
        async with TopicReader(kafka_settings, dlq_topic(Topic.MARKET)) as dlq:
            records = await dlq.wait_for(2)
    finally:
        stop.set()
        await task
        await loop.stop()
        await producer.stop()
    headers = [dict(r.headers) for r in records]
    assert {h["dlq.error_type"] for h in headers} == {b"PoisonMessage"}
    assert b"invalid event" in headers[0]["dlq.error"]
    assert headers[0]["dlq.topic"] == topic.encode()
    assert {r.value for r in records} == {
        b'{"type": "market.candle", "open": "x"}',
        b"not json at all",
    }
    assert seen == [good.event_id]


async def test_handler_that_keeps_failing_is_retried_then_dead_lettered(
    kafka_settings: KafkaSettings,
) -> None:
    producer = await _producer(kafka_settings)
    attempts: dict[str, int] = {}
    bad, ok = candle(1), candle(2)

    async def handler(event: Event, record: Record) -> None:
        attempts[event.event_id] = attempts.get(event.event_id, 0) + 1
        if event.event_id == bad.event_id:
            raise TransientError("upstream flaky")

    await producer.publish_many([bad, ok])
    loop = _loop(kafka_settings, producer, handler)
    await loop.start()
    stop = asyncio.Event()
    task = asyncio.create_task(loop.run(stop))
    try:
        await eventually(lambda: attempts.get(ok.event_id), what="next event handled")
        async with TopicReader(kafka_settings, dlq_topic(Topic.MARKET)) as dlq:
            records = await dlq.wait_for(1)
    finally:
        stop.set()
        await task
        await loop.stop()
        await producer.stop()
    assert attempts[bad.event_id] == 3
    assert dict(records[0].headers)["dlq.attempts"] == b"3"
    assert dict(records[0].headers)["dlq.error_type"] == b"TransientError"


async def test_per_key_order_holds_while_keys_run_concurrently(
    kafka_settings: KafkaSettings,
) -> None:
    producer = await _producer(kafka_settings)
    symbols = [f"S{i}USDT" for i in range(8)]
    events = [candle(i, symbols[i % len(symbols)]) for i in range(400)]
    await producer.publish_many(events)
    order: dict[str, list[datetime]] = {s: [] for s in symbols}
    in_flight = 0
    max_in_flight = 0
    rng = random.Random(7)

    async def handler(event: Event, record: Record) -> None:
        nonlocal in_flight, max_in_flight
        in_flight += 1
        max_in_flight = max(max_in_flight, in_flight)
        await asyncio.sleep(rng.random() / 500)  # shuffle completion order across keys
        order[event.symbol].append(event.observed_at)
        in_flight -= 1

    loop = _loop(kafka_settings, producer, handler, concurrency=4)
    await loop.start()
    stop = asyncio.Event()
    task = asyncio.create_task(loop.run(stop))
    try:
        await eventually(lambda: sum(map(len, order.values())) == 400, what="all handled")
    finally:
        stop.set()
        await task
        await loop.stop()
        await producer.stop()
    for sym in symbols:
        assert order[sym] == sorted(order[sym]), f"{sym} handled out of order"
        assert len(order[sym]) == 50
    assert 1 < max_in_flight <= 4


async def test_stop_drains_and_commits_so_a_restart_resumes_without_repeats(
    kafka_settings: KafkaSettings,
) -> None:
    producer = await _producer(kafka_settings)
    first = [candle(i) for i in range(50)]
    await producer.publish_many(first)
    handled: list[str] = []

    async def handler(event: Event, record: Record) -> None:
        handled.append(event.event_id)

    loop = _loop(kafka_settings, producer, handler)
    await loop.start()
    stop = asyncio.Event()
    task = asyncio.create_task(loop.run(stop))
    await eventually(lambda: len(handled) == 50, what="first batch")
    stop.set()
    await asyncio.wait_for(task, 10)
    await loop.stop()

    second = [candle(i) for i in range(50, 60)]
    await producer.publish_many(second)
    handled.clear()
    loop2 = _loop(kafka_settings, producer, handler)
    await loop2.start()
    stop2 = asyncio.Event()
    task2 = asyncio.create_task(loop2.run(stop2))
    try:
        # one key, one partition: a repeat of the first 50 would be handled before the new 10
        await eventually(lambda: len(handled) >= 10, what="second batch")
    finally:
        stop2.set()
        await task2
        await loop2.stop()
        await producer.stop()
    assert handled == [e.event_id for e in second]


async def test_rewind_on_assign_replays_history_for_state_only(
    kafka_settings: KafkaSettings,
) -> None:
    producer = await _producer(kafka_settings)
    await producer.publish_many([candle(i) for i in range(20)])
    seen: list[tuple[int, bool]] = []
    holder: dict[str, ConsumerLoop] = {}

    async def handler(event: Event, record: Record) -> None:
        seen.append((record.offset, holder["loop"].is_replay(record)))

    loop = _loop(kafka_settings, producer, handler, rewind_on_assign=-1)
    holder["loop"] = loop
    await _run_until(loop, lambda: len(seen) == 20, "first pass")
    assert not any(replay for _, replay in seen)

    seen.clear()
    await producer.publish_many([candle(i) for i in range(20, 25)])
    loop2 = _loop(kafka_settings, producer, handler, rewind_on_assign=-1)
    holder["loop"] = loop2
    try:
        await _run_until(loop2, lambda: len(seen) == 25, "replay + new")
    finally:
        await producer.stop()
    assert sum(1 for _, replay in seen if replay) == 20
    assert sum(1 for _, replay in seen if not replay) == 5


async def test_rewind_reaches_back_in_time_when_the_record_count_falls_short(
    kafka_settings: KafkaSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A scorer's state windows are time; a rewind by record count is hours of history with
    hundreds of symbols. With `rewind_on_assign_s`, a restart re-reads every record of that
    span (Kafka's offsets_for_times on the records' own timestamps), however many."""
    producer = await _producer(kafka_settings)
    await producer.publish_many([candle(i) for i in range(15)])  # older than the span
    await asyncio.sleep(1.0)
    span_start = time.time()
    await asyncio.sleep(1.0)
    await producer.publish_many([candle(i) for i in range(15, 30)])  # inside it
    seen: list[tuple[int, bool]] = []
    holder: dict[str, ConsumerLoop] = {}

    async def handler(event: Event, record: Record) -> None:
        seen.append((record.offset, holder["loop"].is_replay(record)))

    holder["loop"] = _loop(kafka_settings, producer, handler, rewind_on_assign=3)
    await _run_until(holder["loop"], lambda: len(seen) == 30, "first pass")
    seen.clear()
    await producer.publish_many([candle(i) for i in range(30, 32)])
    # the restart's "now" is an hour after the span began (the group join takes seconds):
    # 3 records by count, the last hour by time, i.e. the 15 records after the pause
    monkeypatch.setattr(rebalance, "time", SimpleNamespace(time=lambda: span_start + 3600.0))
    holder["loop"] = _loop(
        kafka_settings, producer, handler, rewind_on_assign=3, rewind_on_assign_s=3600.0
    )
    try:
        await _run_until(holder["loop"], lambda: len(seen) == 17, "time rewind + new")
    finally:
        await producer.stop()
    replayed = [offset for offset, replay in seen if replay]
    assert replayed == list(range(15, 30))
    assert [offset for offset, replay in seen if not replay] == [30, 31]


async def test_a_restart_replay_does_not_dead_letter_a_poisoned_record_again(
    kafka_settings: KafkaSettings,
) -> None:
    """The scorer rewinds its partitions on every start: a poisoned record among the replayed
    ones was dead-lettered when first read, and must not land in the DLQ once per restart."""
    producer = await _producer(kafka_settings)
    topic = kafka_settings.topic(Topic.MARKET)
    poison = json.dumps(json.loads(encode(candle(1))) | {"close": float("nan")}).encode()
    await producer.publish(candle(0), wait=True)
    await producer.send_raw(topic, b"BTCUSDT", poison, wait=True)
    await producer.publish(candle(1), wait=True)
    seen: list[tuple[int, bool]] = []
    holder: dict[str, ConsumerLoop] = {}

    async def handler(event: Event, record: Record) -> None:
        seen.append((record.offset, holder["loop"].is_replay(record)))

    for restart in range(3):
        if restart:
            await producer.publish(candle(1 + restart), wait=True)
        holder["loop"] = _loop(kafka_settings, producer, handler, rewind_on_assign=-1)
        last = (2 + restart, False)  # the newest record, handled live (not a replay)
        await _run_until(holder["loop"], lambda last=last: last in seen, f"start {restart}")
        seen.clear()
    async with TopicReader(kafka_settings, dlq_topic(Topic.MARKET)) as dlq:
        await dlq.wait_for(1)
        for _ in range(10):  # a duplicate would have been published during the replays above
            records = await dlq.poll()
    await producer.stop()
    assert [r.value for r in records] == [poison]
    assert dict(records[0].headers)["dlq.error"].startswith(b"PoisonMessage: invalid event")


async def _run_until(loop: ConsumerLoop, done: Callable[[], bool], what: str) -> None:
    """Start `loop`, run it until `done()`, then stop it (drain, commit, leave the group)."""
    await loop.start()
    stop = asyncio.Event()
    task = asyncio.create_task(loop.run(stop))
    try:
        await eventually(done, what=what)
    finally:
        stop.set()
        await task
        await loop.stop()


async def test_no_record_is_handled_before_the_assignment_callbacks_finish(
    kafka_settings: KafkaSettings,
) -> None:
    producer = await _producer(kafka_settings)
    await producer.publish_many([candle(i) for i in range(10)])
    seen: list[tuple[int, bool]] = []
    state = {"read_back_done": False}

    async def read_back(assigned: object) -> None:
        # a slow read-back (the judge reads its recent verdicts here): the records of the
        # new assignment are fetched meanwhile and must wait
        await asyncio.sleep(1.5)
        state["read_back_done"] = True

    async def handler(event: Event, record: Record) -> None:
        seen.append((record.offset, state["read_back_done"]))

    loop = _loop(kafka_settings, producer, handler, on_assigned=read_back, rewind_on_assign=5)
    try:
        await _run_until(loop, lambda: len(seen) == 10, "every record once")
    finally:
        await producer.stop()
    assert all(after for _, after in seen), seen
    assert [offset for offset, _ in seen] == list(range(10))


@pytest.mark.db
@pytest.mark.timeout(480)
async def test_sigkill_during_10000_events_then_restart_loses_no_effect(
    kafka_settings: KafkaSettings,
    kafka_env: dict[str, str],
    database_url: str,
    tmp_path: Path,
) -> None:
    dsn = database_url.replace("+asyncpg", "")
    conn = await asyncpg.connect(dsn)
    from tests.integration.runtime.effect_app import SCHEMA

    await conn.execute(SCHEMA)
    env = {
        **kafka_env,
        "DATABASE_URL": database_url,
        "KAFKA_CREATE_TOPICS": "true",
        "LOG_LEVEL": "WARNING",
    }
    producer = await _producer(kafka_settings)
    total = 10_000
    symbols = [f"C{i}USDT" for i in range(20)]

    async def publish_stream() -> None:
        for i in range(total):
            await producer.publish(candle(i, symbols[i % 20]))
            if i % 500 == 499:
                await producer.wait_delivered()
                await asyncio.sleep(0.01)
        await producer.wait_delivered()

    def spawn() -> subprocess.Popen[bytes]:
        return _spawn_effect_app(env, tmp_path)

    async def count(sql: str) -> int:
        return int(await conn.fetchval(sql))

    proc = spawn()
    try:
        publisher = asyncio.create_task(publish_stream())
        # kill it while the stream is flowing and effects are being written
        # a cold start on a busy 2-core machine can take a minute: wait for the work itself
        await eventually(
            _alive(proc, lambda: _gt(count("select count(*) from effects"), 1500)),
            timeout=240,
            what="some effects before the kill",
        )
        proc.kill()
        proc.wait(10)
        killed_at = await count("select count(*) from effects")
        assert killed_at < total, "the kill must land mid-stream"
        await publisher
        proc = spawn()
        await eventually(
            _alive(proc, lambda: _eq(count("select count(*) from effects"), total)),
            timeout=240,
            interval=0.2,
            what="all effects after restart",
        )
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(30)
        await producer.stop()
    distinct = await count("select count(distinct event_id) from effects")
    deliveries = await count("select count(*) from deliveries")
    await conn.close()
    assert distinct == total
    # at-least-once underneath: every event was delivered, some more than once, yet no
    # effect was applied twice
    assert deliveries >= total
    log = (tmp_path / "effect.log").read_text()
    assert "Traceback" not in log.split("\n")[-50:], log[-2000:]


def _spawn_effect_app(env: dict[str, str], log_dir: Path) -> subprocess.Popen[bytes]:
    """Start the effect app as its own process, appending to log_dir/effect.log.

    Its ops server gets a free port: the default one (9100) is shared by every concurrent
    run on the machine, and a second app bound to it would exit at start-up.
    """
    with open(log_dir / "effect.log", "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.integration.runtime.effect_app"],
            env={**os.environ, **env, "OPS_PORT": str(free_port()), "OPS_HOST": "127.0.0.1"},
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            start_new_session=True,
            preexec_fn=die_with_parent(signal.SIGKILL),
        )
    kill_on_exit(lambda: kill_group(proc))
    return proc


def _alive(proc: subprocess.Popen[bytes], check: Callable[[], Awaitable[bool]]):  # type: ignore[no-untyped-def]
    """Wrap `check` so that waiting on it fails at once when `proc` died (not at the timeout)."""

    async def run() -> bool:
        assert proc.poll() is None, f"the effect app exited with {proc.returncode}"
        return await check()

    return run


async def _gt(value: object, n: int) -> bool:
    return int(await value) > n  # type: ignore[misc]


async def _eq(value: object, n: int) -> bool:
    return int(await value) == n  # type: ignore[misc]


def test_decode_rejects_unknown_type() -> None:
    from perpsignal_common.errors import PoisonMessage

    with pytest.raises(PoisonMessage, match="type"):
        decode(b'{"type": "market.nope", "event_id": "1"}')


@pytest.mark.db
async def test_sigterm_drains_commits_and_exits_zero(
    kafka_settings: KafkaSettings,
    kafka_env: dict[str, str],
    database_url: str,
    tmp_path: Path,
) -> None:
    dsn = database_url.replace("+asyncpg", "")
    conn = await asyncpg.connect(dsn)
    from tests.integration.runtime.effect_app import SCHEMA

    await conn.execute(SCHEMA)
    env = {
        **os.environ,
        **kafka_env,
        "DATABASE_URL": database_url,
        "LOG_LEVEL": "INFO",
    }
    producer = await _producer(kafka_settings)
    await producer.publish_many([candle(i, f"D{i % 5}USDT") for i in range(300)])

    def spawn() -> subprocess.Popen[bytes]:
        return _spawn_effect_app(env, tmp_path)

    proc = spawn()
    try:
        await eventually(
            _alive(proc, lambda: _eq(conn.fetchval("select count(*) from effects"), 300)),
            timeout=180,
            what="all 300 effects",
        )
        proc.send_signal(15)
        assert await asyncio.to_thread(proc.wait, 30) == 0
        # a restart must not see any of the 300 again: their offsets were committed
        await producer.publish_many([candle(i, "D0USDT") for i in range(300, 310)])
        proc = spawn()
        await eventually(
            _alive(proc, lambda: _eq(conn.fetchval("select count(*) from effects"), 310)),
            timeout=180,
            what="the 10 new effects",
        )
        # a repeat of the first 300 would be fetched with the new records (all partitions
        # start at once): let the second process drain and exit, then count every delivery
        proc.send_signal(15)
        assert await asyncio.to_thread(proc.wait, 30) == 0
        assert await conn.fetchval("select count(*) from deliveries") == 310
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(30)
        await producer.stop()
        await conn.close()
    log = (tmp_path / "effect.log").read_text()
    assert "service stopped" in log


async def test_ownership_lines_hand_each_partition_to_one_member_at_a_time(
    kafka_settings: KafkaSettings, caplog: pytest.LogCaptureFixture
) -> None:
    """Two members of one group: each logs "partitions assigned"/"revoked" with its process
    id, so the log alone says who held which partition when (`up --scale` operators and the
    multi-replica test read it): the second member's arrival revokes the first's partitions
    before they are dealt again, and a member that stops says it let its partitions go."""
    caplog.set_level("INFO", logger="perpsignal_common.kafka.consumer")
    producer = await _producer(kafka_settings)
    market = kafka_settings.topic(Topic.MARKET)

    async def handle(event: Event, record: Record) -> None:
        pass

    members = [_loop(kafka_settings, producer, handle) for _ in range(2)]
    stops = [asyncio.Event(), asyncio.Event()]
    tasks: list[asyncio.Task[None]] = []

    def lines() -> list[tuple[str, frozenset[str], int]]:
        out = []
        for r in caplog.records:
            if r.getMessage() in ("partitions assigned", "partitions revoked"):
                parts = frozenset(p for p in r.partitions if p.startswith(market + ":"))  # type: ignore[attr-defined]
                out.append((r.getMessage(), parts, r.pid))  # type: ignore[attr-defined]
        return out

    def held(m: ConsumerLoop) -> frozenset[str]:
        return frozenset(
            f"{t.topic}:{t.partition}" for t in m.consumer.assignment() if t.topic == market
        )

    try:
        for member, stop in zip(members, stops, strict=True):
            await member.start()
            tasks.append(asyncio.create_task(member.run(stop)))
            await eventually(member.assigned, timeout=30, what="an assignment")
        await eventually(
            lambda: all(m.assigned() for m in members), timeout=30, what="both members holding"
        )
        first, second = held(members[0]), held(members[1])
        assert first and second and not first & second
        events = lines()
        assert {pid for _, _, pid in events} == {os.getpid()}
        # the first member's whole set, revoked before anything was dealt the second time
        assert events[0][:2] == ("partitions assigned", first | second)
        revoked_at = events.index(("partitions revoked", first | second, os.getpid()))
        dealt = events[revoked_at + 1 :]
        assert all(what == "partitions assigned" for what, _, _ in dealt)
        assert {parts for _, parts, _ in dealt} == {first, second}

        stops[1].set()
        await tasks[1]
        await members[1].stop()
        # said before it left: before anyone was dealt its partitions again
        after = [e[:2] for e in lines()[len(events) :]]
        assert ("partitions revoked", second) in after, after
        gone = after.index(("partitions revoked", second))
        assert not any(
            what == "partitions assigned" and parts & second for what, parts in after[:gone]
        )
    finally:
        for stop in stops:
            stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        for member in members:
            await member.stop()
        await producer.stop()
