"""A scored signal whose record key is not its symbol is dead-lettered, never judged.

The consumer loop orders records per (partition, key): a record keyed by another symbol
sits in that symbol's partition and lane, out of its own symbol's order (the judge's
cooldown and exposure rules read that order). The scorer refuses such a record the same way.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from perpsignal_common.events.signals import SignalJudgedV1
from perpsignal_common.events.topics import Topic, dlq_topic
from perpsignal_common.kafka.admin import ensure_topics
from perpsignal_common.kafka.producer import EventProducer
from perpsignal_common.settings import KafkaSettings
from tests.helpers import TopicReader, eventually
from tests.integration.judge.test_judge_service import Running
from tests.poison_helpers import (
    assert_dead_lettered_as_misrouted,
    scored_signals,
    send_under_key,
)

pytestmark = pytest.mark.kafka

SYMBOL = "XRPUSDT"


async def test_a_signal_keyed_by_another_symbol_is_dead_lettered_and_not_judged(
    kafka_settings: KafkaSettings, shared_data: Path
) -> None:
    csv = shared_data / "market" / "XRP_USDT_USDT-5m-futures.csv"
    signals = scored_signals(csv, SYMBOL, 40)[-5:]  # what the real scorer publishes
    misrouted = signals[2]
    await ensure_topics(kafka_settings)
    producer = EventProducer(kafka_settings, "test")
    await producer.start()
    try:
        async with (
            TopicReader(kafka_settings, Topic.SIGNALS_JUDGED) as judged,
            Running(kafka_settings) as running,
        ):
            for s in signals:
                if s is misrouted:
                    await send_under_key(producer, kafka_settings, Topic.SIGNALS, s, b"BTCUSDT")
                else:
                    await producer.publish(s, wait=True)
            await judged.wait_for(len(signals) - 1, timeout=60)
            await eventually(lambda: running.service.loop.processed >= len(signals) - 1)
            async with TopicReader(kafka_settings, dlq_topic(Topic.SIGNALS)) as dlq:
                letters = await dlq.wait_for(1)
            await judged.poll()
    finally:
        await producer.stop()

    [letter] = letters
    assert_dead_lettered_as_misrouted(letter.value, dict(letter.headers), misrouted, "BTCUSDT")
    causes = [e.causation_id for e in judged.events() if isinstance(e, SignalJudgedV1)]
    assert sorted(causes) == sorted(s.event_id for s in signals if s is not misrouted)
