"""Partition positions: topic metadata and readers that outlived an empty broker."""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from perpsignal_common.errors import DependencyUnavailable

log = logging.getLogger(__name__)


async def partitions_for(
    consumer: AIOKafkaConsumer, topic: str, *, attempts: int = 100
) -> set[int]:
    """Return the partitions of `topic`, refreshing metadata until the broker knows it."""
    for _ in range(attempts):
        parts = consumer.partitions_for_topic(topic)
        if parts:
            return set(parts)
        await consumer._client.force_metadata_update()
        await asyncio.sleep(0.1)
    raise DependencyUnavailable(f"topic {topic} has no partitions")


async def known_position(consumer: AIOKafkaConsumer, tp: TopicPartition) -> int | None:
    """Return `tp`'s fetch position if the client knows it now, else None; never waits.

    `AIOKafkaConsumer.position()` waits for a pending position (after an assignment, a seek
    to the beginning, an out-of-range reset) until the broker answers, retrying every request
    timeout without limit: through a broker outage that is the whole outage, and a fetch loop
    that awaited it for its lag gauge stopped consuming. Under a timeout that has already
    expired, a known position returns at once (`position()` does not suspend then) and an
    unknown one is cancelled at its first wait. A partition no longer assigned is None too.
    """
    try:
        async with asyncio.timeout(0):
            position: int = await consumer.position(tp)
            return position
    except (TimeoutError, KafkaError):
        return None


async def reset_past_log_end(consumer: AIOKafkaConsumer, reader: str) -> set[TopicPartition]:
    """Seek to the beginning every partition whose position is beyond its log end.

    Only an empty broker that came back (the embedded one keeps no data across restarts)
    makes this happen: the position belongs to the lost log, and the embedded broker answers
    fetches beyond its log end with nothing rather than an out-of-range error, so without
    this the reader would wait for the new log to grow past the old position. Returns the
    partitions reset.
    """
    reset: list[TopicPartition] = []
    for tp in consumer.assignment():
        high = consumer.highwater(tp)
        if high is None:
            continue
        # an unknown position is being reset already: not the lost log's
        pos = await known_position(consumer, tp)
        if pos is not None and pos > high:
            reset.append(tp)
    if reset:
        await consumer.seek_to_beginning(*reset)
        log.warning(
            "position beyond the log end (an empty broker after a restart); reading again "
            "from the beginning",
            extra={"reader": reader, "partitions": [str(tp) for tp in reset]},
        )
    return set(reset)
