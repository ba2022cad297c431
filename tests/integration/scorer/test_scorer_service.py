"""The scorer on a real broker: market events in, signals out, restart mid-stream."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from perpsignal_common.events.base import deterministic_id
from perpsignal_common.events.market import TrackCommandV1
from perpsignal_common.events.signals import SignalScoredV1
from perpsignal_common.events.topics import Topic
from perpsignal_common.kafka.admin import ensure_topics
from perpsignal_common.kafka.producer import EventProducer
from perpsignal_common.settings import KafkaSettings
from perpsignal_domain.scoring.engine import ScoringEngine
from perpsignal_scorer.service import ScorerService
from perpsignal_scorer.settings import ScorerSettings
from tests.helpers import InLoop, TopicReader, eventually
from tests.unit.scorer import recorded

pytestmark = pytest.mark.kafka


def scorer_5m_settings(kafka: KafkaSettings) -> ScorerSettings:
    """The scorer on the recorded XRPUSDT 5m candles: 5m signals, SMC on 5m and 15m, every
    record re-read at start, one second to wait for fear & greed."""
    return ScorerSettings(
        kafka=kafka,
        scorer_primary_timeframe="5m",
        scorer_smc_timeframes="5m,15m",
        scorer_rewind_records=-1,
        scorer_global_warmup_s=1.0,
    )


class Running:
    """A scorer service running in this event loop (`async with` gives the service)."""

    def __init__(self, settings: ScorerSettings) -> None:
        self._in_loop = InLoop(ScorerService(settings))

    async def __aenter__(self) -> ScorerService:
        return (await self._in_loop.__aenter__()).service

    async def __aexit__(self, *exc: object) -> None:
        await self._in_loop.__aexit__(*exc)


async def test_restart_mid_stream_gives_each_closed_candle_exactly_one_signal(
    kafka_settings: KafkaSettings, shared_data: Path
) -> None:
    market = shared_data / "market"
    candles = recorded.candles(market / "XRP_USDT_USDT-5m-futures.csv", "XRPUSDT", "5m")[:90]
    settings = scorer_5m_settings(kafka_settings)
    await ensure_topics(kafka_settings)
    producer = EventProducer(kafka_settings, service="test")
    await producer.start()
    try:
        async with TopicReader(kafka_settings, Topic.SIGNALS) as out:
            async with Running(settings) as first:
                await producer.publish_many(candles[:45])
                await out.wait_for(45)
                assert first.signals_emitted == 45
            async with Running(settings) as second:
                await producer.publish_many(candles[45:])
                await out.wait_for(90)
                await eventually(lambda: second.signals_emitted == 45, what="second run")
                # on demand: a track command scores the symbol at the command's time
                cmd = TrackCommandV1(
                    event_id=deterministic_id("test", "track", "XRPUSDT"),
                    source="gateway",
                    symbol="XRPUSDT",
                    observed_at=candles[-1].observed_at + timedelta(seconds=30),
                )
                await producer.publish(cmd, wait=True)
                await out.wait_for(91)
                await eventually(lambda: second.signals_emitted == 46, what="command handled")
            await out.poll()
    finally:
        await producer.stop()

    signals = [e for e in out.events() if isinstance(e, SignalScoredV1)]
    assert len(signals) == 91
    by_trigger = {s.causation_id: s for s in signals}
    assert len(by_trigger) == 91, "a candle produced two signals"
    assert [s.trigger for s in signals].count("on_demand") == 1
    # the restarted scorer rebuilt its state: every signal equals an uninterrupted run's
    engine = ScoringEngine(settings.engine_config())
    expected = [s for c in candles for s in engine.apply(c)]
    for want in expected:
        got = by_trigger[want.causation_id]
        assert got.event_id == want.event_id
        assert (got.score, got.direction, got.confidence) == (
            want.score,
            want.direction,
            want.confidence,
        )
        assert got.factors == want.factors
