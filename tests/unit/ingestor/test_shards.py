"""Symbol shards: the partition rule matches Kafka's producer, shards split a universe
exactly, and a source loop polls only while its replica holds the shard it needs."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from aiokafka.partitioner import DefaultPartitioner

from perpsignal_common.events.market import FearGreedV1
from perpsignal_ingestor.publisher import Publisher
from perpsignal_ingestor.scheduler import SourceLoop
from perpsignal_ingestor.shards import ShardMap, partition_of
from perpsignal_ingestor.sources.liquidations import LiquidationAggregator, LiquidationRelay
from perpsignal_ingestor.universe import Universe
from tests.helpers import eventually
from tests.unit.ingestor.test_liquidations import liq
from tests.unit.ingestor.test_universe import EXCHANGE, info

SYMBOLS = [f"C{i}USDT" for i in range(200)]


def test_partition_rule_is_the_producers_default_partitioner() -> None:
    # a track command keyed by its symbol is produced to this partition, so it reaches the
    # replica that polls the symbol
    for n in (3, 6, 12):
        parts = list(range(n))
        for sym in ["BTCUSDT", "ETHUSDT", "1000PEPEUSDT", *SYMBOLS]:
            assert partition_of(sym, n) == DefaultPartitioner()(sym.encode(), parts, parts)


def test_replicas_split_the_universe_with_no_gap_and_no_overlap() -> None:
    exchange = [info(s) for s in SYMBOLS]
    shards = [ShardMap(f"r{i}") for i in range(3)]
    for i, shard in enumerate(shards):
        shard.assign(range(i, 12, 3), 12, f"m{i}")  # what a 3-member round robin gives
    universes = [Universe(["*"], shard=s) for s in shards]
    for u in universes:
        u.update_exchange(exchange)
    owned = [set(u.binance_symbols()) for u in universes]
    assert set().union(*owned) == set(SYMBOLS)
    assert sum(map(len, owned)) == len(SYMBOLS)
    assert all(owned)  # every replica has work
    assert [s.leads() for s in shards] == [True, False, False]
    # every replica still knows the whole tracked universe (market-wide vendor caps use it)
    assert all(u.tracked() == sorted(SYMBOLS) for u in universes)


def test_a_replica_owns_nothing_before_its_first_assignment_and_after_revoke() -> None:
    shard = ShardMap()
    universe = Universe(["BTCUSDT", "ETHUSDT"], shard=shard)
    universe.update_exchange(EXCHANGE)
    assert universe.binance_symbols() == [] and not shard.active()
    shard.assign(range(3), 3, "m")
    assert universe.binance_symbols() == ["BTCUSDT", "ETHUSDT"]
    doc = shard.snapshot(universe.binance_symbols())
    assert doc["partitions"] == [0, 1, 2] and doc["leader"] and doc["member_id"] == "m"
    shard.revoke()
    assert universe.binance_symbols() == [] and not shard.leads()


def test_without_shards_a_lone_ingestor_owns_everything() -> None:
    universe = Universe(["BTCUSDT", "ETHUSDT"])
    universe.update_exchange(EXCHANGE)
    assert universe.binance_symbols() == ["BTCUSDT", "ETHUSDT"]


async def test_a_source_loop_polls_only_while_active_and_its_poll_is_cancelled_on_revoke(
    producer,
) -> None:
    publisher = Publisher(producer)  # type: ignore[arg-type]
    shard = ShardMap()
    polls = 0
    started = asyncio.Event()
    release = asyncio.Event()

    async def poll() -> list[FearGreedV1]:
        nonlocal polls
        polls += 1
        started.set()
        await release.wait()
        return [
            FearGreedV1(
                event_id=f"fg{polls}",
                source="t",
                symbol="fear_greed",
                observed_at=datetime(2024, 1, polls, tzinfo=UTC),
                value=50,
            )
        ]

    loop = SourceLoop("fear_greed", 3600, poll, publisher, active=shard.leads)
    stop = asyncio.Event()
    task = asyncio.create_task(loop.run(stop))
    await asyncio.sleep(0.6)  # more than one idle check
    assert polls == 0  # not the leader: market-wide source stays idle
    shard.assign([0, 1], 3, "m")
    await asyncio.wait_for(started.wait(), 2)  # takes over at once: never polled before
    shard.revoke()
    await loop.interrupt()  # what the revoke callback does before partitions are released
    assert producer.events == []  # the cancelled poll published nothing
    release.set()
    await asyncio.sleep(0.6)
    assert polls == 1  # idle again until it leads
    shard.assign([0], 3, "m")
    await eventually(lambda: producer.events, timeout=5, what="poll after re-assign")
    stop.set()
    await asyncio.wait_for(task, 5)
    assert polls == 2


async def test_liquidations_are_relayed_by_the_owner_only(producer) -> None:
    shards = [ShardMap("a"), ShardMap("b")]
    shards[0].assign([0, 2], 3, "a")
    shards[1].assign([1], 3, "b")
    # one publisher per replica: each would otherwise dedupe the other's events
    relays = [
        LiquidationRelay(
            Publisher(producer),  # type: ignore[arg-type]
            LiquidationAggregator(),
            "binance_stream",
            owns=s.owns,
        )
        for s in shards
    ]
    at = datetime(2024, 1, 1, tzinfo=UTC)
    for i, sym in enumerate(SYMBOLS[:30]):
        for relay in relays:
            await relay.on_liquidation(liq(i, sym, "LONG", 1000, at))
    relayed = [e.symbol for e in producer.events]
    assert sorted(relayed) == sorted(SYMBOLS[:30])  # each order once, by its owner


def test_an_incremental_revoke_keeps_the_other_partitions() -> None:
    shard = ShardMap()
    shard.assign([0, 1, 2], 3, "m")
    kept = [s for s in SYMBOLS if partition_of(s, 3) != 0]
    shard.revoke([0])
    assert not shard.leads() and shard.active()
    assert [s for s in SYMBOLS if shard.owns(s)] == kept


def test_a_bucket_is_published_by_the_symbols_owner_at_the_windows_end_only() -> None:
    shard = ShardMap()
    shard.assign([0, 1, 2], 3, "m")
    now = [datetime(2024, 1, 1, tzinfo=UTC).timestamp() + 10]
    agg = LiquidationAggregator(300, clock=lambda: now[0], owns=shard.owns)
    at = datetime(2024, 1, 1, 0, 0, 5, tzinfo=UTC)
    lost = next(s for s in SYMBOLS if partition_of(s, 3) == 0)
    kept = next(s for s in SYMBOLS if partition_of(s, 3) == 1)
    agg.add(liq(1, lost, "LONG", 1000, at))
    agg.add(liq(2, kept, "SHORT", 500, at))
    shard.revoke([0])  # the lost symbol's new owner sums its own share of the window
    now[0] += 300
    assert [b.symbol for b in agg.flush()] == [kept]


def test_a_flush_during_a_rebalance_keeps_the_buckets_of_symbols_that_stay() -> None:
    """An eager rebalance revokes everything for 1-3 s before handing the same partitions
    back: a flush falling in that gap must not drop the ended window's buckets."""
    shard = ShardMap()
    shard.assign([0, 1, 2], 3, "m")
    now = [datetime(2024, 1, 1, tzinfo=UTC).timestamp() + 10]
    agg = LiquidationAggregator(300, clock=lambda: now[0], owns=shard.owns, settled=shard.active)
    at = datetime(2024, 1, 1, 0, 0, 5, tzinfo=UTC)
    agg.add(liq(1, "BTCUSDT", "LONG", 1000, at))
    agg.add(liq(2, "ETHUSDT", "SHORT", 500, at))
    now[0] += 291  # the window ended 1 s ago
    shard.revoke()  # rebalance in flight: this replica owns nothing for now
    assert agg.flush() == []
    now[0] += 2
    shard.assign([0, 1, 2], 3, "m")  # the same partitions come back
    assert sorted(b.symbol for b in agg.flush()) == ["BTCUSDT", "ETHUSDT"]


def test_buckets_held_by_a_replica_left_without_partitions_are_dropped_after_a_window() -> None:
    """A replica that stays a standby must not publish old partial sums much later."""
    shard = ShardMap()
    shard.assign([0, 1, 2], 3, "m")
    now = [datetime(2024, 1, 1, tzinfo=UTC).timestamp() + 10]
    agg = LiquidationAggregator(300, clock=lambda: now[0], owns=shard.owns, settled=shard.active)
    agg.add(liq(1, "BTCUSDT", "LONG", 1000, datetime(2024, 1, 1, 0, 0, 5, tzinfo=UTC)))
    shard.revoke()
    now[0] += 300
    assert agg.flush() == []
    now[0] += 300  # a whole window later, still no partitions
    assert agg.flush() == []
    shard.assign([0, 1, 2], 3, "m")
    assert agg.flush() == []
