"""The banners every dashboard page shows: a replay demo, and a data source that is down.

The gateway runs as `perpsignal demo` starts it (`PERPSIGNAL_DEMO` set), and the outage comes
from the real ingestor source loop, its poll failing as an unreachable vendor does, published
through the real producer onto the topics the gateway reads.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from perpsignal_common.kafka.producer import EventProducer
from perpsignal_common.settings import KafkaSettings
from perpsignal_ingestor.publisher import Publisher
from perpsignal_ingestor.scheduler import SourceLoop
from tests.browser.conftest import CHROMIUM, Gateway, enter_key, screenshot
from tests.helpers import eventually
from tests.unit.gateway.test_health_view import METRICS_TEXT, OpsServer

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed"),
    pytest.mark.kafka,
    pytest.mark.db,
    pytest.mark.asyncio(loop_scope="module"),
]

DEMO = {
    "data": "Binance USD-M XRPUSDT perpetual candles; bundled recorded data",
    "symbols": ["XRPUSDT"],
    "speed": 5000.0,
    "first": "2021-11-15T00:00:00+00:00",
    "last": "2021-11-21T20:00:00+00:00",
    "message": "a replay of recorded real market data, not live: XRPUSDT 2021-11-15 00:00 "
    "to 2021-11-21 20:00 UTC, at 5000x real time",
}


@pytest.fixture(scope="module")
def ops_servers() -> Any:
    """Five service ops ports with real-looking metrics (large counts), as `perpsignal up` has."""
    big = METRICS_TEXT.replace(" 40.0", " 1234567.0")
    servers = [OpsServer(ready=True, metrics=big) for _ in range(5)]
    yield servers
    for server in servers:
        server.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def gateway(
    module_kafka: KafkaSettings,
    module_database: str,
    tmp_path_factory: pytest.TempPathFactory,
    ops_servers: list[Any],
) -> AsyncIterator[Gateway]:
    """The gateway as the demo runs it: told what is replayed, five services to probe."""
    k = module_kafka
    names = ("ingestor", "scorer", "judge", "outcomes", "notifier")
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": k.kafka_bootstrap_servers,
        "KAFKA_TOPIC_PREFIX": k.kafka_topic_prefix,
        "KAFKA_TOPIC_PARTITIONS": str(k.kafka_topic_partitions),
        "DATABASE_URL": module_database,
        "PERPSIGNAL_DEMO": json.dumps(DEMO),
        "GATEWAY_SERVICE_URLS": ",".join(
            f"{n}={srv.url}" for n, srv in zip(names, ops_servers, strict=True)
        ),
    }
    gw = Gateway(env, tmp_path_factory.mktemp("gateway"))
    await gw.start()
    try:
        yield gw
    finally:
        gw.kill()


async def binance_goes_down(kafka: KafkaSettings) -> None:
    """Run the ingestor's source loop against a vendor that refuses connections."""
    producer = EventProducer(kafka, service="ingestor")
    await producer.start()
    try:

        async def poll() -> list[Any]:
            raise httpx.ConnectError("[Errno 111] Connection refused")

        loop = SourceLoop(
            "binance", 0.05, poll, Publisher(producer), min_backoff_s=0.01, rng=random.Random(0)
        )
        stop = asyncio.Event()
        task = asyncio.create_task(loop.run(stop))
        await eventually(lambda: loop.state == "down", timeout=20, what="binance down")
        stop.set()
        await task
    finally:
        await producer.stop()


async def test_demo_and_outage_banners_name_the_replay_and_the_source(
    page, gateway, module_kafka
) -> None:
    await binance_goes_down(module_kafka)
    await page.goto(gateway.url + "/")
    await enter_key(page)

    demo = page.locator("#banners [data-banner=demo]")
    await demo.wait_for(state="visible", timeout=20_000)
    text = await demo.inner_text()
    assert "replay of recorded real market data" in text and "5000x" in text

    outage = page.locator("#banners [data-banner=outage]")
    await outage.wait_for(state="visible", timeout=20_000)
    text = await outage.inner_text()
    assert "binance is down" in text
    assert "since" in text and "UTC" in text
    assert "Connection refused" in text

    # the banners stay on every page, e.g. Health, which also lists the source
    await page.click("a[data-page=health]")
    await page.locator("[data-source=binance]").wait_for(state="visible", timeout=20_000)
    assert await outage.is_visible()
    # every service card shows its figures whole: nothing cut off or scrolled out of sight
    await page.locator("#platform-services .svc-card").nth(4).wait_for(state="visible")
    hidden = await page.evaluate(
        """() => [...document.querySelectorAll('#platform-services .svc-card')].flatMap((card) =>
            [...card.querySelectorAll('.table-wrap')]
              .filter((w) => w.scrollWidth > w.clientWidth + 1)
              .map(() => card.dataset.service))"""
    )
    assert hidden == []
    assert "1,234,569" in await page.locator("#platform-services").inner_text()
    await screenshot(page, "banners-demo-and-outage")
    assert page.errors == []
