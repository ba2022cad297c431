"""Analytics endpoints on a real, migrated PostgreSQL; a database that is down answers 503."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from perpsignal_common.settings import DatabaseSettings
from perpsignal_gateway.main import create_app
from perpsignal_gateway.settings import GatewaySettings
from tests.unit.gateway.conftest import RecordingProducer

pytestmark = pytest.mark.db


@asynccontextmanager
async def gateway(url: str) -> AsyncIterator[httpx.AsyncClient]:
    cfg = GatewaySettings(db=DatabaseSettings(database_url=SecretStr(url)))
    app = create_app(cfg, vendor_env={}, producer=RecordingProducer(), connect_kafka=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            yield client


PATHS: list[tuple[str, dict[str, Any]]] = [
    ("/analytics/verdict-performance", {"horizon": "4h"}),
    ("/analytics/verdict-compare", {}),
    ("/analytics/outcomes-history", {"symbol": "btc", "limit": 5}),
    ("/analytics/tracking-stats", {}),
    ("/analytics/calibration", {"horizon": "1h", "bucketSize": 20}),
]


async def test_analytics_answer_in_camel_case_on_an_empty_database(database_url) -> None:
    async with gateway(database_url) as client:
        bodies = {}
        for path, params in PATHS:
            r = await client.get(path, params=params)
            assert r.status_code == 200, (path, r.text)
            bodies[path] = r.json()
        stats = bodies["/analytics/tracking-stats"]
        assert stats["pending"] == 0 and "pendingOverdue" in stats
        history = bodies["/analytics/outcomes-history"]
        assert history == {"items": [], "total": 0, "limit": 5, "offset": 0}
        calib = bodies["/analytics/calibration"]
        assert calib["horizon"] == "1h" and calib["bucketSize"] == 20
        invoked = await client.post("/invoke", json={"operation": "tracking_stats"})
        assert invoked.json()["result"] == stats


async def test_a_symbol_postgresql_cannot_store_is_a_422_not_a_500(database_url) -> None:
    """Found by schemathesis: a NUL byte in the history filter reached PostgreSQL (500)."""
    async with gateway(database_url) as client:
        for bad in ("BTC\x00USDT", "BTC USDT", "BTC\u200dUSDT"):
            r = await client.get("/analytics/outcomes-history", params={"symbol": bad})
            assert r.status_code == 422, (bad, r.text)
            assert "symbol" in r.text
        # letters of any script are the contract's symbols (币安人生USDT): stored and looked up
        for good in ("BTC-USDT", "ÃºBTC", "币安人生USDT"):
            ok = await client.get("/analytics/outcomes-history", params={"symbol": good})
            assert ok.status_code == 200, (good, ok.text)
            assert ok.json()["total"] == 0


# instants at the ends of the calendar: their UTC equivalent (or the next midnight) overflows
EDGE_TIMES = ("0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "9999-12-31T23:59:59Z")


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/analytics/verdict-performance", "since"),
        ("/analytics/outcomes-history", "start"),
        ("/analytics/outcomes-history", "end"),
        ("/analytics/signal-research", "since"),
    ],
)
async def test_a_date_time_at_the_ends_of_the_calendar_is_a_422_not_a_500(
    database_url, path, field
) -> None:
    async with gateway(database_url) as client:
        for when in EDGE_TIMES:
            r = await client.get(path, params={field: when})
            assert r.status_code == 422, (when, r.text)
            assert r.json()["error"]["details"][0]["field"] == field
        for when in ("0001-01-02T00:00:00Z", "9999-12-30T00:00:00Z", "2026-01-01T00:00:00"):
            ok = await client.get(path, params={field: when})
            assert ok.status_code == 200, (when, ok.text)


async def test_a_date_time_without_an_offset_is_echoed_as_utc(database_url) -> None:
    """The documents say `format: date-time` (RFC 3339), which requires an offset."""
    async with gateway(database_url) as client:
        for path in ("/analytics/verdict-performance", "/analytics/signal-research"):
            r = await client.get(path, params={"since": "2026-01-01T00:00:00"})
            assert r.status_code == 200, r.text
            assert r.json()["since"] == "2026-01-01T00:00:00Z", path


async def test_database_down_is_503_with_a_clear_code() -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with gateway(f"postgresql://postgres@127.0.0.1:{port}/nowhere") as client:
        r = await client.get("/analytics/tracking-stats")
        assert r.status_code == 503
        assert r.json()["error"]["code"] == "database_unavailable"
        assert str(port) not in r.text  # no connection details leak
