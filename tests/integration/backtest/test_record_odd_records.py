"""`perpsignal record` of records that are not JSON events says so, instead of leaving the
mangled text for `replay` to refuse later."""

from __future__ import annotations

import logging
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from perpsignal_cli.backtesting.eventfile import line_of, read_lines
from perpsignal_cli.backtesting.importers import candle_events, read_candles
from perpsignal_cli.record import record
from perpsignal_common.events.topics import Topic
from perpsignal_common.kafka.admin import ensure_topics
from perpsignal_common.settings import KafkaSettings

pytestmark = pytest.mark.kafka


async def test_records_that_are_not_json_events_are_counted_and_named(
    shared_data: Path,
    kafka_settings: KafkaSettings,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = kafka_settings.model_copy(update={"kafka_topic_partitions": 1})
    await ensure_topics(settings)
    series = read_candles(shared_data / "market" / "XRP_USDT_USDT-1h-futures.csv").slice(0, 1)
    event = candle_events(series, "XRPUSDT")[0]
    good = line_of(event)

    topic = settings.topic(str(Topic.MARKET))
    producer = AIOKafkaProducer(**settings.client_kwargs())
    await producer.start()
    try:
        await producer.send_and_wait(topic, orjson.dumps(orjson.loads(good)["event"]), b"XRPUSDT")
        await producer.send_and_wait(topic, b"\xff\xfe not json", b"XRPUSDT")  # a poison value
        await producer.send_and_wait(topic, None, b"XRPUSDT")  # a tombstone
    finally:
        await producer.stop()

    out = tmp_path / "tap.jsonl"
    with caplog.at_level(logging.WARNING, logger="perpsignal_cli.record"):
        n = await record(
            settings, [str(Topic.MARKET)], out, from_beginning=True, max_records=3, idle_s=5
        )
    assert n == 3
    assert len(read_lines(out)) == 3  # every record is still written
    warned = [r.getMessage() for r in caplog.records if r.name == "perpsignal_cli.record"]
    # the old code wrote the first as text with replacement characters, without a word
    assert warned == [
        "2 record(s) are not JSON events, written as text that replay refuses: "
        f"{topic}[0]@1, {topic}[0]@2"
    ]
