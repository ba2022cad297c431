"""What no live venue sends is dead-lettered by the scorer service, with the reason.

* Binance's documented forceOrder (a BTC order at 9,910) sent as XRPUSDT after XRP candles
  (~1.2): liquidations.v1.dlq, not counted; an order at the market's price is counted.
* A 5m candle opening off the 5-minute grid, and one observed an hour after its close:
  market.v1.dlq, no signal; the symbol's next candles are scored as if they never came.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from perpsignal_common.events.signals import SignalScoredV1
from perpsignal_common.events.topics import Topic, dlq_topic
from perpsignal_common.kafka.admin import ensure_topics
from perpsignal_common.kafka.producer import EventProducer
from perpsignal_common.settings import KafkaSettings
from tests.helpers import TopicReader, eventually
from tests.integration.scorer.test_scorer_service import Running, scorer_5m_settings
from tests.poison_helpers import binance_candles, force_order
from tests.unit.scorer.test_candle_grid import observed_late, off_grid

pytestmark = pytest.mark.kafka

SYMBOL = "XRPUSDT"


async def test_an_order_of_another_market_is_dead_lettered_and_not_counted(
    kafka_settings: KafkaSettings, shared_data: Path
) -> None:
    api = shared_data / "api"
    candles = binance_candles(
        shared_data / "market" / "XRP_USDT_USDT-5m-futures.csv", SYMBOL, "5m", 12
    )
    at_ms = int(candles[-1].observed_at.timestamp() * 1000)
    foreign = force_order(api, SYMBOL, at_ms + 10_000, price="9910.0")
    own = force_order(api, SYMBOL, at_ms + 20_000, price="1.19")
    settings = scorer_5m_settings(kafka_settings)
    await ensure_topics(kafka_settings)
    producer = EventProducer(kafka_settings, service="test")
    await producer.start()
    try:
        async with (
            TopicReader(kafka_settings, Topic.SIGNALS) as out,
            Running(settings) as scorer,
        ):
            for c in candles:
                await producer.publish(c, wait=True)
            await out.wait_for(len(candles))
            await producer.publish(foreign, wait=True)
            await producer.publish(own, wait=True)
            ledger = scorer.engine.state(SYMBOL).liquidations
            t = own.observed_at.timestamp()
            await eventually(
                lambda: sum(ledger.totals(t - 3600, t)) > 0, what="the market's own order"
            )
            assert sum(ledger.totals(t - 3600, t)) == pytest.approx(own.notional_usd)
        async with TopicReader(kafka_settings, dlq_topic(Topic.LIQUIDATIONS)) as dlq:
            await dlq.wait_for(1)
            (letter,) = dlq.records
    finally:
        await producer.stop()
    headers = dict(letter.headers)
    assert headers["dlq.error_type"] == b"PoisonMessage"
    assert b"last close" in headers["dlq.error"] and b"9910" in headers["dlq.error"]


async def test_off_grid_and_late_candles_are_dead_lettered_and_not_scored(
    kafka_settings: KafkaSettings, shared_data: Path
) -> None:
    candles = binance_candles(
        shared_data / "market" / "XRP_USDT_USDT-5m-futures.csv", SYMBOL, "5m", 44
    )
    stray = off_grid(shared_data, 60_000)  # row 40, a minute late: between 40 and 41
    late = observed_late(candles[40], 3600)
    settings = scorer_5m_settings(kafka_settings)
    await ensure_topics(kafka_settings)
    producer = EventProducer(kafka_settings, service="test")
    await producer.start()
    try:
        async with (
            TopicReader(kafka_settings, Topic.SIGNALS) as out,
            Running(settings),
        ):
            for c in candles[:40]:
                await producer.publish(c, wait=True)
            await producer.publish(late, wait=True)  # before the true candle 40
            await producer.publish(candles[40], wait=True)
            await producer.publish(stray, wait=True)
            for c in candles[41:]:
                await producer.publish(c, wait=True)
            await out.wait_for(len(candles), timeout=60)
        async with TopicReader(kafka_settings, dlq_topic(Topic.MARKET)) as dlq:
            await dlq.wait_for(2)
            reasons = sorted(dict(r.headers)["dlq.error"].decode() for r in dlq.records)
    finally:
        await producer.stop()
    assert len(reasons) == 2, reasons
    assert any("off the 5m grid" in r for r in reasons), reasons
    assert any("from its close" in r for r in reasons), reasons
    signals = [e for e in out.events() if isinstance(e, SignalScoredV1)]
    assert [s.causation_id for s in signals] == [c.event_id for c in candles]
