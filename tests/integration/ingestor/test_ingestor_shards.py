"""Sharded ingestion: several ingestor processes on the embedded broker split the symbol
universe by their group's partitions of commands.v1.

Each replica talks to its own fake vendor server, so the calls a server records are the
polls of one replica: a symbol's `openInterest` request is made on every market poll, which
makes it the per-symbol poll marker. Ownership is read from each replica's `/shards`.
"""

from __future__ import annotations

import itertools
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
import pytest

from perpsignal_common.embedded import free_port
from perpsignal_common.events.base import deterministic_id, utcnow
from perpsignal_common.events.market import TrackCommandV1
from perpsignal_common.events.registry import decode
from perpsignal_common.events.topics import Topic
from perpsignal_common.kafka.producer import EventProducer
from perpsignal_common.settings import KafkaSettings
from perpsignal_ingestor.shards import partition_of
from tests.fakes.vendors import FakeVendors
from tests.helpers import ServiceProcess, TopicReader, eventually

pytestmark = [pytest.mark.kafka, pytest.mark.db, pytest.mark.timeout(240)]

PARTITIONS = 6
CADENCE_S = 2.0
SESSION_S = 2.0  # KAFKA_SESSION_TIMEOUT_MS of the test environment
# chosen so every one of the 6 partitions holds at least one symbol
WATCH = [
    f"{c}USDT"
    for c in "BTC ETH SOL XRP BNB DOGE ADA AVAX LINK DOT TRX LTC INJ".split()  # noqa: SIM905
]
ON_DEMAND = "SUIUSDT"  # tradable, not watched: tracked only by command
# asked for in lower case: its key hashes to partition 2, the symbol's shard is partition 3
MISSPELT = "nearusdt"


class Replica:
    """One ingestor process with its own fake vendors and ops port."""

    def __init__(self, name: str, fake: FakeVendors, proc: ServiceProcess, port: int) -> None:
        self.name = name
        self.fake = fake
        self.proc = proc
        self.port = port

    async def shards(self) -> dict[str, Any] | None:
        try:
            async with httpx.AsyncClient(timeout=2) as client:
                r = await client.get(f"http://127.0.0.1:{self.port}/shards")
        except httpx.HTTPError:
            return None
        return r.json() if r.status_code == 200 else None

    def polls(self, since: float = 0.0, until: float = float("inf")) -> list[tuple[float, str]]:
        """(time, symbol) of every per-symbol Binance poll this replica made in the window."""
        return [
            (t, q["symbol"])
            for (vendor, path, q), t in zip(self.fake.calls, self.fake.call_times, strict=True)
            if vendor == "binance" and path == "/fapi/v1/openInterest" and since <= t <= until
        ]

    def calls_to(self, vendor: str, since: float) -> int:
        return sum(
            1
            for (v, _, _), t in zip(self.fake.calls, self.fake.call_times, strict=True)
            if v == vendor and t >= since
        )


