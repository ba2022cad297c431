"""A judge request may name only the judge's reply topic: any other is dead-lettered.

`reply_topic` is a field of the request on the bus; the judge publishes its reply there.
It used to accept any name starting with the reply topic's (`...replies.v1.x`,
`...replies.v1.dlq`): each request could make the broker create a topic (the embedded broker
and Kafka with auto-create make one on first produce) nobody reads, or write into the reply
topic's dead-letter topic. The gateway, the one requester, always names the reply topic.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from perpsignal_common.events.registry import encode
from perpsignal_common.events.signals import JudgeReplyV1
from perpsignal_common.events.topics import Topic, dlq_topic
from perpsignal_common.kafka.admin import ensure_topics
from perpsignal_common.kafka.producer import EventProducer
from perpsignal_common.settings import KafkaSettings
from tests.helpers import TopicReader
from tests.integration.test_poison_judge import Running, request
from tests.poison_helpers import scored_signals

pytestmark = pytest.mark.kafka

SYMBOL = "XRPUSDT"


async def _topics(kafka: KafkaSettings) -> set[str]:
    admin = AIOKafkaAdminClient(**kafka.client_kwargs(), client_id="test-admin")
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


@pytest.mark.parametrize("suffix", [".attacker-1", ".dlq"])
async def test_a_request_naming_another_reply_topic_is_dead_lettered_and_creates_none(
    kafka_settings: KafkaSettings, shared_data: Path, suffix: str
) -> None:
    csv = shared_data / "market" / "XRP_USDT_USDT-5m-futures.csv"
    context = scored_signals(csv, SYMBOL, 40)[-1]
    hostile = request(context, "req-hostile").model_copy(
        update={"reply_topic": Topic.JUDGE_REPLIES + suffix}
    )
    clean = request(context, "req-clean")
    await ensure_topics(kafka_settings)
    before = await _topics(kafka_settings)
    producer = EventProducer(kafka_settings, "test")
    await producer.start()
    try:
        async with (
            TopicReader(kafka_settings, Topic.JUDGE_REPLIES) as replies,
            Running(kafka_settings),
        ):
            await producer.publish(hostile, wait=True)
            await producer.publish(clean, wait=True)
            await replies.wait_for(1, timeout=60)
        async with TopicReader(kafka_settings, dlq_topic(Topic.JUDGE_REQUESTS)) as dlq:
            await dlq.wait_for(1)
            letters = {r.value: dict(r.headers) for r in dlq.records}
    finally:
        await producer.stop()

    assert [e.correlation_id for e in replies.events() if isinstance(e, JudgeReplyV1)] == [
        "req-clean"
    ]
    assert set(letters) == {encode(hostile)}
    assert b"reply_topic" in letters[encode(hostile)]["dlq.error"]
    created = await _topics(kafka_settings) - before
    assert not any(Topic.JUDGE_REPLIES + suffix in t for t in created), created
