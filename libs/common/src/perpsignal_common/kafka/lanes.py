"""The consumer loop's bookkeeping: per-partition done flags and per-key lanes of records."""

from __future__ import annotations

from collections import deque
from typing import TypeAlias

from aiokafka.structs import ConsumerRecord, TopicPartition

Record: TypeAlias = "ConsumerRecord[bytes, bytes]"


class OffsetBook:
    """Done flags of one partition's dispatched records, by offset, across batches.

    A bytearray rather than an object per record: records in flight would otherwise each
    keep a few garbage-collected containers alive, and the collector's passes over them
    cost more than the bookkeeping itself. Offsets only grow within one book (a seek back
    comes with a new book, see `ConsumerLoop._forget`); offsets a batch skips (compaction,
    transaction markers) count as done.
    """

    __slots__ = ("base", "flags")

    def __init__(self) -> None:
        self.base = -1  # offset of flags[0]; -1 until the first record
        self.flags = bytearray()

    def add(self, records: list[Record]) -> None:
        """Open a flag for each record of one fetched batch (offsets ascending)."""
        first = records[0].offset
        flags = self.flags
        if self.base < 0:
            self.base = first
        expected = self.next_offset
        if first < expected:
            raise RuntimeError(f"offset {first} dispatched twice (book at {expected})")
        span = records[-1].offset + 1 - expected
        if span == len(records) and first == expected:
            flags.extend(bytes(span))  # contiguous: the usual case
            return
        flags.extend(b"\x01" * span)
        base = self.base
        for record in records:
            flags[record.offset - base] = 0

    @property
    def next_offset(self) -> int:
        """The offset after the last one opened (the first record's before any)."""
        return self.base + len(self.flags)

    def done(self, offset: int) -> None:
        """Mark one record's effect durable."""
        self.flags[offset - self.base] = 1

    def advance(self) -> int | None:
        """Drop the finished prefix; return the offset after it, or None when none finished."""
        flags = self.flags
        n = flags.find(0)
        if n < 0:
            n = len(flags)
        if n == 0:
            return None
        del flags[:n]
        self.base += n
        return self.base


class Lane:
    """One key's queued records of one partition, and the book they were dispatched under.

    A lane knows its partition, key and the partition's lane table (`lanes`, key -> lane) it
    belongs to, so the hot path never hashes a (partition, key) tuple: tuple hashes are not
    cached, bytes hashes are.
    """

    __slots__ = ("book", "key", "lanes", "records", "tp")

    def __init__(
        self,
        tp: TopicPartition,
        key: bytes | None,
        book: OffsetBook,
        lanes: dict[bytes | None, Lane],
    ) -> None:
        self.tp = tp
        self.key = key
        self.book = book
        self.lanes = lanes
        self.records: deque[Record] = deque()

    def release(self) -> None:
        """Leave the lane table, unless a rebalance already replaced this lane."""
        if self.lanes.get(self.key) is self:
            del self.lanes[self.key]
