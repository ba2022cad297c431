"""The read model: latest signals, market data, MSS, listings and liquidations, from the topics.

Each replica reads the topics from the beginning without a consumer group (it shares nothing
with other replicas), reports caught up once every partition reached the high watermark it
saw at start, then follows live. The embedded broker's "latest offset" answer is wrong, so
the target comes from the fetch responses' high watermark (`consumer.highwater`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from prometheus_client import Counter
from pydantic import TypeAdapter, ValidationError

from perpsignal_common.errors import DependencyUnavailable, PoisonMessage
from perpsignal_common.events.base import Event
from perpsignal_common.events.market import (
    FearGreedV1,
    LiquidationOrderV1,
    ListingDetectedV1,
    MarketEvent,
)
from perpsignal_common.events.registry import decode
from perpsignal_common.events.signals import JudgeReplyV1, MssScoredV1, SignalJudgedV1
from perpsignal_common.events.snapshot import GatewaySnapshotV1
from perpsignal_common.events.status import SourceStatusV1
from perpsignal_common.events.topics import Topic
from perpsignal_common.events.values import Symbol
from perpsignal_common.kafka.positions import partitions_for, reset_past_log_end
from perpsignal_common.settings import KafkaSettings
from perpsignal_gateway.schemas import signal_out
from perpsignal_gateway.symbols import ascii_upper, normalize_symbol

log = logging.getLogger(__name__)

READMODEL_ERRORS = Counter(
    "perpsignal_gateway_readmodel_apply_errors_total", "Events the read model failed to apply"
)

READ_TOPICS: tuple[str, ...] = (
    Topic.SIGNALS_JUDGED,
    Topic.MARKET,
    Topic.MARKET_GLOBAL,
    Topic.MSS,
    Topic.LISTINGS,
    Topic.LIQUIDATIONS,
    Topic.JUDGE_REPLIES,
)

Listener = Callable[[Event], None]
GLOBAL_KEY = ("global", "global")


def state_key(event: Event) -> tuple[str, str] | None:
    """Return the snapshot key (kind, id) whose state `event` changes; None = no state."""
    if isinstance(event, SignalJudgedV1 | MarketEvent | ListingDetectedV1):
        return ("symbol", event.symbol)
    if isinstance(event, LiquidationOrderV1):
        return ("liquidations", event.symbol)
    if isinstance(event, MssScoredV1):
        return ("mss", event.coin)
    if isinstance(event, FearGreedV1 | SourceStatusV1):
        return GLOBAL_KEY
    return None


def market_key(event: MarketEvent) -> str:
    """Return the slot a market event fills: its type plus the qualifier that splits it."""
    qualifier = getattr(event, "timeframe", None) or getattr(event, "kind", None)
    base = f"{event.type}:{qualifier}" if qualifier else event.type
    return f"{base}@{event.venue}"


class ReadModel:
    """Latest state per symbol, updated from events; cheap to read on every request."""

    def __init__(self, *, liquidations_kept: int = 200) -> None:
        self.signals: dict[str, SignalJudgedV1] = {}
        self.signal_json: dict[str, bytes] = {}  # pre-rendered camelCase body per symbol
        self.market: dict[str, dict[str, MarketEvent]] = {}
        self.fear_greed: FearGreedV1 | None = None
        self.sources: dict[str, SourceStatusV1] = {}  # latest status of each ingestor source
        self.mss: dict[str, MssScoredV1] = {}
        self.listings: dict[str, ListingDetectedV1] = {}
        self.liquidations: dict[str, deque[LiquidationOrderV1]] = {}
        self._liq_kept = liquidations_kept
        self._signal_waiters: dict[str, list[asyncio.Future[SignalJudgedV1]]] = {}
        self.listeners: list[Listener] = []
        self.reply_listeners: list[Callable[[JudgeReplyV1], None]] = []
        # keys (`snapshot.state_key`) whose state changed since the snapshot writer took them
        self.dirty: set[tuple[str, str]] = set()

    def clear(self) -> None:
        """Forget every state (a snapshot turned out not to match the topics)."""
        self.signals.clear()
        self.signal_json.clear()
        self.market.clear()
        self.fear_greed = None
        self.sources.clear()
        self.mss.clear()
        self.listings.clear()
        self.liquidations.clear()
        self.dirty.clear()

    def signal_body(self, symbol: str) -> bytes | None:
        """Return the camelCase JSON of a symbol's latest signal, rendered once per version."""
        body = self.signal_json.get(symbol)
        if body is None:
            event = self.signals.get(symbol)
            if event is None:
                return None
            body = orjson.dumps(signal_out(event).model_dump(mode="json", by_alias=True))
            self.signal_json[symbol] = body
        return body

    def failing_sources(self) -> list[SourceStatusV1]:
        """Return the sources whose latest status is not `up`, longest failing first."""
        return sorted((s for s in self.sources.values() if s.state != "up"), key=lambda s: s.since)

    def resolve_symbol(self, raw: str) -> str:
        """Return the symbol `raw` names: itself when seen on the topics (ETHBTC, a USD-M
        perpetual without a USDT suffix, as listed by /signals), else `normalize_symbol`."""
        upper = ascii_upper(raw.strip())
        if upper in self.signals or upper in self.market or upper in self.liquidations:
            return upper
        return normalize_symbol(raw)

    def known_symbols(self) -> set[str]:
        """Return every symbol seen on the topics."""
        return set(self.signals) | set(self.market) | set(self.listings) | set(self.liquidations)

    def apply(self, event: Event, *, live: bool = True) -> None:
        """Fold one event into the state; notify listeners when `live`."""
        if isinstance(event, SignalJudgedV1):
            self._apply_signal(event)
            self.dirty.add(("symbol", event.symbol))
        elif isinstance(event, MarketEvent):
            slots = self.market.setdefault(event.symbol, {})
            key = market_key(event)
            old = slots.get(key)
            if old is None or old.observed_at <= event.observed_at:
                slots[key] = event
                self.dirty.add(("symbol", event.symbol))
        elif isinstance(event, FearGreedV1):
            if self.fear_greed is None or self.fear_greed.observed_at <= event.observed_at:
                self.fear_greed = event
                self.dirty.add(GLOBAL_KEY)
        elif isinstance(event, SourceStatusV1):
            old_status = self.sources.get(event.name)
            if old_status is None or old_status.observed_at <= event.observed_at:
                self.sources[event.name] = event
                self.dirty.add(GLOBAL_KEY)
        elif isinstance(event, MssScoredV1):
            if not _is_symbol(event.coin):
                # the coin keys its snapshot record (a symbol): held, it would leave every full
                # dump incomplete, and a replica from the snapshot would differ from this one
                raise PoisonMessage(f"mss coin {event.coin[:40]!r} is not a valid symbol")
            old_mss = self.mss.get(event.coin)
            if old_mss is None or old_mss.observed_at <= event.observed_at:
                self.mss[event.coin] = event
                self.dirty.add(("mss", event.coin))
        elif isinstance(event, ListingDetectedV1):
            if event.symbol not in self.listings:
                self.listings[event.symbol] = event
                self.dirty.add(("symbol", event.symbol))
        elif isinstance(event, LiquidationOrderV1):
            queue = self.liquidations.setdefault(event.symbol, deque(maxlen=self._liq_kept))
            queue.append(event)
            self.dirty.add(("liquidations", event.symbol))
        elif isinstance(event, JudgeReplyV1):
            for reply_listener in self.reply_listeners:
                reply_listener(event)
            return
        if live:
            for listener in self.listeners:
                listener(event)

    def restore(self, record: GatewaySnapshotV1) -> None:
        """Fold one snapshot record's state into the model (no listener is told)."""
        held: list[Event | None] = [record.signal, *record.market, record.listing]
        held += [*record.liquidations, record.mss, record.fear_greed, *record.sources]
        for event in held:
            if event is not None:
                try:
                    self.apply(event, live=False)
                except PoisonMessage as exc:  # what `apply` refuses on the topics too
                    log.warning("skipping a snapshot event", extra={"error": str(exc)[:200]})

    def _apply_signal(self, event: SignalJudgedV1) -> None:
        old = self.signals.get(event.symbol)
        if old is not None and old.observed_at > event.observed_at:
            return
        self.signals[event.symbol] = event
        # rendered on first read: catch-up replays many versions nobody asks for
        self.signal_json.pop(event.symbol, None)
        for fut in self._signal_waiters.pop(event.symbol, []):
            if not fut.done():
                fut.set_result(event)

    async def wait_for_signal(self, symbol: str, timeout_s: float) -> SignalJudgedV1 | None:
        """Wait up to `timeout_s` for the next judged signal of `symbol`; None on timeout."""
        fut: asyncio.Future[SignalJudgedV1] = asyncio.get_running_loop().create_future()
        self._signal_waiters.setdefault(symbol, []).append(fut)
        try:
            return await asyncio.wait_for(fut, timeout_s)
        except TimeoutError:
            return None
        finally:
            waiters = self._signal_waiters.get(symbol)
            if waiters and fut in waiters:
                waiters.remove(fut)


