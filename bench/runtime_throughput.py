"""Consumer runtime throughput vs a raw aiokafka loop and vs faststream, same broker, same run.

Publishes N market candles (100 keys, one partition) to a fresh topic on one embedded broker,
then reads that same topic, each reader in its own consumer group from the beginning, with:

(a) a raw aiokafka `getmany` loop (context: aiokafka's own ceiling, no decode);
(b) the same raw loop decoding every record into the pydantic `CandleClosedV1` with the codec
    every service uses (`events.registry.decode`): the floor for any loop that validates;
(c) our runtime, `ConsumerLoop`, built as a service builds it (default `ConsumerOptions`,
    shipped `KafkaSettings` defaults, service logging configured, start-up heap frozen as
    `serve()` does, uvloop as `run_service` does) with a no-op handler: decode, per-key lanes,
    metrics, at-least-once commits of finished offsets;
(d) faststream's Kafka subscriber (`faststream[kafka]`, also on aiokafka, the Python peer a user
    would pick instead) with a handler typed `CandleClosedV1`, so faststream decodes and
    validates the same pydantic model. Its default ack policy (ACK_FIRST: aiokafka auto-commit,
    offsets may pass records not yet handled) and no per-message logging: its fastest
    configuration. Its at-least-once policy (AckPolicy.ACK) commits once per message, a broker
    round trip each, and would be a much weaker bar.

The readers run in alternating rounds (a, b, c, d, a, b, ...) and each figure is the median of
its rounds, so load from neighbours on a shared machine hits every reader alike. Time excludes
group join (the clock starts at the first record). Goals (issue 20): (c) >= 0.9x (b), and
(c) >= 1.0x (d).

Where the time goes (2-core box shared with other work, load average ~3, 100k records):
* raw getmany: ~1.2 us CPU per record (aiokafka's record parsing); the pydantic decode of a
  CandleClosedV1 with its value checks adds ~5.5-6 us: (b) runs at ~7 us per record;
* ConsumerLoop: ~8.2-8.8 us per record on the least-loaded runs, i.e. ~1.2 us on top of (b)
  -> ~0.85x by CPU. The fetch loop yields once after handing out a batch, so the young-
  generation GC runs ~2 times per 100k records as for (b), not ~120 times. Without a broker
  (records handed to `_dispatch` directly, trivial decoder) the loop's own cost is ~1.2-1.4 us
  per record: the bare lanes/dispatch/loop structure ~0.64, the handler call ~0.2, the
  handling-time histogram (two clock reads and a bucket) ~0.2, the done flag commits depend
  on plus the stop/failure check ~0.15, the log-context ids ~0.06. Each of those carries a
  guarantee (commit after the effect, graceful stop, per-record latency, per-key order), so
  the 0.9x goal is not met by trimming alone. Decoding a whole batch as one JSON array was
  measured slower than per record (pydantic 2.13), so batch decode does not help;
* faststream: ~55-60 us per record (its DI layer validating the handler's arguments, a
  message object with a uuid4 per record, a context scope and middleware stack per message).

Knobs: BENCH_RUNTIME_EVENTS (records, default 100000), BENCH_RUNTIME_ROUNDS (default 3).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from aiokafka import AIOKafkaConsumer

from bench.common import Row, report
from perpsignal_common.embedded import EmbeddedKafka
from perpsignal_common.events.base import Event, deterministic_id
from perpsignal_common.events.market import CandleClosedV1
from perpsignal_common.events.registry import decode, encode
from perpsignal_common.events.topics import Topic
from perpsignal_common.kafka.admin import ensure_topics
from perpsignal_common.kafka.consumer import ConsumerLoop, ConsumerOptions, Record
from perpsignal_common.kafka.producer import EventProducer
from perpsignal_common.logging import configure_logging
from perpsignal_common.runtime import freeze_startup_heap
from perpsignal_common.settings import KafkaSettings

N = int(os.environ.get("BENCH_RUNTIME_EVENTS", "100000"))
ROUNDS = int(os.environ.get("BENCH_RUNTIME_ROUNDS", "3"))


async def _fill(kafka: KafkaSettings) -> None:
    await ensure_topics(kafka)
    producer = EventProducer(kafka, "bench")
    await producer.start()
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    template = CandleClosedV1(
        event_id="x",
        source="bench",
        symbol="BTCUSDT",
        observed_at=t0,
        timeframe="1m",
        open_time=t0,
        open=1,
        high=2,
        low=0.5,
        close=1.5,
        volume=10.0,
    )
    topic = kafka.topic(Topic.MARKET)
    for i in range(N):
        sym = f"S{i % 100}USDT"
        ev = template.model_copy(
            update={
                "event_id": deterministic_id(i),
                "symbol": sym,
                "observed_at": t0 + timedelta(seconds=i),
            }
        )
        await producer.send_raw(topic, sym.encode(), encode(ev))
        if i % 5000 == 4999:
            await producer.wait_delivered()
    await producer.wait_delivered()
    await producer.stop()


async def _raw(kafka: KafkaSettings, decode_too: bool) -> tuple[float, float]:
    consumer = AIOKafkaConsumer(
        kafka.topic(Topic.MARKET),
        bootstrap_servers=kafka.kafka_bootstrap_servers,
        group_id=f"raw-{uuid.uuid4().hex[:6]}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=kafka.kafka_fetch_max_wait_ms,
        max_poll_records=kafka.kafka_max_poll_records,
        session_timeout_ms=kafka.kafka_session_timeout_ms,
        heartbeat_interval_ms=kafka.kafka_heartbeat_interval_ms,
    )
    await consumer.start()
    n = 0
    start = None
    cpu0 = 0.0
    while n < N:
        batches = await consumer.getmany(timeout_ms=200)
        if batches and start is None:
            start, cpu0 = time.perf_counter(), time.process_time()
        for recs in batches.values():
            for r in recs:
                if decode_too:
                    decode(r.value)
                n += 1
    elapsed = time.perf_counter() - (start or time.perf_counter())
    cpu_us = (time.process_time() - cpu0) / N * 1e6
    await consumer.stop()
    return N / elapsed, cpu_us


async def _runtime(kafka: KafkaSettings) -> tuple[float, float]:
    producer = EventProducer(kafka, "bench-rt")
    await producer.start()
    count = 0
    start: float | None = None
    cpu0 = 0.0
    done = asyncio.Event()

    async def handler(event: Event, record: Record) -> None:
        nonlocal count, start, cpu0
        if start is None:
            start, cpu0 = time.perf_counter(), time.process_time()
        count += 1
        if count >= N:
            done.set()

    loop = ConsumerLoop(
        kafka=kafka,
        service="bench",
        producer=producer,
        handler=handler,
        options=ConsumerOptions(group_id=f"rt-{uuid.uuid4().hex[:6]}", topics=[Topic.MARKET]),
    )
    await loop.start()
    stop = asyncio.Event()
    task = asyncio.create_task(loop.run(stop))
    await done.wait()
    elapsed = time.perf_counter() - (start or time.perf_counter())
    cpu_us = (time.process_time() - cpu0) / N * 1e6
    stop.set()
    await task
    await loop.stop()
    await producer.stop()
    return N / elapsed, cpu_us


async def _faststream(kafka: KafkaSettings) -> tuple[float, float]:
    from faststream.kafka import KafkaBroker

    count = 0
    start: float | None = None
    cpu0 = 0.0
    done = asyncio.Event()
    broker = KafkaBroker(kafka.kafka_bootstrap_servers, logger=None)

    @broker.subscriber(
        kafka.topic(Topic.MARKET),
        group_id=f"fs-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
        fetch_max_wait_ms=kafka.kafka_fetch_max_wait_ms,
        max_poll_records=kafka.kafka_max_poll_records,
        session_timeout_ms=kafka.kafka_session_timeout_ms,
        heartbeat_interval_ms=kafka.kafka_heartbeat_interval_ms,
    )
    async def handle(event: CandleClosedV1) -> None:
        nonlocal count, start, cpu0
        if start is None:
            start, cpu0 = time.perf_counter(), time.process_time()
        count += 1
        if count >= N:
            done.set()

    await broker.start()
    await done.wait()
    elapsed = time.perf_counter() - (start or time.perf_counter())
    cpu_us = (time.process_time() - cpu0) / N * 1e6
    await broker.stop()
    return N / elapsed, cpu_us


async def _main() -> list[Row]:
    broker = None
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if not bootstrap:
        broker = EmbeddedKafka().start()
        bootstrap = broker.bootstrap
    kafka = KafkaSettings(
        kafka_bootstrap_servers=bootstrap,
        kafka_topic_prefix=f"bench{uuid.uuid4().hex[:6]}.",
        kafka_topic_partitions=1,
    )
    readers: dict[str, Callable[[], Awaitable[tuple[float, float]]]] = {
        "raw": lambda: _raw(kafka, decode_too=False),
        "raw_decode": lambda: _raw(kafka, decode_too=True),
        "runtime": lambda: _runtime(kafka),
        "faststream": lambda: _faststream(kafka),
    }
    rates: dict[str, list[float]] = {name: [] for name in readers}
    cpus: dict[str, list[float]] = {name: [] for name in readers}
    try:
        await _fill(kafka)
        freeze_startup_heap()  # what `serve()` does once a service has started
        for _ in range(ROUNDS):
            for name, read in readers.items():
                rate, cpu_us = await read()
                rates[name].append(rate)
                cpus[name].append(cpu_us)
    finally:
        if broker:
            broker.stop()
    med = {name: statistics.median(v) for name, v in rates.items()}
    cpu = {name: statistics.median(v) for name, v in cpus.items()}
    print("events/s", {name: [round(x) for x in v] for name, v in rates.items()})
    print("CPU us/record", {name: [round(x, 2) for x in v] for name, v in cpus.items()})
    return [
        Row(
            "ConsumerLoop, no-op handler (pydantic decode)",
            med["runtime"],
            "events/s",
            "raw aiokafka loop + same decode",
            med["raw_decode"],
            ">= 0.90x",
            goal_ratio=0.9,
        ),
        Row(
            "ConsumerLoop, no-op handler (pydantic decode)",
            med["runtime"],
            "events/s",
            "faststream Kafka subscriber, same model",
            med["faststream"],
            ">= 1.00x",
            goal_ratio=1.0,
        ),
        # CPU per record of this process (not the broker's): steadier than wall-clock
        # throughput when neighbours take the cores
        Row(
            "ConsumerLoop CPU per record",
            cpu["runtime"],
            "us",
            "raw aiokafka loop + same decode",
            cpu["raw_decode"],
            "info (lower is better)",
            higher_is_better=False,
        ),
        Row(
            "ConsumerLoop CPU per record",
            cpu["runtime"],
            "us",
            "faststream Kafka subscriber, same model",
            cpu["faststream"],
            "info (lower is better)",
            higher_is_better=False,
        ),
        Row(
            "raw aiokafka loop + decode",
            med["raw_decode"],
            "events/s",
            "raw aiokafka loop, no decode",
            med["raw"],
            "info: what validation costs",
        ),
    ]


def main() -> list[dict[str, object]]:
    """Run the benchmark and return its rows."""
    configure_logging("bench", "INFO")  # as run_service() does before serving
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop ships with every service
        rows = asyncio.run(_main())
    else:
        rows = uvloop.run(_main())
    return report("runtime_throughput", rows)


if __name__ == "__main__":
    main()
