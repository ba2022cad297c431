"""Hostile values on the topics the judge consumes, on the real broker: each poisoned scored
signal or request lands in `<topic>.dlq` with the reason in its headers, and every clean signal
of the symbol after it is still judged (one NaN candle used to silence a symbol for good)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from perpsignal_common.events.base import Event
from perpsignal_common.events.registry import encode
from perpsignal_common.events.signals import (
    JudgeReplyV1,
    JudgeRequestV1,
    ScoredSignalFields,
    SignalJudgedV1,
)
from perpsignal_common.events.topics import Topic, dlq_topic
from perpsignal_common.kafka.admin import ensure_topics
from perpsignal_common.kafka.producer import EventProducer, event_headers
from perpsignal_common.settings import KafkaSettings
from perpsignal_judge.service import JudgeService
from perpsignal_judge.settings import JudgeSettings
from tests.helpers import InLoop, TopicReader, eventually
from tests.poison_helpers import poison, poison_newest_candle, scored_signals

pytestmark = pytest.mark.kafka

SYMBOL = "XRPUSDT"


class Running(InLoop[JudgeService]):
    """A JudgeService running in this event loop."""

    def __init__(self, kafka: KafkaSettings) -> None:
        super().__init__(JudgeService(JudgeSettings(kafka=kafka)))


def request(signal: ScoredSignalFields, cid: str) -> JudgeRequestV1:
    """A judge request as the gateway builds it for `POST /judge/validate`."""
    return JudgeRequestV1(
        event_id=cid,
        source="gateway",
        symbol=SYMBOL,
        observed_at=datetime.now(UTC),
        correlation_id=cid,
        direction="LONG",
        signal=ScoredSignalFields.model_validate(
            signal.model_dump(include=set(ScoredSignalFields.model_fields))
        ),
    )


async def test_poisoned_signals_and_requests_are_dead_lettered_and_the_symbol_is_still_judged(
    kafka_settings: KafkaSettings, shared_data: Path
) -> None:
    csv = shared_data / "market" / "XRP_USDT_USDT-5m-futures.csv"
    signals = scored_signals(csv, SYMBOL, 50)[-20:]
    await ensure_topics(kafka_settings)
    producer = EventProducer(kafka_settings, "test")
    await producer.start()

    async def send_raw(event: Event, raw: bytes) -> None:
        await producer.send_raw(
            kafka_settings.topic(event.topic),
            event.partition_key(),
            raw,
            event_headers(event),
            wait=True,
        )

    bad = signals[10]
    poisoned = {
        poison_newest_candle(bad, "close", "NaN"): "candles",
        poison_newest_candle(bad, "low", "0.0"): "candles",
        poison_newest_candle(bad, "open_time", '"9999-12-31T00:00:00Z"'): "candles",
        poison(encode(bad), "price", "0"): "price",
        poison(encode(bad), "observed_at", '"9999-12-31T00:00:00Z"'): "observed_at",
        poison(encode(bad), "schema_version", "99"): "schema_version",
    }
    clean_request = request(signals[-1], "req-clean")
    bad_request = poison(
        encode(request(signals[-1], "req-bad")), "symbol", '"' + "A" * 10_000 + '"'
    )
    try:
        async with (
            TopicReader(kafka_settings, Topic.SIGNALS_JUDGED) as judged,
            TopicReader(kafka_settings, Topic.JUDGE_REPLIES) as replies,
            Running(kafka_settings),
        ):
            await producer.publish_many(signals[:10])
            for raw in poisoned:
                await send_raw(bad, raw)
            await send_raw(clean_request, bad_request)
            await producer.publish_many(signals[10:])
            await producer.publish(clean_request, wait=True)

            async def all_judged() -> bool:
                await judged.poll()
                done = {e.causation_id for e in judged.events()}
                return done >= {s.event_id for s in signals}

            await eventually(all_judged, timeout=60, what="every clean signal judged")
            await replies.wait_for(1)

        async with TopicReader(kafka_settings, dlq_topic(Topic.SIGNALS)) as dlq:
            await dlq.wait_for(len(poisoned))
            letters = {r.value: dict(r.headers) for r in dlq.records}
        async with TopicReader(kafka_settings, dlq_topic(Topic.JUDGE_REQUESTS)) as dlq_req:
            await dlq_req.wait_for(1)
            request_letters = {r.value: dict(r.headers) for r in dlq_req.records}
    finally:
        await producer.stop()

    assert set(letters) == set(poisoned)
    for raw, field in poisoned.items():
        reason = letters[raw]["dlq.error"].decode()
        assert letters[raw]["dlq.error_type"] == b"PoisonMessage"
        assert reason.startswith("PoisonMessage: invalid event: ") and field in reason, reason
    assert set(request_letters) == {bad_request}
    assert b"symbol" in request_letters[bad_request]["dlq.error"]

    events = [e for e in judged.events() if isinstance(e, SignalJudgedV1)]
    assert {e.causation_id for e in events} == {s.event_id for s in signals}
    (reply,) = [e for e in replies.events() if isinstance(e, JudgeReplyV1)]
    assert reply.correlation_id == "req-clean" and reply.ok
