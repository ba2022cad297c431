"""The dashboard as the gateway serves it: shell, assets, no external loads, keyed data route."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from perpsignal_common.events.signals import Ohlc
from perpsignal_gateway.main import create_app
from perpsignal_gateway.settings import GatewaySettings
from tests.unit.gateway import builders as b

KEY = "dash-test-key"
# static `import ... from "x"`, `export ... from "x"`, dynamic `import("x")` and plain `import "x"`
IMPORT = re.compile(r"""(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)["']([^"']+)["']""")
ASSET = re.compile(r"""(?:src|href)=["']([^"'#][^"']*)["']""")


class NullProducer:
    """The dashboard publishes nothing; the app only needs something to hold."""

    async def publish(self, event: Any, *, topic: str | None = None, wait: bool = False) -> None:
        raise AssertionError(f"unexpected publish of {event!r}")


def settings(**overrides: Any) -> GatewaySettings:
    return GatewaySettings(
        gateway_enable_database=False, gateway_rate_limit="1000/second", **overrides
    )


@pytest.fixture
async def client_for() -> Any:
    opened: list[tuple[Any, httpx.AsyncClient]] = []

    async def factory(**overrides: Any) -> tuple[FastAPI, httpx.AsyncClient]:
        async def listed() -> set[str]:
            return {"BTCUSDT"}

        app = create_app(
            settings(**overrides),
            vendor_env={},
            listed_symbols=listed,
            producer=NullProducer(),
            connect_kafka=False,
        )
        lifespan = app.router.lifespan_context(app)
        await lifespan.__aenter__()
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://localhost"
        )
        opened.append((lifespan, client))
        return app, client

    yield factory
    for lifespan, client in reversed(opened):
        await client.aclose()
        await lifespan.__aexit__(None, None, None)


def with_candles(n: int, **kw: Any):
    base = b.signal(**kw)
    candles = tuple(
        Ohlc(
            open_time=b.T0 - timedelta(hours=n - i),
            open=100.0 + i,
            high=102.0 + i,
            low=99.0 + i,
            close=101.0 + i,
            volume=10.0 * i,
        )
        for i in range(n)
    )
    return base.model_copy(update={"candles": candles})


async def crawl(client: httpx.AsyncClient) -> dict[str, httpx.Response]:
    """Fetch the shell and, transitively, every asset and ES module it can load."""
    seen: dict[str, httpx.Response] = {}
    todo = ["/"]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        r = await client.get(path)
        seen[path] = r
        if r.status_code != 200:
            continue
        text = r.text
        refs = ASSET.findall(text) if path == "/" else IMPORT.findall(text)
        for ref in refs:
            if ref.startswith(("http:", "https:", "//")):
                seen[ref] = r  # recorded so the no-external-load test can name it
                continue
            base = path.rsplit("/", 1)[0] + "/"
            todo.append(str(httpx.URL("http://localhost" + base).join(ref).path))
    return seen


async def test_shell_and_every_asset_it_loads_are_served(client_for) -> None:
    _, client = await client_for()
    seen = await crawl(client)
    root = seen["/"]
    assert root.status_code == 200
    assert root.headers["content-type"].startswith("text/html")
    assert "<h1" in root.text and 'lang="en"' in root.text
    assert {p: r.status_code for p, r in seen.items() if r.status_code != 200} == {}
    modules = [p for p in seen if p.endswith((".js", ".mjs"))]
    # the shell, every page module and the chart library (loaded by the symbol page)
    for name in ("app.js", "live.js", "symbol.js", "accuracy.js", "discovery.js", "health.js"):
        assert any(p.endswith("/" + name) for p in modules), name
    assert any("lightweight-charts" in p for p in modules)
    for p in modules:
        assert "javascript" in seen[p].headers["content-type"], p
    css = [p for p in seen if p.endswith(".css")]
    assert css and all(seen[p].headers["content-type"].startswith("text/css") for p in css)


async def test_nothing_is_loaded_from_another_origin(client_for) -> None:
    _, client = await client_for()
    seen = await crawl(client)
    external = [p for p in seen if p.startswith(("http:", "https:", "//"))]
    assert external == []
    for path, r in seen.items():
        if path.endswith(".css"):
            assert not re.search(r"url\(\s*['\"]?(https?:)?//", r.text), path
            assert "@import" not in r.text, path


async def test_page_and_assets_need_no_key_but_data_does(client_for) -> None:
    app, client = await client_for(gateway_api_keys=KEY)
    app.state.model.apply(with_candles(3))
    assert (await client.get("/")).status_code == 200
    assert (await client.get("/static/js/app.js")).status_code == 200
    assert (await client.get("/signals")).status_code == 401
    assert (await client.get("/ui/candles/BTC")).status_code == 401
    ok = await client.get("/ui/candles/BTC", headers={"X-API-Key": KEY})
    assert ok.status_code == 200


async def test_candles_of_the_latest_signal_oldest_first(client_for) -> None:
    app, client = await client_for()
    model = app.state.model
    model.apply(with_candles(3, score=60.0, at=b.T0))
    newer = with_candles(4, score=70.0, at=b.T0 + timedelta(hours=1))
    model.apply(newer)
    r = await client.get("/ui/candles/btc")
    assert r.status_code == 200
    body = r.json()
    assert body["symbol"] == "BTCUSDT" and body["timeframe"] == "1h"
    assert body["signalId"] == newer.signal_id
    t0 = int(datetime(2026, 1, 5, 12, tzinfo=UTC).timestamp())
    assert [c["time"] for c in body["candles"]] == [t0 - 4 * 3600 + i * 3600 for i in range(4)]
    assert body["candles"][0] == {
        "time": t0 - 4 * 3600,
        "open": 100.0,
        "high": 102.0,
        "low": 99.0,
        "close": 101.0,
        "volume": 0.0,
    }


async def test_candles_of_a_symbol_without_usdt_suffix_keep_its_name(client_for) -> None:
    app, client = await client_for()
    app.state.model.apply(with_candles(3, symbol="ETHBTC", at=b.T0))
    r = await client.get("/ui/candles/ethbtc")  # not rewritten to ETHBTCUSDT
    assert r.status_code == 200 and r.json()["symbol"] == "ETHBTC"


async def test_unknown_symbol_candles_is_404_in_the_gateway_error_shape(client_for) -> None:
    _, client = await client_for()
    r = await client.get("/ui/candles/NOPE")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "no_signal"


async def test_public_api_contract_is_unchanged(client_for) -> None:
    _, client = await client_for()
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert "/" not in paths
    assert not any(p.startswith(("/ui", "/static")) for p in paths)
    assert "/signals/{symbol}" in paths
