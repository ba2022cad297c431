"""The outcomes service: store judged signals, MSS results, candles and settled funding rates;
track outcomes.

`OUTCOMES_CLOCK=event` evaluates on market time instead of this machine's clock: "now" is
the latest candle close stored, so a replay (`perpsignal demo`, `perpsignal replay`) gets
each horizon evaluated as soon as the replayed price path reaches it, at any replay speed,
and pruning keeps the candles the replay's pending rows need. One market era at a time: the
clock is the newest candle of any symbol.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from perpsignal_common.db.engine import create_engine, create_sessionmaker, session_scope
from perpsignal_common.errors import PermanentError
from perpsignal_common.events.base import Event
from perpsignal_common.events.market import CandleClosedV1, FundingRateV1
from perpsignal_common.events.signals import MssScoredV1, SignalJudgedV1
from perpsignal_common.events.topics import Topic
from perpsignal_common.kafka.consumer import ConsumerLoop, ConsumerOptions, Record
from perpsignal_common.kafka.keys import check_record_key
from perpsignal_common.runtime import KafkaService
from perpsignal_outcomes import repository as repo
from perpsignal_outcomes.metrics import SIGNAL_ID_CONFLICTS
from perpsignal_outcomes.prices import BinanceKlineSource, KlineSource
from perpsignal_outcomes.settings import OutcomesSettings
from perpsignal_outcomes.tracker import EPOCH, Tracker, system_clock

log = logging.getLogger(__name__)

GROUP = "outcomes"
# the event clock before any candle was stored: nothing is due yet
BEFORE_ANY_CANDLE = datetime(2009, 1, 1, tzinfo=UTC)


class OutcomesService(KafkaService):
    """Consumes judged signals, MSS and candles; a background task evaluates due rows."""

    def __init__(
        self,
        settings: OutcomesSettings,
        *,
        engine: AsyncEngine | None = None,
        klines: KlineSource | None = None,
    ) -> None:
        super().__init__("outcomes", settings)
        self.options = settings
        self.engine = engine or create_engine(settings.database)
        self.sessions = create_sessionmaker(self.engine)
        self._horizons = settings.horizons()
        self._settle = timedelta(seconds=settings.outcomes_settle_s)
        self._timeframes = settings.candle_timeframes()
        self._off_grid_logged: set[str] = set()
        if klines is None and settings.outcomes_klines_fallback:
            klines = BinanceKlineSource(settings.outcomes_binance_base_url)
        if klines is None:
            log.info("klines fallback is off: only stream candles price outcomes")
        self._klines = klines
        # judged signals: concurrent handlers share one INSERT statement (group commit)
        # the URL as configured: its TLS / pooler parameters are not in the engine's URL
        self.signals = repo.SignalWriter(
            settings.database.database_url.get_secret_value(),
            self._horizons,
            self._settle,
            statement_timeout_ms=settings.database.database_statement_timeout_ms,
        )
        self.market_now = BEFORE_ANY_CANDLE  # newest candle close stored (event clock)
        clock = self.event_clock if settings.outcomes_clock == "event" else system_clock
        self.tracker = Tracker(
            settings, self.sessions, self.producer, klines, clock=clock, wall=system_clock
        )
        self.loop = ConsumerLoop(
            kafka=settings.kafka,
            service=self.name,
            options=ConsumerOptions(
                group_id=GROUP, topics=[Topic.SIGNALS_JUDGED, Topic.MSS, Topic.MARKET]
            ),
            handler=self.handle,
            producer=self.producer,
        )
        self.loops.append(self.loop)
        self.tasks.append(self.tracker.run)

    async def handle(self, event: Event, record: Record) -> None:
        """Route one event to its store; anything else on the topics is ignored."""
        if record is not None:  # None: called outside the consumer loop (tools, tests)
            # a record under another key's partition: out of its symbol's order (dead-lettered)
            check_record_key(event, record)
        try:
            await self._route(event)
        except Exception as exc:
            # a value the contract allows but PostgreSQL refuses (a NUL character in an id):
            # the same statement fails on every attempt, so it is dead-lettered at once, saying why
            refused = repo.refused_value(exc)
            if refused is None:
                raise
            log.warning(
                "the database refuses a value of this event; dead-lettered",
                extra={"event_id": event.event_id[:100], "error": refused},
            )
            raise PermanentError(
                f"the database refuses a value of this event ({refused}); retrying cannot succeed"
            ) from exc

    async def _route(self, event: Event) -> None:
        if isinstance(event, CandleClosedV1):
            step = self._timeframes.get(event.timeframe)
            if step is not None:
                if (event.open_time - EPOCH) % step:
                    # off its timeframe's grid: a path counts the candles inside its window,
                    # so beside a missing one this would make a path with a hole look whole
                    if event.timeframe not in self._off_grid_logged:  # once, not per candle
                        self._off_grid_logged.add(event.timeframe)
                        log.warning(
                            "candles off their timeframe's grid are ignored",
                            extra={"timeframe": event.timeframe, "open_time": str(event.open_time)},
                        )
                    return
                async with session_scope(self.sessions) as session:
                    await repo.store_candles(session, [repo.candle_row(event)])
                # advanced once stored: a row due by this clock finds its candles
                self.market_now = max(self.market_now, event.observed_at)
        elif isinstance(event, FundingRateV1):
            # settled rates only: a predicted (premium index) rate is not what was paid. Every
            # venue's: a position pays the funding of the venue it is priced on
            if event.settled:
                async with session_scope(self.sessions) as session:
                    await repo.store_funding(session, [repo.funding_row(event)])
        elif isinstance(event, SignalJudgedV1):
            await self.handle_judged(event)
        elif isinstance(event, MssScoredV1) and event.mss >= self.options.outcomes_mss_threshold:
            async with session_scope(self.sessions) as session:
                await repo.store_mss(session, event)

    async def on_start(self) -> None:
        """Under the event clock, resume market time from the candles already stored.

        After a restart no candle may ever come again (a replay that has ended; the consumer
        resumes past what it stored): the rows the stored path reaches must still fall due.
        """
        if self.options.outcomes_clock == "event":
            async with session_scope(self.sessions) as session:
                stored = await repo.latest_candle_close(session, self.options.candle_timeframes())
            if stored is not None:
                self.market_now = max(self.market_now, stored)

    def event_clock(self) -> datetime:
        """Return market time: the close of the newest candle stored (OUTCOMES_CLOCK=event)."""
        return self.market_now

    async def handle_judged(self, event: SignalJudgedV1) -> None:
        """Store a LONG/SHORT signal (every verdict) with one due row per horizon.

        First wins: a signal whose id is stored already is not stored again. An identical
        redelivery is silent; one with other content means a producer reused an id (its
        outcomes would be measured against the first one's plan), so it is made visible: a
        warning naming the ids, `perpsignal_outcomes_signal_id_conflicts_total` and a dead
        letter with the reason, at once (no retry). So is a new signal id under a stored event
        id (event ids are unique: it cannot be stored).
        """
        if event.direction == "NEUTRAL":
            return  # nothing to measure: no position was suggested
        conflict = await self.signals.store(event)
        if conflict is not None:
            SIGNAL_ID_CONFLICTS.inc()
            log.warning(
                "judged signal redelivered with other content under a stored id; the first "
                "one is kept",
                extra={
                    "signal_id": event.signal_id[:100],
                    "event_id": event.event_id[:100],
                    "reason": conflict,
                },
            )
            raise PermanentError(conflict)

    async def on_close(self) -> None:
        """Close the price source and the database pools."""
        if self._klines is not None:
            await self._klines.close()
        await self.signals.close()
        await self.engine.dispose()
