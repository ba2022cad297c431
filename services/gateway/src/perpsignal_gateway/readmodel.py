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
from perpsignal_common.events.status import SourceStatusV1
from perpsignal_common.events.topics import Topic
from perpsignal_common.kafka.positions import partitions_for, reset_past_log_end
from perpsignal_common.settings import KafkaSettings
from perpsignal_gateway.schemas import signal_out
from perpsignal_gateway.symbols import normalize_symbol

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
        upper = raw.strip().upper()
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
        elif isinstance(event, MarketEvent):
            slots = self.market.setdefault(event.symbol, {})
            key = market_key(event)
            old = slots.get(key)
            if old is None or old.observed_at <= event.observed_at:
                slots[key] = event
        elif isinstance(event, FearGreedV1):
            if self.fear_greed is None or self.fear_greed.observed_at <= event.observed_at:
                self.fear_greed = event
        elif isinstance(event, SourceStatusV1):
            old_status = self.sources.get(event.name)
            if old_status is None or old_status.observed_at <= event.observed_at:
                self.sources[event.name] = event
        elif isinstance(event, MssScoredV1):
            old_mss = self.mss.get(event.coin)
            if old_mss is None or old_mss.observed_at <= event.observed_at:
                self.mss[event.coin] = event
        elif isinstance(event, ListingDetectedV1):
            self.listings.setdefault(event.symbol, event)
        elif isinstance(event, LiquidationOrderV1):
            queue = self.liquidations.setdefault(event.symbol, deque(maxlen=self._liq_kept))
            queue.append(event)
        elif isinstance(event, JudgeReplyV1):
            for reply_listener in self.reply_listeners:
                reply_listener(event)
            return
        if live:
            for listener in self.listeners:
                listener(event)

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
    """Read the platform topics from the beginning into a ReadModel, then follow them live."""

    def __init__(
        self, kafka: KafkaSettings, model: ReadModel, topics: tuple[str, ...] = READ_TOPICS
    ) -> None:
        self._kafka = kafka
        self._model = model
        self._topics = [kafka.topic(t) for t in topics]
        self._consumer: AIOKafkaConsumer | None = None
        self._checked_end_at = 0.0
        self._targets: dict[TopicPartition, int] = {}
        self._pending: set[TopicPartition] = set()
        self.caught_up = False
        self.records_read = 0
        self.poison = 0
        self.apply_errors = 0
        self.started_at = time.monotonic()
        self.caught_up_after_s: float | None = None

    async def start(self) -> None:
        """Connect and assign every partition of every topic, from the beginning."""
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
            consumer.assign(parts)
            await consumer.seek_to_beginning(*parts)
        except KafkaError as exc:
            await consumer.stop()
            raise DependencyUnavailable(f"read model cannot connect to kafka: {exc}") from exc
        self._consumer = consumer
        self._pending = set(parts)
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

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until `stop`; flip `caught_up` once the start-time watermarks are reached."""
        consumer = self._consumer
        if consumer is None:
            raise DependencyUnavailable("read model not started")
        while not stop.is_set():
            try:
                batches = await consumer.getmany(timeout_ms=200)
            except KafkaError as exc:
                log.warning("read model fetch failed, retrying", extra={"error": str(exc)})
                await asyncio.sleep(0.5)
                continue
            for records in batches.values():
                for record in records:
                    self._handle(record.value)
            now = time.monotonic()
            if now - self._checked_end_at > 2:
                self._checked_end_at = now
                await reset_past_log_end(consumer, "gateway-readmodel")
            if not self.caught_up:
                await self._check_caught_up(consumer)

    def _handle(self, raw: bytes | None) -> None:
        self.records_read += 1
        try:
            event = decode(raw)
        except PoisonMessage as exc:
            # a consumer that only reads state skips what it cannot parse; the writer's DLQ owns it
            self.poison += 1
            log.warning("skipping undecodable record", extra={"error": str(exc)[:200]})
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
            log.info(
                "read model caught up",
                extra={"records": self.records_read, "seconds": round(self.caught_up_after_s, 3)},
            )


def age_s(at: datetime, now: datetime | None = None) -> float:
    """Return seconds since `at` (never negative)."""
    return max(0.0, ((now or datetime.now(UTC)) - at).total_seconds())
