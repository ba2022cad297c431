"""The read-model snapshot: how a new gateway replica is ready in seconds, and who writes it.

Reading (`load_snapshot`): the snapshot topic is read back over the last full-dump period
(`offsets_for_times`, which the embedded broker answers correctly), or from the beginning
when that window holds no complete full dump; the newest readable record per key wins, so
duplicates and an uncompacted topic (the embedded broker ignores compaction) are harmless.
An unreadable record is logged, counted and ignored; the key keeps its previous record, whose
own offsets make the replay cover what it lacks. Only a key whose every record since the last
full dump is unreadable makes the snapshot unusable (then the topics are re-read in full).

Writing (`SnapshotWriter`): every replica joins one consumer group on the one-partition
snapshot topic; the member assigned partition 0 is the writer (Kafka's own group membership
decides, and a dead writer's partition moves to another replica within a session timeout).
The gateway is the writer because it already holds exactly the state served, folded by the
same code; no other service would need to. Once its own read model is caught up it writes a
full dump, then every `interval_s` the keys that changed and every `full_every_s` a full
dump again. Records are self-contained (state + the offsets it is complete to), so two
writers overlapping during a rebalance only write redundant records.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from prometheus_client import Counter, Gauge
from pydantic import ValidationError

from perpsignal_common.errors import DependencyUnavailable, PoisonMessage
from perpsignal_common.events.base import utcnow
from perpsignal_common.events.registry import decode_as, encode
from perpsignal_common.events.snapshot import GatewaySnapshotV1
from perpsignal_common.events.topics import Topic
from perpsignal_common.kafka.positions import partitions_for
from perpsignal_common.kafka.producer import EventProducer, event_headers
from perpsignal_common.settings import KafkaSettings
from perpsignal_gateway.readmodel import GLOBAL_KEY, ReadModel, TopicFollower

log = logging.getLogger(__name__)

SNAPSHOT_INVALID = Counter(
    "perpsignal_gateway_snapshot_invalid_records_total",
    "Snapshot records ignored at start-up because they could not be read",
)
SNAPSHOT_WRITTEN = Counter(
    "perpsignal_gateway_snapshot_records_written_total", "Snapshot records published"
)
SNAPSHOT_WRITER = Gauge(
    "perpsignal_gateway_snapshot_writer", "1 while this replica is the snapshot writer"
)

Key = tuple[str, str]
DATA_KINDS = frozenset({"symbol", "liquidations", "mss", "global"})


@dataclass
class LoadedSnapshot:
    """The newest readable record per key, read back from the snapshot topic."""

    records: dict[Key, GatewaySnapshotV1] = field(default_factory=dict)
    read: int = 0
    invalid: int = 0
    seconds: float = 0.0


@dataclass
class _Pass:
    records: dict[Key, GatewaySnapshotV1] = field(default_factory=dict)
    at: dict[Key, int] = field(default_factory=dict)  # offset of each key's record
    unreadable: dict[str, int] = field(default_factory=dict)  # Kafka key -> latest offset
    dump: GatewaySnapshotV1 | None = None
    read: int = 0
    invalid: int = 0


async def load_snapshot(
    kafka: KafkaSettings, *, window_s: float, timeout_s: float = 120.0
) -> LoadedSnapshot | None:
    """Return the snapshot's newest readable record per key; None when none is usable."""
    started = time.monotonic()
    topic = kafka.topic(Topic.GATEWAY_SNAPSHOT)
    consumer = AIOKafkaConsumer(
        **kafka.client_kwargs(),
        client_id="gateway-snapshot-reader",
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=kafka.kafka_fetch_max_wait_ms,
        max_poll_records=2000,
    )
    try:
        await consumer.start()
        try:
            parts = await partitions_for(consumer, topic, attempts=30)
        except DependencyUnavailable:
            log.info("no snapshot topic: reading the topics from the beginning")
            return None
        tp = TopicPartition(topic, 0)
        if parts != {0}:
            log.warning("the snapshot topic should have one partition; reading partition 0")
        consumer.assign([tp])
        since_ms = int((time.time() - window_s) * 1000)
        found = await consumer.offsets_for_times({tp: since_ms})
        hit = found.get(tp)
        start = hit.offset if hit is not None else 0
        deadline = started + timeout_s
        got = await _read(consumer, tp, start, deadline)
        if start > 0 and (got.dump is None or (got.dump.dump_began_at or 0) < start):
            # the window holds no complete full dump (the writer stopped a while ago)
            got = await _read(consumer, tp, 0, deadline)
    except (KafkaError, TimeoutError) as exc:
        log.warning(
            "the snapshot could not be read; reading the topics from the beginning",
            extra={"error": repr(exc)[:200]},
        )
        return None
    finally:
        await consumer.stop()
    if got.dump is None:
        log.info(
            "no complete snapshot yet; reading the topics from the beginning",
            extra={"records": got.read, "invalid": got.invalid},
        )
        return None
    began = got.dump.dump_began_at or 0
    # a key of a known kind first written, unreadably, after the last full dump began: its
    # state is nowhere (the next full dump heals it); other keys are junk or have a record
    lost = sorted(
        k
        for k, at in got.unreadable.items()
        if at >= began and _key(k)[0] in DATA_KINDS and _key(k) not in got.at
    )
    if lost:
        log.error(
            "snapshot keys with no readable record since the last full dump; reading the "
            "topics from the beginning",
            extra={"keys": lost[:10], "count": len(lost)},
        )
        return None
    return LoadedSnapshot(
        records=got.records,
        read=got.read,
        invalid=got.invalid,
        seconds=time.monotonic() - started,
    )