class TopicFollower:
    """Read the platform topics into a ReadModel (from a snapshot when one exists), then follow.

    Without a usable snapshot every partition is read from the beginning. With one, the
    model is restored from it, each partition is resumed at the smallest offset any snapshot
    record is complete to, and an event older than its own key's record is skipped (its
    effect is already in the record). Either way `caught_up` flips once every partition
    reached the high watermark first seen for it.
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        model: ReadModel,
        topics: tuple[str, ...] = READ_TOPICS,
        *,
        snapshot_window_s: float | None = None,
    ) -> None:
        self._kafka = kafka
        self._model = model
        self._topics = [kafka.topic(t) for t in topics]
        self._logical = {kafka.topic(t): str(t) for t in topics}
        # None = never start from a snapshot (always re-read the topics)
        self._snapshot_window_s = snapshot_window_s
        self._consumer: AIOKafkaConsumer | None = None
        self._parts: list[TopicPartition] = []
        self._checked_end_at = 0.0
        self._targets: dict[TopicPartition, int] = {}
        self._pending: set[TopicPartition] = set()
        # next offset of each partition whose events the model holds (the snapshot's
        # `complete_to`), where each partition was resumed, and the per-key skips
        self._next: dict[TopicPartition, int] = {}
        self._resume: dict[TopicPartition, int] = {}
        self._skip: dict[tuple[str, str], dict[TopicPartition, int]] = {}
        self._skip_until: dict[TopicPartition, int] = {}
        self.started_from: str = "topics"  # or "snapshot"
        self.snapshot_keys = 0
        self.skipped = 0
        self.caught_up = False
        self.records_read = 0
        self.poison = 0
        self.apply_errors = 0
        self.started_at = time.monotonic()
        self.caught_up_after_s: float | None = None

    async def start(self) -> None:
        """Connect and find every partition of every topic (positioned by `run`)."""
        k = self._kafka
        consumer = AIOKafkaConsumer(
            **k.client_kwargs(),
            client_id="gateway-readmodel",
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=k.kafka_fetch_max_wait_ms,
            max_poll_records=k.kafka_max_poll_records,
        )
        try:
            await consumer.start()
            parts: list[TopicPartition] = []
            for topic in self._topics:
                found = await partitions_for(consumer, topic)
                parts.extend(TopicPartition(topic, p) for p in sorted(found))
        except KafkaError as exc:
            await consumer.stop()
            raise DependencyUnavailable(f"read model cannot connect to kafka: {exc}") from exc
        self._consumer = consumer
        self._parts = parts
        self.started_at = time.monotonic()

    async def stop(self) -> None:
        """Disconnect."""
        if self._consumer is not None:
            with contextlib.suppress(Exception):
                await self._consumer.stop()
            self._consumer = None

    async def lag(self) -> int:
        """Return the records between position and high watermark over every partition."""
        if self._consumer is None:
            return 0
        total = 0
        for tp in self._consumer.assignment():
            high = self._consumer.highwater(tp)
            if high is not None:
                total += max(0, high - await self._consumer.position(tp))
        return total

    def complete_to(self) -> dict[str, list[int]]:
        """Return, per logical topic, the next offset of each partition the model holds."""
        out: dict[str, list[int]] = {}
        for tp in self._parts:
            offsets = out.setdefault(self._logical[tp.topic], [])
            while len(offsets) <= tp.partition:
                offsets.append(0)
            offsets[tp.partition] = max(self._next.get(tp, 0), self._resume.get(tp, 0))
        return out

    async def _position(self, consumer: AIOKafkaConsumer) -> None:
        """Restore from the snapshot when there is a usable one; assign and seek."""
        from perpsignal_gateway.snapshot import load_snapshot

        loaded = None
        if self._snapshot_window_s is not None:
            loaded = await load_snapshot(self._kafka, window_s=self._snapshot_window_s)
        consumer.assign(self._parts)
        self._pending = set(self._parts)
        if loaded is None or not loaded.records:
            await consumer.seek_to_beginning(*self._parts)
            return
        resume: dict[TopicPartition, int] = {}
        for tp in self._parts:
            logical = self._logical[tp.topic]
            offsets = []
            for record in loaded.records.values():
                recorded = record.complete_to.get(logical, [])
                offsets.append(recorded[tp.partition] if tp.partition < len(recorded) else 0)
            resume[tp] = min(offsets)
        for key, record in loaded.records.items():
            own: dict[TopicPartition, int] = {}
            for tp in self._parts:
                recorded = record.complete_to.get(self._logical[tp.topic], [])
                at = recorded[tp.partition] if tp.partition < len(recorded) else 0
                if at > resume[tp]:
                    own[tp] = at
                    self._skip_until[tp] = max(self._skip_until.get(tp, 0), at)
            if own:
                self._skip[key] = own
            self._model.restore(record)
        self._model.dirty.clear()
        self._resume = resume
        for tp, offset in resume.items():
            consumer.seek(tp, offset)
        self.started_from = "snapshot"
        self.snapshot_keys = len(loaded.records)
        log.info(
            "read model restored from the snapshot; reading the topics from its offsets",
            extra={"keys": len(loaded.records), "behind": sum(resume.values())},
        )

    async def _discard_snapshot(self, consumer: AIOKafkaConsumer, why: str) -> None:
        log.error(
            "the snapshot does not match the topics; re-reading them from the beginning",
            extra={"reason": why},
        )
        self._model.clear()
        self._skip.clear()
        self._skip_until.clear()
        self._resume.clear()
        self._next.clear()
        self._targets.clear()
        self._pending = set(self._parts)
        self.started_from = "topics"
        self.snapshot_keys = 0
        await consumer.seek_to_beginning(*self._parts)

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until `stop`; flip `caught_up` once the start-time watermarks are reached."""
        consumer = self._consumer
        if consumer is None:
            raise DependencyUnavailable("read model not started")
        await self._position(consumer)
        while not stop.is_set():
            try:
                batches = await consumer.getmany(timeout_ms=200)
            except KafkaError as exc:
                log.warning("read model fetch failed, retrying", extra={"error": str(exc)})
                await asyncio.sleep(0.5)
                continue
            for tp, records in batches.items():
                for record in records:
                    self._handle(record.value, tp, record.offset)
                if records:
                    self._next[tp] = records[-1].offset + 1
            if not self.caught_up and self._resume:
                await self._check_snapshot_matches(consumer)
            now = time.monotonic()
            if now - self._checked_end_at > 2:
                self._checked_end_at = now
                await reset_past_log_end(consumer, "gateway-readmodel")
            if not self.caught_up:
                await self._check_caught_up(consumer)

    async def _check_snapshot_matches(self, consumer: AIOKafkaConsumer) -> None:
        # an offset beyond the log end: the topics were emptied or re-created after the
        # snapshot was written, so its state is not theirs
        for tp, offset in self._resume.items():
            high = consumer.highwater(tp)
            if high is not None and offset > high:
                await self._discard_snapshot(
                    consumer,
                    f"{tp.topic}[{tp.partition}] ends at {high}, the snapshot resumes at {offset}",
                )
                return

    def _handle(
        self, raw: bytes | None, tp: TopicPartition | None = None, offset: int = -1
    ) -> None:
        self.records_read += 1
        try:
            event = decode(raw)
        except PoisonMessage as exc:
            # a consumer that only reads state skips what it cannot parse; the writer's DLQ owns it
            self.poison += 1
            log.warning("skipping undecodable record", extra={"error": str(exc)[:200]})
            return
        if tp is not None and offset < self._skip_until.get(tp, 0):
            key = state_key(event)
            own = self._skip.get(key) if key is not None else None
            if own is not None and offset < own.get(tp, 0):
                self.skipped += 1  # already in this key's snapshot record
                return
        try:
            self._model.apply(event, live=self.caught_up)
        except Exception as exc:  # one bad event must not stop the read model (counted, logged)
            self.apply_errors += 1
            READMODEL_ERRORS.inc()
            log.error(
                "read model could not apply an event",
                extra={"event_type": event.type, "error_type": type(exc).__name__},
            )

    async def _check_caught_up(self, consumer: AIOKafkaConsumer) -> None:
        for tp in list(self._pending):
            target = self._targets.get(tp)
            if target is None:
                high = consumer.highwater(tp)
                if high is None:
                    continue  # no fetch response for this partition yet
                target = self._targets[tp] = high
            if await consumer.position(tp) >= target:
                self._pending.discard(tp)
        if not self._pending:
            self.caught_up = True
            self.caught_up_after_s = time.monotonic() - self.started_at
            self._skip.clear()  # every skipped offset is behind now
            self._skip_until.clear()
            log.info(
                "read model caught up",
                extra={
                    "records": self.records_read,
                    "seconds": round(self.caught_up_after_s, 3),
                    "started_from": self.started_from,
                    "snapshot_keys": self.snapshot_keys,
                },
            )


_SYMBOL: TypeAdapter[str] = TypeAdapter(Symbol)


def _is_symbol(value: str) -> bool:
    try:
        _SYMBOL.validate_python(value)
    except ValidationError:
        return False
    return True


def age_s(at: datetime, now: datetime | None = None) -> float:
    """Return seconds since `at` (never negative)."""
    return max(0.0, ((now or datetime.now(UTC)) - at).total_seconds())
