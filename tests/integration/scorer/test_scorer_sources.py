"""The scorer service on a real broker, fed what the ingestor emits from several sources.

Binance and OKX candles of one symbol (the connectors' parsers on their recorded responses)
interleaved on market.v1; one Binance liquidation (the recorded `forceOrder` message moved
into the candles' hours) as the Binance stream and the Coinglass relay report it on
liquidations.v1, plus the ingestor's bucket of it on market.v1. The signals must be those of
the Binance candles and that one order alone.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from perpsignal_common.events.market import LiquidationOrderV1
from perpsignal_common.events.signals import SignalScoredV1
from perpsignal_common.events.topics import Topic
from perpsignal_common.kafka.admin import ensure_topics
from perpsignal_common.kafka.producer import EventProducer
from perpsignal_common.settings import KafkaSettings
from perpsignal_domain.scoring.engine import ScoringEngine
from perpsignal_scorer.service import ScorerService
from perpsignal_scorer.settings import ScorerSettings
from tests.helpers import TopicReader, eventually
from tests.unit.scorer.test_liquidations_once import IngestorLiquidations
from tests.unit.scorer.test_venue_series import (
    BARS,
    T0_MS,
    binance_candles,
    interleaved,
    okx_candles,
)

pytestmark = pytest.mark.kafka


async def test_two_venues_and_three_liquidation_reports_score_as_one_venue_and_one_order(
    kafka_settings: KafkaSettings, shared_data: Path
) -> None:
    settings = ScorerSettings(
        kafka=kafka_settings,
        scorer_primary_timeframe="1m",
        scorer_smc_timeframes="1m,5m",
        scorer_rewind_records=-1,
        scorer_global_warmup_s=1.0,
    )
    binance = binance_candles(shared_data)
    okx = okx_candles(shared_data, binance[0].close)
    ingestor = IngestorLiquidations(shared_data, trade_ms=T0_MS + 30 * 60_000 + 17_400)
    await ingestor.binance_order()
    await ingestor.coinglass_relay()
    reports = [*ingestor.producer.events, *ingestor.buckets()]
    assert [e.type for e in reports] == [
        "liquidation.order",
        "liquidation.order",
        "market.liquidation_bucket",
    ]
    order = reports[0]
    assert isinstance(order, LiquidationOrderV1)

    await ensure_topics(kafka_settings)
    producer = EventProducer(kafka_settings, service="test")
    await producer.start()
    service = ScorerService(settings)
    stop = asyncio.Event()
    try:
        async with TopicReader(kafka_settings, Topic.SIGNALS) as out:
            await service.start()
            task = asyncio.create_task(service.run(stop))
            await producer.publish_many(reports)
            await eventually(lambda: service.market.processed >= 3, what="reports handled")
            await producer.publish_many(interleaved(binance, okx, "okx"))
            await out.wait_for(BARS)
            stop.set()
            await asyncio.wait_for(task, 20)
    finally:
        await service.close()
        await producer.stop()

    signals = [e for e in out.events() if isinstance(e, SignalScoredV1)]
    assert len(signals) == BARS
    assert {s.venue for s in signals} == {"binance"}
    assert [s.price for s in signals] == [c.close for c in binance]
    # the engine fed the reports and the Binance candles only: what the service did
    engine = ScoringEngine(settings.engine_config())
    for report in reports:
        engine.apply(report)
    expected = [s for c in binance for s in engine.apply(c)]
    # and the engine fed the order once: the same scores (the factor's age, hence the
    # confidence, follows the newest report, the bucket)
    once = ScoringEngine(settings.engine_config())
    once.apply(order)
    scores = [s.score for c in binance for s in once.apply(c)]
    assert [s.score for s in signals] == scores
    counted = 0
    for got, want in zip(signals, expected, strict=True):
        assert got.event_id == want.event_id
        assert (got.score, got.confidence, got.factors) == (
            want.score,
            want.confidence,
            want.factors,
        )
        liq = next(f for f in got.factors if f.name == "liquidations")
        if liq.inputs.get("long_liquidations_usd"):
            assert liq.inputs["long_liquidations_usd"] == round(order.notional_usd, 2)
            counted += 1
    assert counted == 60  # the order is in the 1h window of the hour's signals after it
