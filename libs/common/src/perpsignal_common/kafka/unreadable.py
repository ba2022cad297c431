"""Records the client cannot even parse: find them, read what precedes them, step over them.

aiokafka decodes every header key as strict UTF-8 while it unpacks a fetch; a record whose
header key is not UTF-8 (another client may write any bytes there; the Java client reads
them with replacement characters) makes `getmany` raise `UnicodeDecodeError`. The fetch is
dropped and fetched again from the same position, so the consumer would fail on the same
record forever, on every restart, and every record of the partition behind it waits.

`find_unreadable` names the partition and offset (the fetcher's record iterator for that
partition is the one that ended in the exception; aiokafka is pinned in uv.lock), and
`read_before` reads the partition's records in front of it with a separate, group-less
reader, one record per call so the unreadable one is never unpacked.
"""

from __future__ import annotations

import time
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord

from perpsignal_common.errors import DependencyUnavailable
from perpsignal_common.kafka.lanes import Record
from perpsignal_common.settings import KafkaSettings


def find_unreadable(consumer: AIOKafkaConsumer) -> tuple[TopicPartition, int] | None:
    """Return the partition and offset of the record the last `getmany` failed to unpack."""
    fetcher = getattr(consumer, "_fetcher", None)
    fetched: dict[TopicPartition, Any] = getattr(fetcher, "_records", None) or {}
    for tp, result in list(fetched.items()):
        records: Any = getattr(result, "_partition_records", None)
        iterator = getattr(records, "_records_iterator", None)
        # a generator that ended by raising has no frame, yet PartitionRecords still holds
        # it (it drops its iterator only at a normal end)
        if iterator is not None and getattr(iterator, "gi_frame", True) is None:
            return tp, int(records.next_fetch_offset)
    return None


async def read_before(
    kafka: KafkaSettings, service: str, tp: TopicPartition, start: int, end: int, timeout_s: float
) -> list[Record]:
    """Return the records of `tp` from `start` up to (not including) offset `end`."""
    if start >= end:
        return []
    reader = AIOKafkaConsumer(
        **kafka.client_kwargs(),
        client_id=f"{service}-unreadable-reader",
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=kafka.kafka_fetch_max_wait_ms,
    )
    records: list[Record] = []
    deadline = time.monotonic() + timeout_s
    try:
        await reader.start()
        reader.assign([tp])
        reader.seek(tp, start)
        while await reader.position(tp) < end:
            if time.monotonic() > deadline:
                raise DependencyUnavailable(
                    f"cannot read {tp.topic}:{tp.partition} up to offset {end} in time"
                )
            # one record per call: getmany unpacks only what it returns
            got = await reader.getmany(tp, timeout_ms=200, max_records=1)
            records.extend(r for r in got.get(tp, ()) if r.offset < end)
    except (KafkaError, OSError, TimeoutError) as exc:
        raise DependencyUnavailable(f"cannot read {tp.topic}:{tp.partition}: {exc!r}") from exc
    finally:
        await reader.stop()
    return records


def placeholder(tp: TopicPartition, offset: int) -> Record:
    """A stand-in for the unreadable record, for its dead letter: where it is, no content."""
    return ConsumerRecord(
        topic=tp.topic,
        partition=tp.partition,
        offset=offset,
        timestamp=-1,
        timestamp_type=0,
        key=None,
        value=None,
        checksum=None,
        serialized_key_size=-1,
        serialized_value_size=-1,
        headers=(),
    )