def _key(raw: str) -> Key:
    kind, _, ident = raw.partition(":")
    return (kind, ident)


async def _read(
    consumer: AIOKafkaConsumer, tp: TopicPartition, start: int, deadline: float
) -> _Pass:
    got = _Pass()
    consumer.seek(tp, start)
    while True:
        if time.monotonic() > deadline:
            raise TimeoutError("reading the snapshot topic took too long")
        batches = await consumer.getmany(tp, timeout_ms=200)
        for record in batches.get(tp, []):
            got.read += 1
            key = record.key.decode(errors="replace") if record.key else ""
            try:
                snap = decode_as(record.value or b"", GatewaySnapshotV1)
                if snap.partition_key().decode() != key:
                    raise PoisonMessage(f"record key {key!r} is not its kind:symbol")
            except PoisonMessage as exc:
                got.invalid += 1
                got.unreadable[key] = record.offset
                SNAPSHOT_INVALID.inc()
                log.warning(
                    "ignoring an unreadable snapshot record",
                    extra={"offset": record.offset, "key": key[:80], "error": str(exc)[:300]},
                )
                continue
            if snap.kind == "dump":
                got.dump = snap
                continue
            k = (snap.kind, snap.symbol)
            got.records[k] = snap
            got.at[k] = record.offset
        high = consumer.highwater(tp)
        if high is not None and await consumer.position(tp) >= high:
            return got


def all_keys(model: ReadModel) -> set[Key]:
    """Return every key the model holds state for."""
    keys: set[Key] = {("symbol", s) for s in (*model.signals, *model.market, *model.listings)}
    keys |= {("liquidations", s) for s in model.liquidations}
    keys |= {("mss", c) for c in model.mss}
    if model.fear_greed is not None or model.sources:
        keys.add(GLOBAL_KEY)
    return keys


def capture(
    model: ReadModel, key: Key, complete_to: dict[str, list[int]], writer: str
) -> GatewaySnapshotV1:
    """Return the snapshot record of `key` as the model holds it now."""
    kind, ident = key
    common = {
        "event_id": str(uuid.uuid4()),
        "source": "gateway",
        "symbol": ident,
        "observed_at": utcnow(),
        "kind": kind,
        "writer": writer,
        "complete_to": complete_to,
    }
    if kind == "symbol":
        return GatewaySnapshotV1(
            **common,
            signal=model.signals.get(ident),
            market=list(model.market.get(ident, {}).values()),
            listing=model.listings.get(ident),
        )
    if kind == "liquidations":
        return GatewaySnapshotV1(**common, liquidations=list(model.liquidations.get(ident, ())))
    if kind == "mss":
        return GatewaySnapshotV1(**common, mss=model.mss.get(ident))
    return GatewaySnapshotV1(
        **common, fear_greed=model.fear_greed, sources=list(model.sources.values())
    )


class _PauseAssigned(ConsumerRebalanceListener):  # type: ignore[misc]
    """The writer only needs to own the partition, never to read it: pause what it gets."""

    def __init__(self, consumer: AIOKafkaConsumer) -> None:
        self._consumer = consumer

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        return None

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self._consumer.pause(*assigned)


