"""Gateway app fixtures: the app without Kafka, a recording producer, an HTTP client."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from perpsignal_common.events.base import Event
from perpsignal_gateway.main import create_app
from perpsignal_gateway.readmodel import ReadModel
from perpsignal_gateway.settings import GatewaySettings
from tests.recorded import recorded_data_dir

_DATA = recorded_data_dir()
API_DIR = (_DATA or Path("/nonexistent")) / "api"


class RecordingProducer:
    """Records published events; `on_publish` lets a test play the other side of the bus."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.on_publish: Callable[[Event], Awaitable[None]] | None = None

    async def publish(self, event: Event, *, topic: str | None = None, wait: bool = False) -> None:
        self.events.append(event)
        if self.on_publish is not None:
            await self.on_publish(event)


def settings(**overrides: Any) -> GatewaySettings:
    base: dict[str, Any] = {
        "gateway_enable_database": False,
        "gateway_on_demand_wait_s": 0.3,
        "gateway_judge_timeout_s": 0.5,
        "gateway_rate_limit": "1000/second",
        "gateway_public_url": "https://perpsignal.example.com",
    }
    base.update(overrides)
    return GatewaySettings(**base)


def recorded(relative: str) -> Any:
    path = API_DIR / relative
    if not path.exists():
        pytest.skip(f"recorded body {relative} not present")
    return json.loads(path.read_text())


@pytest.fixture
def producer() -> RecordingProducer:
    return RecordingProducer()


@pytest.fixture
def listed() -> set[str]:
    return {"BTCUSDT", "ETHUSDT", "SOLUSDT"}


AppFactory = Callable[..., Awaitable[tuple[FastAPI, httpx.AsyncClient]]]


@pytest.fixture
async def make_client(producer: RecordingProducer, listed: set[str]) -> AsyncIterator[AppFactory]:
    """Return a factory: `await make_client(**settings_overrides)` → (app, client)."""
    stack: list[Any] = []

    async def factory(
        *, vendor_env: dict[str, str] | None = None, vendor_http: Any = None, **overrides: Any
    ) -> tuple[FastAPI, httpx.AsyncClient]:
        async def listed_symbols() -> set[str]:
            return listed

        app = create_app(
            settings(**overrides),
            vendor_env=vendor_env or {},
            vendor_http=vendor_http,
            listed_symbols=listed_symbols,
            producer=producer,
            connect_kafka=False,
        )
        lifespan = app.router.lifespan_context(app)
        await lifespan.__aenter__()
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://localhost"
        )
        stack.append((lifespan, client))
        return app, client

    yield factory
    for lifespan, client in reversed(stack):
        await client.aclose()
        await lifespan.__aexit__(None, None, None)


def model_of(app: FastAPI) -> ReadModel:
    return app.state.model  # type: ignore[no-any-return]
