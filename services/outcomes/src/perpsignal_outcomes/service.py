"""The outcomes service: store judged signals, MSS results and candles; track outcomes."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from perpsignal_common.db.engine import create_engine, create_sessionmaker, session_scope
from perpsignal_common.events.base import Event
from perpsignal_common.events.market import CandleClosedV1
from perpsignal_common.events.signals import MssScoredV1, SignalJudgedV1
from perpsignal_common.events.topics import Topic
from perpsignal_common.kafka.consumer import ConsumerLoop, ConsumerOptions, Record
from perpsignal_common.runtime import KafkaService
from perpsignal_outcomes import repository as repo
from perpsignal_outcomes.prices import BinanceKlineSource, KlineSource
from perpsignal_outcomes.settings import OutcomesSettings
from perpsignal_outcomes.tracker import Tracker

log = logging.getLogger(__name__)

GROUP = "outcomes"


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
        self._timeframes = set(settings.candle_timeframes())
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
        self.tracker = Tracker(settings, self.sessions, self.producer, klines)
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
        if isinstance(event, CandleClosedV1):
            if event.timeframe in self._timeframes:
                async with session_scope(self.sessions) as session:
                    await repo.store_candles(session, [repo.candle_row(event)])
        elif isinstance(event, SignalJudgedV1):
            await self.handle_judged(event)
        elif isinstance(event, MssScoredV1) and event.mss >= self.options.outcomes_mss_threshold:
            async with session_scope(self.sessions) as session:
                await repo.store_mss(session, event)

    async def handle_judged(self, event: SignalJudgedV1) -> None:
        """Store a LONG/SHORT signal (every verdict) with one due row per horizon."""
        if event.direction == "NEUTRAL":
            return  # nothing to measure: no position was suggested
        await self.signals.store(event)

    async def on_close(self) -> None:
        """Close the price source and the database pools."""
        if self._klines is not None:
            await self._klines.close()
        await self.signals.close()
        await self.engine.dispose()