class SnapshotWriter:
    """Publish the read model's snapshot while this replica owns the snapshot partition."""

    def __init__(
        self,
        kafka: KafkaSettings,
        model: ReadModel,
        follower: TopicFollower,
        producer: EventProducer,
        *,
        interval_s: float,
        full_every_s: float,
    ) -> None:
        self._kafka = kafka
        self._model = model
        self._follower = follower
        self._producer = producer
        self._interval_s = interval_s
        self._full_every_s = full_every_s
        self.writer_id = f"{socket.gethostname()}:{os.getpid()}"
        self.leader = False
        self.dumps = 0
        self.written = 0
        self._next_write = 0.0
        self._next_full = 0.0

    @property
    def group_id(self) -> str:
        """Return the consumer group of the election (prefixed like the topics)."""
        return self._kafka.group("perpsignal-gateway-snapshot-writer")

    async def run(self, stop: asyncio.Event) -> None:
        """Take part in the election until `stop`; write while elected. Never raises."""
        while not stop.is_set():
            try:
                await self._elect_and_write(stop)
            except (KafkaError, DependencyUnavailable) as exc:
                self._set_leader(False)
                log.warning("snapshot writer: kafka unavailable", extra={"error": repr(exc)})
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 5)

    def _set_leader(self, leader: bool) -> None:
        if leader != self.leader:
            log.info("snapshot writer " + ("elected" if leader else "no longer elected"))
            self.leader = leader
            SNAPSHOT_WRITER.set(1 if leader else 0)
            self._next_full = 0.0  # a new writer starts with a full dump

    async def _elect_and_write(self, stop: asyncio.Event) -> None:
        k = self._kafka
        consumer = AIOKafkaConsumer(
            **k.client_kwargs(),
            client_id="gateway-snapshot-writer",
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=k.kafka_session_timeout_ms,
            heartbeat_interval_ms=k.kafka_heartbeat_interval_ms,
            max_poll_interval_ms=k.kafka_max_poll_interval_ms,
        )
        await consumer.start()
        try:
            topic = k.topic(Topic.GATEWAY_SNAPSHOT)
            await partitions_for(consumer, topic)
            consumer.subscribe([topic], listener=_PauseAssigned(consumer))
            while not stop.is_set():
                # keeps the membership alive (the partition is paused: nothing is fetched)
                await consumer.getmany(timeout_ms=500)
                self._set_leader(bool(consumer.assignment()))
                now = time.monotonic()
                if self.leader and self._follower.caught_up and now >= self._next_write:
                    full = now >= self._next_full
                    self._next_write = now + self._interval_s
                    if full:
                        self._next_full = now + self._full_every_s
                    await self.write(full=full)
        finally:
            self._set_leader(False)
            with contextlib.suppress(Exception):
                await consumer.stop()

    async def write(self, *, full: bool) -> int:
        """Publish every key (`full`) or the keys that changed; return the records sent."""
        model = self._model
        # captured with no await in between: every record matches `complete_to`
        complete_to = self._follower.complete_to()
        keys = all_keys(model) if full else set(model.dirty)
        model.dirty.clear()
        records: list[GatewaySnapshotV1] = []
        for key in sorted(keys):
            try:
                records.append(capture(model, key, complete_to, self.writer_id))
            except ValidationError as exc:
                full = False  # a dump without this key would not be complete
                log.error(
                    "snapshot record not written",
                    extra={"key": ":".join(key)[:80], "error": str(exc)[:300]},
                )
        if not records:
            return 0
        topic = self._kafka.topic(Topic.GATEWAY_SNAPSHOT)
        try:
            first = records[0]
            began_at = await self._producer.send_acked(
                topic, first.partition_key(), encode(first), event_headers(first)
            )
            # its own deliveries: a failure is this writer's to retry, not another sender's
            with self._producer.scope() as sent:
                for n, record in enumerate(records[1:], 1):
                    await self._producer.send_raw(
                        topic, record.partition_key(), encode(record), event_headers(record)
                    )
                    if n % 200 == 0:
                        await asyncio.sleep(0)  # encoding a large dump must not stall requests
            await sent.wait()
            if full:
                dump = GatewaySnapshotV1(
                    event_id=str(uuid.uuid4()),
                    source="gateway",
                    symbol="dump",
                    observed_at=utcnow(),
                    kind="dump",
                    writer=self.writer_id,
                    complete_to=complete_to,
                    dump_began_at=began_at,
                )
                await self._producer.send_acked(
                    topic, dump.partition_key(), encode(dump), event_headers(dump)
                )
                self.dumps += 1
        except DependencyUnavailable as exc:
            model.dirty |= keys  # written again next time
            self._next_full = 0.0 if full else self._next_full
            log.warning("snapshot not written", extra={"error": str(exc)[:300]})
            return 0
        self.written += len(records)
        SNAPSHOT_WRITTEN.inc(len(records))
        log.debug("snapshot written", extra={"records": len(records), "full": full})
        return len(records)