class Cluster:
    """Start and stop ingestor replicas that share the broker, database and settings."""

    def __init__(
        self, shared_data: Path, env: dict[str, str], tmp_path: Path, partitions: int = PARTITIONS
    ) -> None:
        self.partitions = partitions
        self.shared_data = shared_data
        self.env = env
        self.tmp_path = tmp_path
        self.replicas: list[Replica] = []
        self._names = (f"r{i}" for i in itertools.count(1))

    async def add(self) -> Replica:
        name = next(self._names)
        fake = await FakeVendors(
            self.shared_data, symbols=[*WATCH, ON_DEMAND, MISSPELT.upper()]
        ).start()
        port = free_port()
        log_dir = self.tmp_path / name
        log_dir.mkdir()
        env = {
            **self.env,
            **fake.env(),
            "OPS_PORT": str(port),
            "KAFKA_TOPIC_PARTITIONS": str(self.partitions),
        }
        replica = Replica(name, fake, ServiceProcess("ingestor", env, log_dir).start(), port)
        self.replicas.append(replica)
        return replica

    def live(self) -> list[Replica]:
        return [r for r in self.replicas if r.proc.proc and r.proc.proc.poll() is None]

    async def owners(self, universe: set[str]) -> dict[str, str] | None:
        """Return symbol -> replica when the live replicas' shards cover `universe` exactly."""
        live = self.live()
        docs = [await r.shards() for r in live]
        # every live replica has joined (fewer replicas than partitions: each gets some)
        if any(d is None or d["generation"] == 0 for d in docs):
            return None
        if len(live) <= self.partitions and any(d and not d["partitions"] for d in docs):
            return None
        parts = [set(d["partitions"]) for d in docs if d is not None]
        n = self.partitions
        if sum(map(len, parts)) != n or set().union(*parts) != set(range(n)):
            return None
        owner: dict[str, str] = {}
        for r, d in zip(live, docs, strict=True):
            assert d is not None
            for sym in d["symbols"]:
                if sym in owner:
                    return None  # mid-rebalance: an old and a new document
                owner[sym] = r.name
                # the owner is the replica holding the symbol's default-partitioner partition
                assert partition_of(sym, self.partitions) in d["partitions"], (sym, d)
        return owner if set(owner) == universe else None

    async def settle(self, universe: set[str], what: str) -> tuple[dict[str, str], float]:
        owner = await eventually(
            lambda: self.owners(universe), timeout=120, interval=0.1, what=f"{what}\n{self.logs()}"
        )
        return owner, time.monotonic()

    def pollers(self, start: float, end: float) -> dict[str, set[str]]:
        seen: dict[str, set[str]] = defaultdict(set)
        for r in self.replicas:
            for _, sym in r.polls(start, end):
                seen[sym].add(r.name)
        return dict(seen)

    def timeline(self, since: float) -> dict[str, list[tuple[float, str]]]:
        out: dict[str, list[tuple[float, str]]] = defaultdict(list)
        for r in self.replicas:
            for t, sym in r.polls(since):
                out[sym].append((t, r.name))
        return {s: sorted(v) for s, v in out.items()}

    def logs(self) -> str:
        return "\n".join(f"--- {r.name}\n{r.proc.logs()[-3000:]}" for r in self.replicas)

    async def close(self) -> None:
        for r in self.replicas:
            r.proc.kill()
            await r.fake.stop()


@pytest.fixture
def env(kafka_env: dict[str, str], database_url: str) -> dict[str, str]:
    return {
        **kafka_env,
        "KAFKA_TOPIC_PARTITIONS": str(PARTITIONS),
        "DATABASE_URL": database_url,
        "LOG_LEVEL": "INFO",
        "INGESTOR_SYMBOLS": ",".join(WATCH),
        "INGESTOR_TIMEFRAMES": "1h",
        "INGESTOR_ENABLED_SOURCES": "binance,listings,fear_greed",
        "INGESTOR_BINANCE_CADENCE_S": str(CADENCE_S),
        "INGESTOR_LISTINGS_CADENCE_S": "1",
        "INGESTOR_FEAR_GREED_CADENCE_S": str(CADENCE_S),
        "INGESTOR_BINANCE_WEIGHT_BUDGET": "2400",
    }


@pytest.fixture
async def cluster(shared_data: Path, env: dict[str, str], tmp_path: Path) -> Any:
    c = Cluster(shared_data, env, tmp_path)
    try:
        yield c
    finally:
        await c.close()


async def window(cluster: Cluster, owner: dict[str, str], start: float) -> None:
    """Wait two cadences from `start`; every symbol polled by exactly its owner meanwhile."""
    end = start + 2 * CADENCE_S + 0.5
    await eventually(lambda: time.monotonic() >= end, timeout=30, interval=0.1, what="window")
    seen = cluster.pollers(start, end)
    assert seen == {s: {o} for s, o in owner.items()}, cluster.logs()


