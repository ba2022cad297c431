"""What a consumer loop is configured with: its options and the handler/decoder types."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from aiokafka import TopicPartition

from perpsignal_common.events.base import Event
from perpsignal_common.kafka.lanes import Record
from perpsignal_common.retry import RetryPolicy

Handler = Callable[[Event, Record], Awaitable[None]]
Decoder = Callable[[bytes | None], Event]


@dataclass
class ConsumerOptions:
    """Behaviour of one consumer loop."""

    group_id: str | None
    topics: Sequence[str]  # logical names; the Kafka prefix is applied
    concurrency: int = 16
    handler_timeout_s: float = 30.0
    dependency_grace_s: float = 120.0
    commit_timeout_s: float = 10.0
    batch_max_records: int | None = None
    # attempts per record before it is dead-lettered, and the backoff between them
    retry: RetryPolicy = field(default_factory=lambda: RetryPolicy(max_attempts=5))
    # Read every partition without a group (state fan-in, e.g. market.global for scorers)
    assign_all: bool = False
    # Rebuild in-memory state after (re)assignment: seek each partition back this many
    # records before its committed offset (-1 = from the beginning). Records before the
    # committed offset are "replays": `ConsumerLoop.is_replay(record)` is True for them, so
    # a handler updates state but repeats no side effect
    rewind_on_assign: int | None = None
    # ... and at least this far back in time (seconds, by the records' timestamps): a count
    # of records is days of history for a few symbols but hours for hundreds, while the
    # state's windows (EMAs, structure, ranked inputs) are measured in time. None: by count
    rewind_on_assign_s: float | None = None
    # Called with each new assignment (after any rewind), before its records are handled:
    # e.g. to read back which outputs a killed predecessor already published
    on_assigned: Callable[[set[TopicPartition]], Awaitable[None]] | None = None
    # Called with the partitions about to be taken away, before anything else of the
    # rebalance (commit, release): e.g. to stop work keyed to them so the next owner never
    # overlaps (the ingestor's symbol shards)
    on_revoked: Callable[[set[TopicPartition]], Awaitable[None]] | None = None
