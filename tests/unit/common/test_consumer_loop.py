"""ConsumerLoop batch semantics without a broker: commit points, timeouts, stop."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime

import pytest
import structlog
from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord

from perpsignal_common.errors import DependencyUnavailable
from perpsignal_common.events.base import Event
from perpsignal_common.events.market import CandleClosedV1
from perpsignal_common.events.registry import encode
from perpsignal_common.kafka.consumer import ConsumerLoop, ConsumerOptions
from perpsignal_common.kafka.lanes import OffsetBook
from perpsignal_common.logging import configure_logging
from perpsignal_common.retry import RetryPolicy
from perpsignal_common.settings import KafkaSettings

T0 = datetime(2024, 1, 1, tzinfo=UTC)
TP = TopicPartition("t", 0)


def rec(i: int, key: str = "BTCUSDT") -> ConsumerRecord[bytes, bytes]:
    ev = CandleClosedV1(
        event_id=f"e{i}",
        source="t",
        symbol=key,
        observed_at=T0,
        timeframe="1m",
        open_time=T0,
        open=1,
        high=1,
        low=1,
        close=1,
        volume=1,
    )
    return ConsumerRecord("t", 0, i, 0, 0, key.encode(), encode(ev), None, 0, 0, [])


class FakeProducer:
    def __init__(self) -> None:
        self.waited = 0
        self.sent: list[tuple[str, bytes | None, list[tuple[str, bytes]]]] = []

    async def wait_delivered(self, deliveries: object = None) -> None:
        self.waited += 1

    async def send_raw(self, topic, key, value, headers=(), *, wait=False):  # type: ignore[no-untyped-def]
        self.sent.append((topic, value, list(headers)))


async def _nosleep(_: float) -> None:
    await asyncio.sleep(0)


def make(handler, **opts):  # type: ignore[no-untyped-def]
    producer = FakeProducer()
    loop = ConsumerLoop(
        kafka=KafkaSettings(),
        service="unit",
        handler=handler,
        producer=producer,  # type: ignore[arg-type]
        options=ConsumerOptions(
            group_id="g", topics=["t"], retry=RetryPolicy(max_attempts=3, sleep=_nosleep), **opts
        ),
    )
    commits: list[dict[TopicPartition, int]] = []

    class C:
        async def commit(self, offsets):  # type: ignore[no-untyped-def]
            commits.append(dict(offsets))

    loop._consumer = C()  # type: ignore[assignment]
    return loop, producer, commits


async def test_commit_covers_the_batch_after_effects_are_acknowledged() -> None:
    handled: list[int] = []

    async def handler(event: Event, record) -> None:  # type: ignore[no-untyped-def]
        handled.append(record.offset)

    loop, producer, commits = make(handler)
    await loop.process_batch({TP: [rec(5), rec(6), rec(7)]}, asyncio.Event())
    assert handled == [5, 6, 7]
    assert commits == [{TP: 8}]
    assert producer.waited == 1


async def test_stop_mid_batch_commits_only_the_finished_prefix() -> None:
    stop = asyncio.Event()

    async def handler(event: Event, record) -> None:  # type: ignore[no-untyped-def]
        if record.offset == 1:
            stop.set()

    loop, _, commits = make(handler, concurrency=1)
    await loop.process_batch({TP: [rec(0), rec(1), rec(2), rec(3)]}, stop)
    assert commits == [{TP: 2}]  # 0 and 1 done; 2 and 3 are redelivered after restart


async def test_hung_handler_is_cancelled_and_retried_under_a_timeout() -> None:
    calls: list[int] = []

    async def handler(event: Event, record) -> None:  # type: ignore[no-untyped-def]
        calls.append(record.offset)
        if len(calls) == 1:
            await asyncio.sleep(60)  # hangs on its first attempt only

    loop, _, commits = make(handler, handler_timeout_s=0.05)
    await asyncio.wait_for(loop.process_batch({TP: [rec(0), rec(1)]}, asyncio.Event()), 5)
    assert calls == [0, 0, 1]
    assert commits == [{TP: 2}]


async def test_dependency_down_past_grace_raises_and_commits_nothing_after_it() -> None:
    async def handler(event: Event, record) -> None:  # type: ignore[no-untyped-def]
        if record.offset == 1:
            raise DependencyUnavailable("db down")

    loop, _, commits = make(handler, dependency_grace_s=0.0, concurrency=1)
    try:
        await loop.process_batch({TP: [rec(0), rec(1), rec(2)]}, asyncio.Event())
    except DependencyUnavailable:
        pass
    else:
        raise AssertionError("expected DependencyUnavailable")
    assert commits == [{TP: 1}]  # record 0's effect is durable; 1 and 2 are not


async def test_poison_is_dead_lettered_and_committed_past() -> None:
    async def handler(event: Event, record) -> None:  # type: ignore[no-untyped-def]
        return None

    loop, producer, commits = make(handler)
    bad = ConsumerRecord("t", 0, 0, 0, 0, b"k", b"{oops", None, 0, 0, [])
    await loop.process_batch({TP: [bad, rec(1)]}, asyncio.Event())
    assert [s[0] for s in producer.sent] == ["t.dlq"]
    headers = dict(producer.sent[0][2])
    assert headers["dlq.error_type"] == b"PoisonMessage"
    assert headers["dlq.offset"] == b"0"
    assert commits == [{TP: 2}]


async def test_a_slow_key_does_not_hold_up_later_batches_of_other_keys() -> None:
    release = asyncio.Event()
    handled: list[tuple[str, int]] = []

    async def handler(event: Event, record) -> None:  # type: ignore[no-untyped-def]
        if event.symbol == "SLOWUSDT":
            await release.wait()
        handled.append((event.symbol, record.offset))

    loop, _, commits = make(handler)
    stop = asyncio.Event()
    tp1 = TopicPartition("t", 1)
    loop._dispatch({TP: [rec(0, "SLOWUSDT")], tp1: [rec(0, "FASTUSDT")]}, stop)
    # a second fetch while the slow key is still busy: its other key runs, its own key waits
    loop._dispatch({TP: [rec(1, "SLOWUSDT")], tp1: [rec(1, "FASTUSDT")]}, stop)
    for _ in range(50):
        await asyncio.sleep(0)
    assert handled == [("FASTUSDT", 0), ("FASTUSDT", 1)]
    await loop._commit()
    assert commits == [{tp1: 2}]  # the slow partition has nothing finished to commit
    release.set()
    await loop._drain()
    assert handled[2:] == [("SLOWUSDT", 0), ("SLOWUSDT", 1)]
    assert commits[-1] == {TP: 2}


async def test_a_busy_key_yields_its_worker_after_a_turn() -> None:
    handled: list[str] = []

    async def handler(event: Event, record) -> None:  # type: ignore[no-untyped-def]
        handled.append(event.symbol)

    loop, _, commits = make(handler, concurrency=1)
    busy = [rec(i, "BUSYUSDT") for i in range(600)]
    other = TopicPartition("t", 1)
    await loop.process_batch({TP: busy, other: [rec(0, "ETHUSDT")]}, asyncio.Event())
    # one worker: the other key runs after the busy key's first turn, not after all of it
    assert handled.index("ETHUSDT") == 256
    assert handled.count("BUSYUSDT") == 600
    assert commits == [{TP: 600, other: 1}]


async def test_revoked_partitions_lose_their_queued_records_not_the_one_in_hand() -> None:
    started = asyncio.Event()
    release = asyncio.Event()
    handled: list[int] = []

    async def handler(event: Event, record) -> None:  # type: ignore[no-untyped-def]
        if record.offset == 0:
            started.set()
            await release.wait()
        handled.append(record.offset)

    loop, _, commits = make(handler)
    stop = asyncio.Event()
    loop._dispatch({TP: [rec(0), rec(1), rec(2)]}, stop)
    await asyncio.wait_for(started.wait(), 5)
    loop._forget({TP})  # a rebalance: records 1 and 2 are the new owner's
    release.set()
    await asyncio.wait_for(loop._drain(), 5)
    assert handled == [0]  # the record in hand finished; the queued ones were dropped
    assert commits == []  # the forgotten partition's offsets are not ours to commit
    assert loop._inflight == 0


async def test_keys_run_concurrently_up_to_the_bound_and_each_key_in_order() -> None:
    running = 0
    peak = 0
    seen: dict[str, list[int]] = {}

    async def handler(event: Event, record) -> None:  # type: ignore[no-untyped-def]
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.001)
        seen.setdefault(event.symbol, []).append(record.offset)
        running -= 1

    loop, _, commits = make(handler, concurrency=4)
    records = [rec(i, f"S{i % 10}USDT") for i in range(200)]
    await asyncio.wait_for(loop.process_batch({TP: records}, asyncio.Event()), 10)
    assert peak == 4  # ten keys waiting, four workers
    assert all(offsets == sorted(offsets) for offsets in seen.values())
    assert sum(len(v) for v in seen.values()) == 200
    assert commits == [{TP: 200}]


def test_book_commits_the_done_prefix_and_counts_skipped_offsets_as_done() -> None:
    book = OffsetBook()
    book.add([rec(10), rec(11), rec(12)])
    assert book.advance() is None  # nothing finished
    book.done(11)
    assert book.advance() is None  # 10 still open: never commit past it
    book.done(10)
    assert book.advance() == 12
    book.add([rec(14), rec(17)])  # 13, 15 and 16 are not in the log (compaction, markers)
    book.done(12)
    assert book.advance() == 14  # 13 counts as done
    book.done(17)
    assert book.advance() is None
    book.done(14)
    assert book.advance() == 18
    try:
        book.add([rec(17)])
    except RuntimeError as exc:
        assert "dispatched twice" in str(exc)
    else:
        raise AssertionError("a seek back must come with a new book")


async def test_a_partition_that_goes_back_is_read_again_under_a_new_book() -> None:
    handled: list[int] = []

    async def handler(event: Event, record) -> None:  # type: ignore[no-untyped-def]
        handled.append(record.offset)

    loop, _, commits = make(handler)
    await loop.process_batch({TP: [rec(5), rec(6)]}, asyncio.Event())
    # the client reset its position (out of range after a broker restart): 0.. comes again
    await loop.process_batch({TP: [rec(0), rec(1)]}, asyncio.Event())
    assert handled == [5, 6, 0, 1]
    assert commits == [{TP: 7}, {TP: 2}]


async def test_handler_log_lines_carry_the_event_id_and_later_lines_do_not(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("unit", "INFO", "json")
    log = logging.getLogger("perpsignal_unit.handler")

    async def handler(event: Event, record) -> None:  # type: ignore[no-untyped-def]
        log.info("handled")

    try:
        loop, _, _ = make(handler)
        await loop.process_batch({TP: [rec(5), rec(6)]}, asyncio.Event())
        log.info("between batches")
        lines = [json.loads(x) for x in capsys.readouterr().err.splitlines() if x.startswith("{")]
    finally:
        structlog.reset_defaults()
        logging.getLogger().handlers.clear()
    handled = [line for line in lines if line["msg"] == "handled"]
    assert [line["event_id"] for line in handled] == ["e5", "e6"]
    (after,) = [line for line in lines if line["msg"] == "between batches"]
    assert "event_id" not in after


async def test_handled_counter_moves_during_a_long_run_and_counts_every_record() -> None:
    # successes are added to perpsignal_messages_in_total in chunks (a lock per add); a
    # dashboard must still see the rate while one worker is busy with a long backlog
    from perpsignal_common.observability.metrics import MESSAGES_IN

    ok = MESSAGES_IN.labels("unit", "t", "ok")
    before = ok._value.get()
    seen_mid_run: list[float] = []

    async def handler(event: Event, record: ConsumerRecord[bytes, bytes]) -> None:
        if record.offset == 1500:
            seen_mid_run.append(ok._value.get() - before)

    loop, _, commits = make(handler, concurrency=1)
    await loop.process_batch({TP: [rec(i, f"K{i % 3}") for i in range(2000)]}, asyncio.Event())

    # three finished turns of 256 are counted by then (the run ends at 2,000)
    assert seen_mid_run == [768]
    assert ok._value.get() - before == 2000
    assert loop.processed == 2000
    assert commits[-1] == {TP: 2000}
