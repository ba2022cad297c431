"""The gateway on the embedded broker: start-up catch-up, live follow, commands, judge RPC."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from perpsignal_common.events.market import TrackCommandV1
from perpsignal_common.events.registry import decode
from perpsignal_common.events.signals import JudgeRequestV1
from perpsignal_common.events.topics import Topic
from perpsignal_common.kafka.admin import ensure_topics
from perpsignal_common.kafka.producer import EventProducer
from perpsignal_common.settings import KafkaSettings
from perpsignal_gateway.main import create_app
from perpsignal_gateway.settings import GatewaySettings
from tests.helpers import TopicReader, eventually
from tests.unit.gateway import builders as b

pytestmark = pytest.mark.kafka


@contextlib.asynccontextmanager
async def gateway(kafka: KafkaSettings, **overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
    async def listed() -> set[str]:
        return {"BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT"}

    cfg = GatewaySettings(
        kafka=kafka,
        gateway_enable_database=False,
        gateway_on_demand_wait_s=0.5,
        **overrides,
    )
    app = create_app(cfg, vendor_env={}, listed_symbols=listed)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            yield client


async def _ready(client: httpx.AsyncClient) -> bool:
    return (await client.get("/readyz")).status_code == 200


async def test_catches_up_from_the_topics_then_follows_live(kafka_settings) -> None:
    await ensure_topics(kafka_settings)
    producer = EventProducer(kafka_settings, service="test")
    await producer.start()
    try:
        history = []
        for hour in range(40):  # several versions per symbol: only the newest must win
            at = b.T0 + timedelta(hours=hour)
            for n, sym in enumerate(("BTCUSDT", "ETHUSDT", "SOLUSDT")):
                history.append(b.signal(sym, score=float(hour + n), at=at))
        history += [b.funding("BTCUSDT"), b.mss("AAA"), b.listing("NEWUSDT")]
        history += [b.liquidation("BTCUSDT", n=n) for n in range(5)]
        await producer.publish_many(history)

        async with gateway(kafka_settings) as client, gateway(kafka_settings) as replica:
            for c in (client, replica):  # replicas share nothing: each catches up alone
                await eventually(lambda c=c: _ready(c), timeout=30, what="readyz 200")
                ready = (await c.get("/readyz")).json()
                assert ready["caughtUp"] is True and ready["recordsRead"] >= len(history)
                signals = (await c.get("/signals")).json()
                scores = {s["symbol"]: s["score"] for s in signals["signals"]}
                assert scores == {"BTCUSDT": 39.0, "ETHUSDT": 40.0, "SOLUSDT": 41.0}
                assert (await c.get("/market/BTC")).status_code == 200
                assert (await c.get("/mss")).json()["count"] == 1
                assert (await c.get("/listings/new")).json()["listings"][0]["symbol"] == "NEWUSDT"
                assert (await c.get("/liquidations/BTC")).json()["count"] == 5

            # live: a new signal published now shows up without a restart
            await producer.publish(
                b.signal("BTCUSDT", score=99.0, at=b.T0 + timedelta(days=3)), wait=True
            )

            async def updated() -> bool:
                return (await client.get("/signals/BTC")).json()["score"] == 99.0

            await eventually(updated, timeout=15, what="live signal visible")
    finally:
        await producer.stop()


async def test_on_demand_publishes_a_track_command(kafka_settings) -> None:
    async with gateway(kafka_settings) as client:
        await eventually(lambda: _ready(client), timeout=30, what="readyz 200")
        r = await client.get("/signals/xrp")
        assert r.status_code == 202 and int(r.headers["Retry-After"]) >= 1
        async with TopicReader(kafka_settings, Topic.COMMANDS) as reader:
            await reader.wait_for(1, timeout=15)
            commands = [e for e in reader.events() if isinstance(e, TrackCommandV1)]
            assert [(c.symbol, c.action) for c in commands] == [("XRPUSDT", "track")]


async def test_judge_validate_is_a_request_reply_over_the_bus(kafka_settings) -> None:
    await ensure_topics(kafka_settings)
    stop = asyncio.Event()
    # the symbol's market context: validation judges against it, never against nothing
    context = EventProducer(kafka_settings, service="test")
    await context.start()
    try:
        await context.publish(b.signal("ETHUSDT", score=61.0), wait=True)
    finally:
        await context.stop()
    contexts: list[float | None] = []

    async def fake_judge() -> None:
        judge_producer = EventProducer(kafka_settings, service="judge")
        await judge_producer.start()
        try:
            async with TopicReader(kafka_settings, Topic.JUDGE_REQUESTS) as reader:
                answered: set[str] = set()
                while not stop.is_set():
                    await reader.poll()
                    for record in reader.records:
                        req = decode(record.value)
                        assert isinstance(req, JudgeRequestV1)
                        if req.event_id in answered:
                            continue
                        answered.add(req.event_id)
                        contexts.append(req.signal.score if req.signal else None)
                        judged = b.signal(
                            req.symbol,
                            direction=req.direction,
                            verdict="WAIT",
                            score=req.score or 0,
                        )
                        reply = b.reply_for(req.correlation_id or "", judged)
                        await judge_producer.publish(reply, topic=req.reply_topic, wait=True)
        finally:
            await judge_producer.stop()

    judge_task = asyncio.create_task(fake_judge())
    try:
        async with gateway(kafka_settings, gateway_judge_timeout_s=20) as client:
            await eventually(lambda: _ready(client), timeout=30, what="readyz 200")
            r = await client.post(
                "/judge/validate", json={"symbol": "ETH", "direction": "SHORT", "score": 33}
            )
            assert r.status_code == 200, r.text
            body = r.json()
            assert (body["symbol"], body["signal"], body["score"]) == ("ETHUSDT", "SHORT", 33.0)
            assert body["aiVerdictLayer"]["verdict"] == "WAIT"
            assert contexts and contexts[-1] is not None  # the scored context went along
    finally:
        stop.set()
        await asyncio.wait_for(judge_task, 10)
