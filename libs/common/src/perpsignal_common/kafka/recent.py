"""Event ids recently published to a topic: the output side of "never repeat an effect".

A service killed after publishing an output but before committing its input re-handles that
input on restart. A deterministic handler republishes an identical event (consumers dedupe by
`event_id`), but a non-deterministic one (an LLM answer, a timeout fallback) would publish the
same id with different content. Reading back which ids already reached the output topic lets
such a handler skip inputs whose effect is already published.
"""

from __future__ import annotations

import asyncio
import logging
import time

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from perpsignal_common.errors import DependencyUnavailable
from perpsignal_common.kafka.positions import partitions_for
from perpsignal_common.settings import KafkaSettings

log = logging.getLogger(__name__)


async def recent_event_ids(
    kafka: KafkaSettings,
    topic: str,
    since_ms: int,
    *,
    client_id: str = "perpsignal-recent",
    timeout_s: float = 60.0,
    margin: int = 1000,
) -> set[str]:
    """Return the `event_id` header of every record appended to `topic` at or after `since_ms`.

    Reads each partition from `offsets_for_times(since_ms)` up to its high watermark at the
    time of the first fetch (records appended later are not waited for). Only headers are
    read; values are never decoded.
    """
    physical = kafka.topic(topic)
    consumer = AIOKafkaConsumer(
        **kafka.client_kwargs(),
        client_id=client_id,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=kafka.kafka_fetch_max_wait_ms,
    )
    ids: set[str] = set()
    started = time.monotonic()
    try:
        await consumer.start()
        parts = [
            TopicPartition(physical, p) for p in sorted(await partitions_for(consumer, physical))
        ]
        starts = await consumer.offsets_for_times(dict.fromkeys(parts, since_ms))
        todo = {tp: ts.offset for tp, ts in starts.items() if ts is not None}
        if not todo:
            return ids
        consumer.assign(list(todo))
        for tp, offset in todo.items():
            # a margin before the broker's answer: reading a few older ids costs little, and
            # a timestamp lookup that lands one batch late would miss the very ids we need
            consumer.seek(tp, max(0, offset - margin))
        async with asyncio.timeout(timeout_s):
            while todo:
                batches = await consumer.getmany(timeout_ms=500)
                for records in batches.values():
                    for r in records:
                        for key, value in r.headers:
                            if key == "event_id":
                                ids.add(value.decode())
                                break
                for tp in list(todo):
                    high = consumer.highwater(tp)
                    if high is not None and await consumer.position(tp) >= high:
                        del todo[tp]
    except (KafkaError, TimeoutError) as exc:
        raise DependencyUnavailable(f"cannot read back {physical}: {exc!r}") from exc
    finally:
        await consumer.stop()
    log.info(
        "read back recently published event ids",
        extra={
            "topic": physical,
            "since_ms": since_ms,
            "event_ids": len(ids),
            "seconds": round(time.monotonic() - started, 3),
        },
    )
    return ids
