"""A record whose key is not its event's symbol is dead-lettered, never scored.

One symbol's events must stay in one partition: the scorer handles a partition strictly in
order and its state assumes each symbol's events come in their order. A record keyed by
another symbol lands in that symbol's partition (any producer but ours, a replay file with
a wrong key column), so its place among the symbol's own events is arbitrary, and a
restart's replay may interleave it differently from the live run.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from perpsignal_common.events.signals import SignalScoredV1
from perpsignal_common.events.topics import Topic, dlq_topic
from perpsignal_common.kafka.admin import ensure_topics
from perpsignal_common.kafka.producer import EventProducer
from perpsignal_common.settings import KafkaSettings
from tests.helpers import TopicReader
from tests.integration.scorer.test_scorer_service import Running, scorer_5m_settings
from tests.poison_helpers import (
    assert_dead_lettered_as_misrouted,
    binance_candles,
    send_under_key,
)

pytestmark = pytest.mark.kafka

SYMBOL = "XRPUSDT"


async def test_a_record_keyed_by_another_symbol_is_dead_lettered_with_the_reason(
    kafka_settings: KafkaSettings, shared_data: Path
) -> None:
    csv = shared_data / "market" / "XRP_USDT_USDT-5m-futures.csv"
    candles = binance_candles(csv, SYMBOL, "5m", 12)
    settings = scorer_5m_settings(kafka_settings)
    await ensure_topics(kafka_settings)
    producer = EventProducer(kafka_settings, service="test")
    await producer.start()
    misrouted = candles[6]
    try:
        async with (
            TopicReader(kafka_settings, Topic.SIGNALS) as out,
            Running(settings),
        ):
            for c in candles[:6]:
                await producer.publish(c, wait=True)
            await out.wait_for(6)
            await send_under_key(producer, kafka_settings, Topic.MARKET, misrouted, b"BTCUSDT")
            for c in candles[7:]:
                await producer.publish(c, wait=True)
            await out.wait_for(len(candles) - 1, timeout=60)
        async with TopicReader(kafka_settings, dlq_topic(Topic.MARKET)) as dlq:
            await dlq.wait_for(1)
            letters = {r.value: dict(r.headers) for r in dlq.records}
    finally:
        await producer.stop()

    [(value, headers)] = letters.items()
    assert_dead_lettered_as_misrouted(value, headers, misrouted, "BTCUSDT")
    signals = [e for e in out.events() if isinstance(e, SignalScoredV1)]
    causes = {s.causation_id for s in signals}
    assert misrouted.event_id not in causes
    assert {c.event_id for c in candles if c is not misrouted} == causes
