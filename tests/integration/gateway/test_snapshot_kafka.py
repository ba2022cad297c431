"""The read-model snapshot on the embedded broker: a new replica starts from it and serves
exactly what a replica that re-read every topic serves; duplicates, unreadable records and a
snapshot that no longer matches the topics never break it; ready only once caught up."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from perpsignal_common.events.base import Event
from perpsignal_common.events.registry import encode
from perpsignal_common.events.topics import Topic
from perpsignal_common.kafka.admin import ensure_topics
from perpsignal_common.kafka.producer import EventProducer, event_headers
from perpsignal_common.settings import KafkaSettings
from perpsignal_gateway.main import create_app
from perpsignal_gateway.readmodel import ReadModel
from perpsignal_gateway.settings import GatewaySettings
from perpsignal_gateway.snapshot import all_keys, capture, load_snapshot
from tests.helpers import TopicReader, eventually
from tests.unit.gateway import builders as b

pytestmark = pytest.mark.kafka

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")


@contextlib.asynccontextmanager
async def gateway(
    kafka: KafkaSettings, **overrides: Any
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    async def listed() -> set[str]:
        return set(SYMBOLS)

    settings: dict[str, Any] = {
        "gateway_snapshot_interval_s": 0.3,
        "gateway_snapshot_write": False,
        **overrides,
    }
    cfg = GatewaySettings(kafka=kafka, gateway_enable_database=False, **settings)
    app = create_app(cfg, vendor_env={}, listed_symbols=listed)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            yield app, client


async def _ready(client: httpx.AsyncClient) -> bool:
    return (await client.get("/readyz")).status_code == 200


def _history() -> list[Event]:
    events: list[Event] = []
    for hour in range(30):  # several versions per symbol: only the newest must win
        at = b.T0 + timedelta(hours=hour)
        for n, sym in enumerate(SYMBOLS):
            events.append(b.signal(sym, score=float(hour + n), at=at))
            events.append(b.funding(sym, at=at, rate=0.0001 * (hour + 1)))
            events.append(b.open_interest(sym, at=at))
    events += [b.mss("AAA"), b.listing("NEWUSDT")]
    events += [b.liquidation("BTCUSDT", n=n) for n in range(6)]
    return events


def _tail() -> list[Event]:
    """What happens after the snapshot was written: the new replica must replay it."""
    at = b.T0 + timedelta(days=2)
    return [
        b.signal("BTCUSDT", score=88.0, at=at),
        b.funding("ETHUSDT", at=at, rate=0.0009),
        b.signal("ADAUSDT", score=55.0, at=at),
        b.mss("BBB", score=64.0),
        *[b.liquidation("BTCUSDT", n=n) for n in range(6, 9)],
    ]


def _strip_ages(value: Any) -> Any:
    if isinstance(value, dict):
        kept = {k: v for k, v in value.items() if "age" not in k.lower() and k != "asOf"}
        return {k: _strip_ages(v) for k, v in kept.items()}
    if isinstance(value, list | tuple):
        return [_strip_ages(v) for v in value]
    return value


async def _view(client: httpx.AsyncClient) -> dict[str, Any]:
    """Everything a user reads off the read model, minus ages (they tick with the clock)."""
    out: dict[str, Any] = {"signals": (await client.get("/signals")).json()}
    for sym in (*SYMBOLS, "ADAUSDT"):
        for path in ("/signals/", "/market/", "/liquidations/"):
            r = await client.get(path + sym)
            out[path + sym] = (r.status_code, r.json())
    out["mss"] = (await client.get("/mss")).json()
    out["listings"] = (await client.get("/listings/new")).json()
    return _strip_ages(out)


async def _publish(kafka: KafkaSettings, events: list[Event]) -> None:
    producer = EventProducer(kafka, service="test")
    await producer.start()
    try:
        await producer.publish_many(events)
    finally:
        await producer.stop()


async def _write_snapshot(kafka: KafkaSettings) -> None:
    """Run a writer replica until it has published a full dump, then stop it."""
    async with gateway(kafka, gateway_snapshot_write=True) as (app, client):
        await eventually(lambda: _ready(client), timeout=60, what="writer ready")
        await eventually(
            lambda: app.state.snapshot_writer.dumps >= 1, timeout=60, what="a full dump"
        )


async def _compare_with_full_reread(kafka: KafkaSettings) -> tuple[FastAPI, dict[str, Any]]:
    async with (
        gateway(kafka) as (fast, fast_client),
        gateway(kafka, gateway_snapshot_read=False) as (full, full_client),
    ):
        for c in (fast_client, full_client):
            await eventually(lambda c=c: _ready(c), timeout=60, what="readyz 200")
        fast_view, full_view = await _view(fast_client), await _view(full_client)
        assert fast_view == full_view
        assert full.state.follower.started_from == "topics"
        ready = (await fast_client.get("/readyz")).json()
        return fast, {"view": fast_view, "ready": ready}


async def test_a_replica_from_the_snapshot_serves_what_a_full_reread_serves(
    kafka_settings: KafkaSettings,
) -> None:
    await ensure_topics(kafka_settings)
    history = _history()
    await _publish(kafka_settings, history)
    await _write_snapshot(kafka_settings)
    await _publish(kafka_settings, _tail())

    fast, seen = await _compare_with_full_reread(kafka_settings)
    follower = fast.state.follower
    assert follower.started_from == "snapshot" and seen["ready"]["startedFrom"] == "snapshot"
    # it read the tail and what the snapshot did not cover, not the history again
    assert follower.records_read < len(history)
    view = seen["view"]
    assert view["/signals/BTCUSDT"][1]["score"] == 88.0  # tail, newer than the snapshot
    assert view["/signals/ETHUSDT"][1]["score"] == 30.0  # from the snapshot only
    assert view["/signals/ADAUSDT"][0] == 200  # a symbol first seen after the snapshot
    assert view["/liquidations/BTCUSDT"][1]["count"] == 9  # none twice, none lost
    assert view["mss"]["count"] == 2
    assert view["listings"]["listings"][0]["symbol"] == "NEWUSDT"


async def test_duplicated_and_unreadable_snapshot_records_are_ignored(
    kafka_settings: KafkaSettings, caplog: pytest.LogCaptureFixture
) -> None:
    await ensure_topics(kafka_settings)
    await _publish(kafka_settings, _history())
    await _write_snapshot(kafka_settings)
    await _publish(kafka_settings, _tail())
    topic = kafka_settings.topic(Topic.GATEWAY_SNAPSHOT)
    # the embedded broker does not compact: every record twice, as an uncompacted log holds
    # a key's versions; then garbage under a real key and under a made-up one
    async with TopicReader(kafka_settings, Topic.GATEWAY_SNAPSHOT) as reader:
        await reader.wait_for(2)
        written = list(reader.records)
    producer = EventProducer(kafka_settings, service="test")
    await producer.start()
    try:
        for record in written:
            await producer.send_raw(topic, record.key, record.value, record.headers)
        await producer.send_raw(topic, b"symbol:BTCUSDT", b"not json at all")
        await producer.send_raw(topic, b"symbol:ETHUSDT", b'{"type":"gateway.snapshot"}')
        await producer.send_raw(topic, b"garbage", b"\x00\x01")
        await producer.wait_delivered()
    finally:
        await producer.stop()

    with caplog.at_level(logging.WARNING, logger="perpsignal_gateway.snapshot"):
        fast, seen = await _compare_with_full_reread(kafka_settings)
    assert fast.state.follower.started_from == "snapshot"
    unreadable = [r for r in caplog.records if "unreadable snapshot record" in r.getMessage()]
    assert len(unreadable) == 3
    assert seen["view"]["/liquidations/BTCUSDT"][1]["count"] == 9


async def test_an_mss_record_whose_coin_cannot_key_a_snapshot_does_not_stop_full_dumps(
    kafka_settings: KafkaSettings,
) -> None:
    """`coin` is free text on the MSS topic, but it names the snapshot key (a symbol)."""
    await ensure_topics(kafka_settings)
    poison = b.mss("CCC").model_copy(update={"coin": "not a coin!"})
    await _publish(kafka_settings, [*_history(), poison])
    await _write_snapshot(kafka_settings)  # a full dump is written all the same
    fast, seen = await _compare_with_full_reread(kafka_settings)
    assert fast.state.follower.started_from == "snapshot"
    assert [m["coin"] for m in seen["view"]["mss"]["results"]] == ["AAA"]


async def test_a_snapshot_that_does_not_match_the_topics_is_dropped(
    kafka_settings: KafkaSettings, caplog: pytest.LogCaptureFixture
) -> None:
    """A snapshot from before the topics were re-created names offsets beyond their end."""
    await ensure_topics(kafka_settings)
    history = _history()
    await _publish(kafka_settings, history)
    # what a writer captured from a longer-lived generation of the topics: other state,
    # offsets far beyond today's log ends
    old = ReadModel()
    old.apply(b.signal("BTCUSDT", score=3.0, at=b.T0 + timedelta(days=9)))
    old.apply(b.signal("DOGEUSDT", score=4.0))
    beyond = {str(t): [10_000] * 3 for t in (Topic.SIGNALS_JUDGED, Topic.MARKET)}
    records = [capture(old, ("symbol", s), beyond, "old:1") for s in ("BTCUSDT", "DOGEUSDT")]
    producer = EventProducer(kafka_settings, service="test")
    await producer.start()
    try:
        topic = kafka_settings.topic(Topic.GATEWAY_SNAPSHOT)
        began = await producer.send_acked(
            topic, records[0].partition_key(), encode(records[0]), event_headers(records[0])
        )
        for r in records[1:]:
            await producer.send_acked(topic, r.partition_key(), encode(r), event_headers(r))
        dump = records[0].model_copy(
            update={"kind": "dump", "symbol": "dump", "signal": None, "dump_began_at": began}
        )
        await producer.send_acked(topic, dump.partition_key(), encode(dump), event_headers(dump))
    finally:
        await producer.stop()

    with caplog.at_level(logging.ERROR, logger="perpsignal_gateway.readmodel"):
        async with gateway(kafka_settings) as (app, client):
            await eventually(lambda: _ready(client), timeout=60, what="readyz 200")
            assert app.state.follower.started_from == "topics"
            symbols = {s["symbol"] for s in (await client.get("/signals")).json()["signals"]}
            assert symbols == set(SYMBOLS)  # nothing of the stale snapshot is served
            assert (await client.get("/signals/BTCUSDT")).json()["score"] == 29.0
    assert any("does not match the topics" in r.getMessage() for r in caplog.records)


async def test_not_ready_until_caught_up_with_the_tail_after_the_snapshot(
    kafka_settings: KafkaSettings,
) -> None:
    await ensure_topics(kafka_settings)
    await _publish(kafka_settings, _history())
    await _write_snapshot(kafka_settings)
    at = b.T0 + timedelta(days=3)
    tail = [b.signal("BTCUSDT", score=n / 4, at=at + timedelta(minutes=n)) for n in range(400)]
    await _publish(kafka_settings, tail)

    async with gateway(kafka_settings) as (app, client):
        first = await client.get("/readyz")
        assert first.status_code == 503 and first.json()["caughtUp"] is False
        await eventually(lambda: _ready(client), timeout=60, interval=0.0, what="readyz 200")
        # the moment it says ready, the newest event of the tail is served
        assert (await client.get("/signals/BTCUSDT")).json()["score"] == 99.75
        assert app.state.follower.started_from == "snapshot"


async def test_a_reader_reads_back_only_the_last_full_dump_period(
    kafka_settings: KafkaSettings,
) -> None:
    """The embedded broker keeps every record ever written to the snapshot topic: a new
    replica reads back one full-dump period, not the whole topic, and still gets every key."""
    await ensure_topics(kafka_settings)
    await _publish(kafka_settings, _history())
    async with gateway(
        kafka_settings,
        gateway_snapshot_write=True,
        gateway_snapshot_interval_s=0.1,
        gateway_snapshot_full_every_s=0.5,
    ) as (app, client):
        await eventually(lambda: _ready(client), timeout=60, what="writer ready")
        await eventually(
            lambda: app.state.snapshot_writer.dumps >= 4, timeout=60, what="several dumps"
        )
        keys = set(all_keys(app.state.model))
    recent = await load_snapshot(kafka_settings, window_s=1.0)
    assert recent is not None and set(recent.records) == keys
    await asyncio.sleep(1.5)  # now nothing was written within the window: read it all
    everything = await load_snapshot(kafka_settings, window_s=0.5)
    assert everything is not None and set(everything.records) == keys
    assert everything.read >= 4 * len(keys)  # every dump is still there (no compaction)
    assert recent.read < everything.read  # the recent read skipped the older dumps


async def test_one_replica_writes_and_another_takes_over_when_it_stops(
    kafka_settings: KafkaSettings,
) -> None:
    await ensure_topics(kafka_settings)
    await _publish(kafka_settings, _history())
    stacks = [contextlib.AsyncExitStack(), contextlib.AsyncExitStack()]
    try:
        apps = []
        for stack in stacks:
            app, client = await stack.enter_async_context(
                gateway(kafka_settings, gateway_snapshot_write=True)
            )
            await eventually(lambda c=client: _ready(c), timeout=60, what="readyz 200")
            apps.append(app)
        writers = [app.state.snapshot_writer for app in apps]
        await eventually(lambda: any(w.leader for w in writers), timeout=30, what="a writer")
        await asyncio.sleep(1.0)  # a second writer would have been elected by now
        assert sum(w.leader for w in writers) == 1
        n = next(i for i, w in enumerate(writers) if w.leader)
        await eventually(lambda: writers[n].dumps >= 1, timeout=30, what="a full dump")
        await stacks[n].aclose()  # the writer's replica stops
        other = writers[1 - n]
        await eventually(lambda: other.leader, timeout=30, what="the other replica elected")
        await eventually(lambda: other.dumps >= 1, timeout=30, what="its own full dump")
    finally:
        for stack in stacks:
            await stack.aclose()
