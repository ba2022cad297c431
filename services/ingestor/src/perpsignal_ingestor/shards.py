"""Symbol shards from Kafka group membership: which replica polls which symbol.

Every ingestor replica joins the consumer group `ingestor` on `commands.v1`. A symbol belongs
to the partition its key hashes to with Kafka's default partitioner (murmur2 of the symbol,
as every producer keys `commands.v1`), so the replica that is assigned that partition is the
symbol's only poller, and a track command for the symbol lands on that replica. Market-wide
sources (fear & greed, CoinGecko, LunarCrush, Coinglass, CoinAPI, listing announcements) run
on the replica that holds partition 0. Kafka's group protocol gives no gap (every partition
has an owner while one member lives) and no overlap (a partition has one owner at a time);
the ownership here follows the rebalance callbacks: emptied on revoke, before the partitions
are released, and set on assign.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable
from typing import Any

from aiokafka.partitioner import murmur2

from perpsignal_ingestor.metrics import OWNED_PARTITIONS, OWNED_SYMBOLS


def partition_of(symbol: str, partitions: int) -> int:
    """Return the partition aiokafka's (and the Java client's) default partitioner picks."""
    return int(murmur2(symbol.upper().encode()) & 0x7FFFFFFF) % partitions


class ShardMap:
    """The partitions this replica owns, and which symbols that makes its own."""

    def __init__(self, replica: str | None = None) -> None:
        self.replica = replica or f"{socket.gethostname()}:{os.getpid()}"
        self.member_id: str | None = None
        self.partitions: frozenset[int] = frozenset()
        self.partition_count: int | None = None
        self.generation = 0

    def assign(
        self, partitions: Iterable[int], partition_count: int, member_id: str | None
    ) -> None:
        """Adopt a new assignment (called from the group's on-assigned callback)."""
        self.partitions = frozenset(partitions)
        self.partition_count = partition_count
        self.member_id = member_id
        self.generation += 1
        OWNED_PARTITIONS.set(len(self.partitions))

    def revoke(self, partitions: Iterable[int] | None = None) -> None:
        """Give up `partitions` (all by default) before they are released to the group.

        aiokafka rebalances eagerly (every partition is revoked, then the new assignment
        given), so this empties the map; an incremental protocol would pass only some.
        """
        self.partitions = (
            frozenset() if partitions is None else self.partitions - frozenset(partitions)
        )
        OWNED_PARTITIONS.set(len(self.partitions))
        if not self.partitions:
            OWNED_SYMBOLS.set(0)

    def active(self) -> bool:
        """Return True while this replica owns at least one partition."""
        return bool(self.partitions) and self.partition_count is not None

    def leads(self) -> bool:
        """Return True when this replica runs the market-wide sources (it holds partition 0)."""
        return 0 in self.partitions and self.partition_count is not None

    def owns(self, symbol: str) -> bool:
        """Return True when `symbol`'s partition is assigned to this replica."""
        if self.partition_count is None or not self.partitions:
            return False
        return partition_of(symbol, self.partition_count) in self.partitions

    def snapshot(self, symbols: Iterable[str]) -> dict[str, Any]:
        """Return the `/shards` document: who this replica is and what it polls."""
        owned = sorted(symbols)
        OWNED_SYMBOLS.set(len(owned))
        return {
            "replica": self.replica,
            "member_id": self.member_id,
            "generation": self.generation,
            "partition_count": self.partition_count,
            "partitions": sorted(self.partitions),
            "leader": self.leads(),
            "symbols": owned,
        }
