"""A failing data source, as the real ingestor loop reports it, in /health/services and /readyz."""

from __future__ import annotations

import asyncio
import random

from perpsignal_common.errors import TransientError
from perpsignal_common.events.registry import decode, encode
from perpsignal_ingestor.publisher import Publisher
from perpsignal_ingestor.scheduler import SourceLoop
from tests.helpers import eventually
from tests.unit.gateway.conftest import model_of
from tests.unit.ingestor.conftest import RecordingProducer


async def ingestor_status_events(fail: bool) -> list[bytes]:
    """Run the real ingestor source loop against a failing (or working) vendor."""
    producer = RecordingProducer()
    publisher = Publisher(producer)  # type: ignore[arg-type]

    async def poll() -> list:
        if fail:
            raise TransientError("binance klines: ConnectError('[Errno 111] Connection refused')")
        return []

    loop = SourceLoop("binance", 0.01, poll, publisher, min_backoff_s=0.001, rng=random.Random(0))
    stop = asyncio.Event()
    task = asyncio.create_task(loop.run(stop))
    await eventually(lambda: loop.state is not None, timeout=5, what="a status")
    stop.set()
    await task
    return [encode(e) for e in producer.events]


async def test_a_down_source_is_reported_and_the_gateway_stays_ready(make_client) -> None:
    app, client = await make_client()
    for raw in await ingestor_status_events(fail=True):
        model_of(app).apply(decode(raw))

    health = (await client.get("/health/services")).json()
    (source,) = health["sources"]
    assert source["name"] == "binance" and source["state"] == "down"
    assert "Connection refused" in source["reason"] and source["since"]

    ready = await client.get("/readyz")
    assert ready.status_code == 200  # a vendor outage must not get the gateway restarted
    assert ready.json()["status"] == "degraded"
    assert ready.json()["degradedSources"][0].startswith("binance down since ")

    # the source comes back: the banner and the degraded status go away
    for raw in await ingestor_status_events(fail=False):
        model_of(app).apply(decode(raw))
    assert (await client.get("/health/services")).json()["sources"] == []
    assert (await client.get("/readyz")).json()["status"] == "ready"