def handover(
    cluster: Cluster, owner: dict[str, str], changed_at: float, settled_at: float
) -> float:
    """Check each symbol's polls since a membership change; return the longest gap.

    Per symbol the pollers after the change are the old owner, then the new one, never
    interleaved (no overlap), and the new owner's first poll comes within one cadence of
    the group settling (no gap).
    """
    longest = 0.0
    for sym, polls in cluster.timeline(changed_at - CADENCE_S).items():
        if sym not in owner:
            continue
        runs = [name for name, _ in itertools.groupby(n for _, n in polls)]
        assert runs[-1] == owner[sym], (sym, runs)
        assert len(runs) <= 2, f"{sym} polled by {runs}: overlap\n{cluster.logs()}"
        first_new = next(t for t, n in polls if n == owner[sym] and t >= changed_at - CADENCE_S)
        if len(runs) == 2:
            assert first_new <= settled_at + CADENCE_S + 0.5, (sym, first_new - settled_at)
        times = [t for t, _ in polls]
        longest = max([longest, *(b - a for a, b in itertools.pairwise(times))])
    return longest


async def test_two_replicas_split_the_universe_and_route_tracking(
    cluster: Cluster, kafka_settings: KafkaSettings
) -> None:
    a, b = await cluster.add(), await cluster.add()
    universe = set(WATCH)
    owner, settled_at = await cluster.settle(universe, "two replicas cover the universe")
    assert {"r1", "r2"} == set(owner.values()), owner  # both got a share
    await window(cluster, owner, settled_at)

    # market-wide sources run once: on partition 0's owner only
    docs = {r.name: await r.shards() for r in (a, b)}
    leader = next(r for r in (a, b) if docs[r.name]["leader"])  # type: ignore[index]
    other = b if leader is a else a
    assert 0 in docs[leader.name]["partitions"]  # type: ignore[index]
    assert leader.calls_to("alternative_me", settled_at) >= 1
    assert other.calls_to("alternative_me", settled_at) == 0

    # a track command keyed by the symbol lands on its owner's partition, and only the owner
    # polls the new symbol
    producer = EventProducer(
        kafka_settings.model_copy(update={"kafka_topic_partitions": PARTITIONS}), service="test"
    )
    await producer.start()
    try:
        sent_at = time.monotonic()
        for symbol in (ON_DEMAND, MISSPELT):
            await producer.publish(
                TrackCommandV1(
                    event_id=deterministic_id("test", "track", symbol),
                    source="test",
                    symbol=symbol,
                    observed_at=utcnow(),
                    ttl_s=600,
                ),
                wait=True,
            )
    finally:
        await producer.stop()
    async with TopicReader(kafka_settings, Topic.COMMANDS) as commands:
        # the misspelt command's key hashes elsewhere: the replica that read it forwarded it,
        # normalised, to the shard of the symbol
        await commands.wait_for(3, timeout=30)
    by_symbol = {decode(r.value).symbol: r.partition for r in commands.records}
    part = partition_of(ON_DEMAND, PARTITIONS)
    assert by_symbol[ON_DEMAND] == part
    assert by_symbol[MISSPELT] != by_symbol[MISSPELT.upper()] == partition_of(MISSPELT, 6)
    target = next(r for r in (a, b) if part in docs[r.name]["partitions"])  # type: ignore[index]
    bystander = b if target is a else a
    await eventually(
        lambda: any(s == ON_DEMAND for _, s in target.polls(sent_at)),
        timeout=30,
        what=f"{ON_DEMAND} polled by its owner\n{cluster.logs()}",
    )
    owner, settled_at = await cluster.settle(
        universe | {ON_DEMAND, MISSPELT.upper()}, "tracked symbols owned"
    )
    assert owner[ON_DEMAND] == target.name
    await window(cluster, owner, settled_at)
    assert not any(s == ON_DEMAND for _, s in bystander.polls())
    near = [r for r in (a, b) if partition_of(MISSPELT, 6) in docs[r.name]["partitions"]]  # type: ignore[index]
    assert [r.name for r in near] == [owner[MISSPELT.upper()]]
    assert {r.name for r in (a, b) if any(s == MISSPELT.upper() for _, s in r.polls())} == {
        owner[MISSPELT.upper()]
    }


