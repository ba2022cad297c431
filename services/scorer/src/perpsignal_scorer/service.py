"""The scorer as a Kafka service: market events in, signals and MSS results out.

Two consumer loops feed one `ScoringEngine`:

* group `scorer` on market.v1 + liquidations.v1 + commands.v1 + listings.v1, rewound
  `SCORER_REWIND_RECORDS` per partition on every assignment. Records before the committed
  offset are replays: they rebuild state and emit nothing, so a restart neither cold-starts
  nor repeats signals. Signal ids are derived from the trigger's id, so a record redelivered
  after a crash re-produces the identical signal and downstream dedupes it.
* no group, every partition of market.global.v1 from the beginning (fear & greed is shared
  by all symbols). The group loop waits (at most `SCORER_GLOBAL_WARMUP_S`) until it caught
  up, so the first signals after a start do not miss a fear & greed reading they should see.
"""

from __future__ import annotations

import asyncio
import logging

from perpsignal_common.errors import PoisonMessage
from perpsignal_common.events.base import Event
from perpsignal_common.events.market import CandleClosedV1, LiquidationOrderV1
from perpsignal_common.events.signals import FactorScore, MssScoredV1, SignalScoredV1
from perpsignal_common.events.topics import Topic
from perpsignal_common.kafka.consumer import ConsumerLoop, ConsumerOptions, Record
from perpsignal_common.kafka.keys import check_record_key
from perpsignal_common.runtime import KafkaService
from perpsignal_domain.scoring.engine import ScoringEngine, candle_mismatch
from perpsignal_domain.scoring.mss import MssScanner, event_clock
from perpsignal_scorer.settings import ScorerSettings

log = logging.getLogger(__name__)


class ScorerService(KafkaService):
    """Wires the engine to its consumer loops and the producer."""

    def __init__(self, settings: ScorerSettings, engine: ScoringEngine | None = None) -> None:
        super().__init__("scorer", settings)
        self.engine = engine or ScoringEngine(
            settings.engine_config(),
            venues=settings.primary_venues(),
            idle_s=settings.scorer_symbol_idle_s,
        )
        self.engine.mss = MssScanner(settings.mss_config())
        self.signals_emitted = 0
        self.inputs = InputStatusLog()
        self._global_ready = asyncio.Event()
        self._warmup_s = settings.scorer_global_warmup_s
        self._last: tuple[tuple[str, int, int], list[SignalScoredV1], list[MssScoredV1]] | None
        self._last = None
        self.market = ConsumerLoop(
            kafka=settings.kafka,
            service=self.name,
            options=ConsumerOptions(
                group_id="scorer",
                topics=[Topic.MARKET, Topic.LIQUIDATIONS, Topic.COMMANDS, Topic.LISTINGS],
                # the engine is one in-memory state: handle records strictly in order
                concurrency=1,
                rewind_on_assign=settings.scorer_rewind_records,
                rewind_on_assign_s=settings.scorer_rewind_s or None,
            ),
            handler=self.handle_market,
            producer=self.producer,
        )
        self.global_loop = ConsumerLoop(
            kafka=settings.kafka,
            service=self.name,
            options=ConsumerOptions(group_id=None, topics=[Topic.MARKET_GLOBAL], assign_all=True),
            handler=self.handle_global,
            producer=self.producer,
        )
        self.loops = [self.global_loop, self.market]
        self.tasks = [self._warmup]

    async def _warmup(self, stop: asyncio.Event) -> None:
        deadline = asyncio.get_running_loop().time() + self._warmup_s
        while not self._global_ready.is_set() and not stop.is_set():
            if asyncio.get_running_loop().time() >= deadline:
                log.info("fear & greed history not complete at start; scoring without waiting")
                self._global_ready.set()
                return
            # an empty topic never reports a high watermark: the deadline covers it
            loop = self.global_loop
            if loop.assigned() and loop.processed > 0 and await loop.lag() == 0:
                self._global_ready.set()
                return
            await asyncio.sleep(0.05)

    async def handle_global(self, event: Event, record: Record) -> None:
        """Fold market-wide events (fear & greed) into the engine."""
        check_record_key(event, record)
        self.engine.apply(event)

    async def handle_market(self, event: Event, record: Record) -> None:
        """Update state; publish the signals and MSS results unless this is a replay."""
        if not self._global_ready.is_set():
            await self._global_ready.wait()
        check_record_key(event, record)
        # what no live venue sends, or a candle its series has moved past: dead-lettered
        # before it reaches the engine
        reason = None
        if isinstance(event, CandleClosedV1):
            reason = candle_mismatch(event)
            if reason is None and not self.market.is_replay(record):
                # a replay only rebuilds state: a late candle was named when first read
                reason = self.engine.candle_behind(event)
        elif isinstance(event, LiquidationOrderV1):
            reason = self.engine.liquidation_mismatch(event)
        if reason is not None:
            raise PoisonMessage(reason)
        where = (record.topic, record.partition, record.offset)
        if self._last is not None and self._last[0] == where:
            signals, mss = self._last[1], self._last[2]  # a retry: state already has it
        else:
            signals = self.engine.apply(event)
            # the event is in state now: a retry after a failure below must not apply it
            # again (a candle would be a duplicate: its signal never published)
            self._last = (where, signals, [])
            mss = self.engine.mss.due(event_clock(event))
            self._last = (where, signals, mss)
        if self.market.is_replay(record):
            return
        for signal in signals:
            self.inputs.observe(signal)
            await self.producer.publish(signal)
        for result in mss:
            await self.producer.publish(result)
        self.signals_emitted += len(signals)


class InputStatusLog:
    """One log line when a symbol's factors change status, never one per signal.

    A missing or stale input is scored neutral and lowers the confidence (the signal says
    so in `missing_factors` / `stale_factors` and each factor's `reason`); the log says it
    to the operator: the symbol's first published signal names its factors that are not
    ok; later, a factor that changes to missing or stale (a warning: a feed went quiet) or
    becomes ok (warmed up, or back) is named on the signal where that happens. Replayed
    records (the rewind at assignment) publish nothing and log nothing.
    """

    def __init__(self) -> None:
        self._status: dict[str, tuple[str, ...]] = {}

    def observe(self, signal: SignalScoredV1) -> None:
        """Log what changed in `signal`'s factor statuses since the symbol's last signal."""
        now = tuple(f.status for f in signal.factors)
        before = self._status.get(signal.symbol)
        if before == now:
            return
        self._status[signal.symbol] = now
        symbol = signal.symbol
        if before is None or len(before) != len(now):
            off = [_named(f) for f in signal.factors if f.status != "ok"]
            if off:
                log.info("%s scored without %s: neutral, lower confidence", symbol, "; ".join(off))
            return
        lost = [
            _named(f) for f, b in zip(signal.factors, before, strict=True) if b != f.status != "ok"
        ]
        back = [
            f.name for f, b in zip(signal.factors, before, strict=True) if f.status == "ok" != b
        ]
        if lost:
            log.warning("%s input lost: %s: neutral, lower confidence", symbol, "; ".join(lost))
        if back:
            log.info("%s now scores %s", symbol, ", ".join(back))


def _named(f: FactorScore) -> str:
    return f"{f.name} {f.status} ({f.reason})" if f.reason else f"{f.name} {f.status}"
