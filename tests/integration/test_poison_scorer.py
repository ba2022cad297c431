"""Hostile values on every topic the scorer consumes, on the real broker: each poisoned record
lands in `<topic>.dlq` with the reason in its headers, the clean records after it are still
handled, and the symbol keeps producing a signal for every clean candle."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from perpsignal_common.events.base import Event, deterministic_id
from perpsignal_common.events.market import TrackCommandV1
from perpsignal_common.events.registry import encode
from perpsignal_common.events.signals import SignalScoredV1
from perpsignal_common.events.topics import Topic, dlq_topic
from perpsignal_common.kafka.admin import ensure_topics
from perpsignal_common.kafka.producer import EventProducer, event_headers
from perpsignal_common.settings import KafkaSettings
from tests.helpers import TopicReader, eventually
from tests.integration.scorer.test_scorer_service import Running, scorer_5m_settings
from tests.poison_helpers import binance_candles, fear_greed, force_order, listing, poison

pytestmark = pytest.mark.kafka

SYMBOL = "XRPUSDT"


class Sender:
    """Publish clean events and poisoned copies, one at a time, in this order."""

    def __init__(self, producer: EventProducer, kafka: KafkaSettings) -> None:
        self.producer = producer
        self.kafka = kafka

    async def clean(self, event: Event) -> None:
        await self.producer.publish(event, wait=True)

    async def poisoned(self, event: Event, field: str, token: str) -> tuple[bytes, str]:
        raw = poison(encode(event), field, token)
        topic = self.kafka.topic(event.topic)
        await self.producer.send_raw(
            topic, event.partition_key(), raw, event_headers(event), wait=True
        )
        return raw, field


def dead_letters(records: list[Any]) -> dict[bytes, dict[str, bytes]]:
    return {r.value: dict(r.headers) for r in records}


async def test_poison_on_every_scorer_topic_is_dead_lettered_and_the_symbol_goes_on(
    kafka_settings: KafkaSettings, shared_data: Path
) -> None:
    api = shared_data / "api"
    csv = shared_data / "market" / "XRP_USDT_USDT-5m-futures.csv"
    candles = binance_candles(csv, SYMBOL, "5m", 24)
    t0 = candles[0].observed_at
    ms = int(t0.timestamp() * 1000)
    settings = scorer_5m_settings(kafka_settings)
    await ensure_topics(kafka_settings)
    producer = EventProducer(kafka_settings, service="test")
    await producer.start()
    send = Sender(producer, kafka_settings)
    fng_before = fear_greed(api, int(t0.timestamp()) - 86400, 20)
    fng_after = fear_greed(api, int(t0.timestamp()) + 600, 80)
    liquidation = force_order(api, SYMBOL, ms + 60_000, price="1.19")
    new_listing = listing("NEWUSDT", "NEW", t0)
    track = TrackCommandV1(
        event_id=deterministic_id("test", "track", SYMBOL),
        source="gateway",
        symbol=SYMBOL,
        observed_at=candles[-1].observed_at + timedelta(seconds=30),
    )
    poisoned: dict[str, list[tuple[bytes, str]]] = {}
    try:
        async with (
            TopicReader(kafka_settings, Topic.SIGNALS) as out,
            Running(settings) as scorer,
        ):
            await send.clean(fng_before)
            for c in candles[:8]:
                await send.clean(c)
            await out.wait_for(8)

            # one poisoned record per failure mode, each between clean ones
            poisoned[Topic.MARKET] = [
                await send.poisoned(candles[8], "close", "NaN"),
                await send.poisoned(candles[8], "low", "0"),
                await send.poisoned(candles[8], "observed_at", '"9999-12-31T00:00:00Z"'),
                await send.poisoned(candles[8], "schema_version", "2"),
            ]
            poisoned[Topic.MARKET_GLOBAL] = [
                await send.poisoned(fng_after, "observed_at", '"9999-12-31T00:00:00Z"')
            ]
            poisoned[Topic.LIQUIDATIONS] = [await send.poisoned(liquidation, "price", "Infinity")]
            poisoned[Topic.LISTINGS] = [await send.poisoned(new_listing, "symbol", '""')]
            poisoned[Topic.COMMANDS] = [
                await send.poisoned(track, "symbol", '"' + "A" * 10_000 + '"')
            ]

            await send.clean(fng_after)
            await send.clean(liquidation)
            await send.clean(new_listing)
            for c in candles[8:]:
                await send.clean(c)
            await send.clean(track)
            await out.wait_for(len(candles) + 1, timeout=60)

            # the clean records after the poisoned ones were handled
            engine = scorer.engine
            liq_at = liquidation.observed_at.timestamp()
            await eventually(
                lambda: engine.fear_greed is not None and engine.fear_greed[1] == 80,
                what="the clean fear & greed reading",
            )
            # the clean order is counted by the symbol's liquidation ledger
            assert sum(engine.state(SYMBOL).liquidations.totals(liq_at - 1, liq_at)) > 0
            assert engine.mss.coins["NEW"].listed

        for topic, sent in poisoned.items():
            async with TopicReader(kafka_settings, dlq_topic(topic)) as dlq:
                await dlq.wait_for(len(sent))
                letters = dead_letters(dlq.records)
            assert set(letters) == {raw for raw, _ in sent}, topic
            for raw, field in sent:
                headers = letters[raw]
                assert headers["dlq.error_type"] == b"PoisonMessage"
                reason = headers["dlq.error"].decode()
                assert reason.startswith("PoisonMessage: invalid event: "), reason
                assert field in reason, reason
    finally:
        await producer.stop()

    signals = [e for e in out.events() if isinstance(e, SignalScoredV1)]
    by_cause = {s.causation_id: s for s in signals}
    # a signal for every clean candle, the one poisoned three ways included, and the command
    assert {c.event_id for c in candles} <= set(by_cause)
    assert [s.trigger for s in signals].count("on_demand") == 1
    assert len(signals) == len(candles) + 1