async def test_rebalance_add_and_remove_replicas_while_polling(cluster: Cluster) -> None:
    universe = set(WATCH)
    await cluster.add()
    await cluster.add()
    owner, settled_at = await cluster.settle(universe, "two replicas")
    await window(cluster, owner, settled_at)
    gaps: dict[str, float] = {}
    settle_s: dict[str, float] = {}

    # scale out: a third replica joins while the others poll
    changed_at = time.monotonic()
    third = await cluster.add()
    owner, settled_at = await cluster.settle(universe, "three replicas")
    assert third.name in owner.values()
    await window(cluster, owner, settled_at)
    gaps["add"] = handover(cluster, owner, changed_at, settled_at)
    settle_s["add"] = settled_at - changed_at

    # scale in: SIGTERM leaves the group at once
    changed_at = time.monotonic()
    assert third.proc.terminate(timeout=30) == 0
    owner, settled_at = await cluster.settle(universe, "back to two")
    await window(cluster, owner, settled_at)
    gaps["remove"] = handover(cluster, owner, changed_at, settled_at)
    settle_s["remove"] = settled_at - changed_at

    # a replica dies: its symbols move once the group's session times out
    changed_at = time.monotonic()
    cluster.replicas[1].proc.kill()
    owner, settled_at = await cluster.settle(universe, "the survivor owns everything")
    assert set(owner.values()) == {"r1"}
    await window(cluster, owner, settled_at)
    gaps["kill"] = handover(cluster, owner, changed_at, settled_at)
    settle_s["kill"] = settled_at - changed_at
    print("group settled after (s):", settle_s, "longest poll gap (s):", gaps)  # noqa: T201
    # a symbol is never unpolled for more than the session timeout + one rebalance + a cadence
    assert max(gaps.values()) <= SESSION_S + 3 * CADENCE_S + 2.0, gaps


async def test_a_replica_beyond_the_partitions_is_a_ready_standby_that_takes_over(
    shared_data: Path, env: dict[str, str], tmp_path: Path
) -> None:
    cluster = Cluster(shared_data, env, tmp_path, partitions=1)
    try:
        await cluster.add()
        await cluster.settle(set(WATCH), "one replica owns everything")
        await cluster.add()
        # which member the assignor gives the only partition to is its choice (range
        # assignment by member id): one owns everything, the other is a ready, idle standby
        owner, settled_at = await cluster.settle(set(WATCH), "one of two owns everything")
        (active_name,) = set(owner.values())
        active = next(r for r in cluster.replicas if r.name == active_name)
        standby = next(r for r in cluster.replicas if r.name != active_name)

        async def standby_ready() -> bool:
            doc = await standby.shards()
            if doc is None or doc["generation"] == 0:
                return False
            async with httpx.AsyncClient(timeout=2) as client:
                r = await client.get(f"http://127.0.0.1:{standby.port}/readyz")
            return r.status_code == 200 and doc["partitions"] == [] and doc["symbols"] == []

        try:
            await eventually(standby_ready, timeout=120, what="a ready standby")
        except AssertionError as exc:  # the replicas' logs as they are at the timeout
            raise AssertionError(f"{exc}\n{cluster.logs()}") from None
        await window(cluster, owner, settled_at)
        standby_polls_before = len(standby.polls())

        changed_at = time.monotonic()
        active.proc.kill()
        owner, settled_at = await cluster.settle(set(WATCH), "the standby took over")
        assert set(owner.values()) == {standby.name}
        await window(cluster, owner, settled_at)
        handover(cluster, owner, changed_at, settled_at)
        assert len(standby.polls()) > standby_polls_before
    finally:
        await cluster.close()
