"""Browser fixtures: the gateway as its own process on the embedded broker and PostgreSQL, a
producer playing the judge, and Debian's Chromium driven by Playwright (never downloaded).

Screenshots go to `test-artifacts/screenshots/` (gitignored) for review.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from perpsignal_common.embedded import free_port
from perpsignal_common.kafka.producer import EventProducer
from perpsignal_common.settings import KafkaSettings
from tests.helpers import REPO, ServiceProcess, eventually

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = REPO / "test-artifacts" / "screenshots"
API_KEY = "browser-test-key"


class Gateway:
    """One gateway process on a fixed port, so it can be stopped and started again."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.port = free_port()
        self.env = {
            **env,
            "GATEWAY_HOST": "127.0.0.1",
            "GATEWAY_PORT": str(self.port),
            "GATEWAY_API_KEYS": API_KEY,
            "GATEWAY_RATE_LIMIT": "100000/minute",
            "GATEWAY_PUBLIC_RATE_LIMIT": "100000/minute",  # every page loads ~15 assets
            "GATEWAY_ON_DEMAND_WAIT_S": "1",
            "LOG_LEVEL": "INFO",
        }
        self.log_dir = log_dir
        self.proc: ServiceProcess | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, headers={"X-API-Key": API_KEY}, timeout=5)

    async def start(self) -> None:
        self.proc = ServiceProcess("gateway", self.env, self.log_dir).start()

        async def ready() -> bool:
            assert self.proc is not None and self.proc.proc is not None
            if self.proc.proc.poll() is not None:
                raise AssertionError("gateway exited:\n" + self.proc.logs()[-3000:])
            try:
                async with httpx.AsyncClient(timeout=1) as c:
                    return (await c.get(f"{self.url}/readyz")).status_code == 200
            except httpx.HTTPError:
                return False

        await eventually(ready, timeout=30, interval=0.1, what="gateway /readyz")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate(timeout=20)

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()


def _require_browser() -> None:
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    pytest.importorskip("playwright.async_api", reason="playwright is not installed")


@pytest.fixture(scope="module")
def module_kafka(kafka_bootstrap: str) -> KafkaSettings:
    """Kafka settings with a topic prefix of this module's own (one gateway serves its tests)."""
    _require_browser()
    return KafkaSettings(
        kafka_bootstrap_servers=kafka_bootstrap,
        kafka_topic_prefix=f"b{uuid.uuid4().hex[:10]}.",
        kafka_topic_partitions=3,
        kafka_session_timeout_ms=2000,
        kafka_heartbeat_interval_ms=500,
        kafka_fetch_max_wait_ms=25,
        kafka_linger_ms=1,
    )


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def module_database(pg_server: Any) -> AsyncIterator[str]:
    """A fresh, migrated database for this module."""
    from perpsignal_common.db.migrate import upgrade

    name = f"b_{uuid.uuid4().hex[:12]}"
    await pg_server.create(name)
    url = pg_server.url_for(name)
    await asyncio.to_thread(upgrade, url)
    try:
        yield url
    finally:
        await pg_server.drop(name)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def gateway(
    module_kafka: KafkaSettings, module_database: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Gateway]:
    """One gateway process for the module (starting one costs seconds on a loaded machine)."""
    k = module_kafka
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": k.kafka_bootstrap_servers,
        "KAFKA_TOPIC_PREFIX": k.kafka_topic_prefix,
        "KAFKA_TOPIC_PARTITIONS": str(k.kafka_topic_partitions),
        "KAFKA_SESSION_TIMEOUT_MS": "2000",
        "KAFKA_HEARTBEAT_INTERVAL_MS": "500",
        "KAFKA_FETCH_MAX_WAIT_MS": "25",
        "KAFKA_LINGER_MS": "1",
        "DATABASE_URL": module_database,
    }
    gw = Gateway(env, tmp_path_factory.mktemp("gateway"))
    await gw.start()
    try:
        yield gw
    finally:
        gw.kill()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def producer(module_kafka: KafkaSettings, gateway: Gateway) -> AsyncIterator[Any]:
    """Publishes events as the judge, scorer and ingestor would (after the gateway made topics)."""
    p = EventProducer(module_kafka, service="browser-test")
    await p.start()
    try:
        yield p
    finally:
        await p.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Any]:
    """Headless Debian Chromium, one per module."""
    _require_browser()
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            await b.close()


@pytest_asyncio.fixture(loop_scope="module")
async def page(browser: Any, gateway: Gateway) -> AsyncIterator[Any]:
    """A fresh desktop-sized browser context (empty localStorage); page errors in `page.errors`."""
    context = await browser.new_context(viewport={"width": 1366, "height": 900})
    pg = await context.new_page()
    pg.errors = []
    pg.on("pageerror", lambda exc: pg.errors.append(str(exc)))
    pg.set_default_timeout(10_000)
    try:
        yield pg
    finally:
        await context.close()


async def screenshot(page: Any, name: str, *, full_page: bool = True) -> Path:
    """Save a screenshot for review (test-artifacts/screenshots/<name>.png)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.evaluate("window.scrollTo(0, 0)")  # the sticky header then sits on top
    await page.screenshot(path=str(path), full_page=full_page)
    return path


async def enter_key(page: Any) -> None:
    """Type the API key into the dashboard's key form, as a user does once."""
    await page.locator("#key-panel").wait_for(state="visible")
    await page.fill("#api-key", API_KEY)
    await page.press("#api-key", "Enter")
