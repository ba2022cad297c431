"""The live scorer dead-letters a liquidation order priced far from its symbol's market.

Binance's documented forceOrder (a BTC order at 9,910) sent as XRPUSDT after XRP candles
(~1.2): it goes to liquidations.v1.dlq with the reason and is not counted; an order at the
market's price after it is counted.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from perpsignal_common.events.topics import Topic, dlq_topic
from perpsignal_common.kafka.admin import ensure_topics
from perpsignal_common.kafka.producer import EventProducer
from perpsignal_common.settings import KafkaSettings
from perpsignal_scorer.settings import ScorerSettings
from tests.helpers import TopicReader, eventually
from tests.integration.scorer.test_scorer_service import Running
from tests.poison_helpers import binance_candles, force_order

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
    settings = ScorerSettings(
        kafka=kafka_settings,
        scorer_primary_timeframe="5m",
        scorer_smc_timeframes="5m,15m",
        scorer_rewind_records=-1,
        scorer_global_warmup_s=1.0,
    )
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
