"""Vendor pass-through never leaves its catalogued endpoint, checked at a real HTTP server."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import httpx
import pytest
import respx

from perpsignal_connectors.catalog import all_endpoints


@pytest.fixture
async def echo() -> AsyncIterator[tuple[str, list[str]]]:
    """A local HTTP server recording the raw request target of everything it receives."""
    seen: list[str] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        seen.append(head.split(b" ", 2)[1].decode())
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n")
        writer.write(b"content-length: 2\r\nconnection: close\r\n\r\n{}")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/api/v3", seen
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize(
    "bad",
    ["..", ".", "...", "../tickers", "a/b", "%2e%2e", "..%2F", "bitcoin?x=1", "x\\..", "", " "],
)
async def test_a_path_argument_cannot_walk_out_of_its_endpoint(make_client, echo, bad) -> None:
    base, seen = echo
    _, client = await make_client(vendor_env={"COINGECKO_BASE_URL": base})
    r = await client.post(
        "/invoke", json={"operation": "coingecko.coin_tickers", "args": {"id": bad}}
    )
    assert r.status_code == 422, r.text
    assert r.json()["error"]["details"][0]["field"] == "id"
    assert seen == []  # the vendor was never called


async def test_valid_path_arguments_reach_exactly_the_catalogued_path(make_client, echo) -> None:
    base, seen = echo
    _, client = await make_client(vendor_env={"COINGECKO_BASE_URL": base})
    for coin in ("bitcoin", "usd-coin", "wrapped_bitcoin", "a.b"):
        r = await client.post(
            "/invoke", json={"operation": "coingecko.coin_tickers", "args": {"id": coin}}
        )
        assert r.status_code == 200, r.text
    assert seen == [
        "/api/v3/coins/bitcoin/tickers",
        "/api/v3/coins/usd-coin/tickers",
        "/api/v3/coins/wrapped_bitcoin/tickers",
        "/api/v3/coins/a.b/tickers",
    ]
    # reserved characters that are allowed are percent-encoded, never interpreted
    r = await client.post(
        "/invoke", json={"operation": "coingecko.coin_tickers", "args": {"id": "$btc #1"}}
    )
    assert r.status_code == 200
    assert seen[-1] == "/api/v3/coins/%24btc%20%231/tickers"


async def test_every_path_parameter_publishes_its_pattern(make_client) -> None:
    _, client = await make_client()
    ops = (await client.get("/invoke/operations", params={"kind": "vendor"})).json()
    by_name = {o["name"]: o for o in ops["operations"]}
    checked = 0
    for endpoint in all_endpoints():
        if endpoint.operation not in by_name:  # vendor account writes: off by default
            continue
        for p in endpoint.params:
            if p.location == "path" and not p.enum:
                pattern = by_name[endpoint.operation]["parameters"]["properties"][p.name]["pattern"]
                assert not re.match(pattern, "..") and not re.match(pattern, "a/b")
                checked += 1
    assert checked >= 50


@respx.mock
async def test_a_vendor_echoing_our_key_does_not_hand_it_to_the_caller(make_client) -> None:
    respx.get(url__regex=r"https://open-api-v4\.coinglass\.com/.*").mock(
        return_value=httpx.Response(401, json={"msg": "invalid key cg-operator-key-77"})
    )
    _, client = await make_client(vendor_env={"COINGLASS_API_KEY": "cg-operator-key-77"})
    r = await client.post("/invoke", json={"operation": "coinglass.futures_supported_coins"})
    assert r.status_code == 502, r.text
    assert "cg-operator-key-77" not in r.text and "invalid key ***" in r.text


@pytest.mark.parametrize(
    ("field", "literal"),
    [
        ("min_usd", "NaN"),  # JSON has no NaN or Infinity, but the app's parser reads them
        ("min_usd", "Infinity"),
        ("min_usd", "-Infinity"),
        ("min_usd", "1e400"),
        ("per_page", "9" * 20),  # past 64 bits
        ("page", "-" + "9" * 400),
    ],
)
async def test_a_number_no_vendor_can_mean_is_refused_before_the_vendor(
    make_client, echo, field, literal
) -> None:
    """The vendor got "nan", "inf" or hundreds of digits, on the operator's budget."""
    base, seen = echo
    _, client = await make_client(
        vendor_env={"COINGLASS_BASE_URL": base, "COINGLASS_API_KEY": "cg-key-1234"}
    )
    body = '{"operation": "coinglass.exchange_chain_tx_list", "' + field + '": ' + literal + "}"
    headers = {"Content-Type": "application/json"}
    r = await client.post("/invoke", content=body, headers=headers)
    assert r.status_code == 422, r.text
    assert [d["field"] for d in r.json()["error"]["details"]] == [field]
    ops = await client.get("/invoke/operations", params={"prefix": "coinglass.exchange_chain"})
    (op,) = [o for o in ops.json()["operations"] if o["name"] == "coinglass.exchange_chain_tx_list"]
    assert op["parameters"]["properties"]["per_page"]["maximum"] == 2**63 - 1  # as published
    assert seen == []  # the vendor was never called, its budget not spent
    fine = '{"operation": "coinglass.exchange_chain_tx_list", "min_usd": 1000000.5}'
    assert (await client.post("/invoke", content=fine, headers=headers)).status_code == 200
    assert seen == ["/api/v3/api/exchange/chain/tx/list?min_usd=1000000.5"]


async def test_a_symbol_in_another_script_reaches_the_vendor_percent_encoded(make_client, echo):
    """币安人生USDT is a real Binance perpetual: the vendor gets its UTF-8, percent-encoded."""
    base, seen = echo
    _, client = await make_client(vendor_env={"BINANCE_FAPI_BASE_URL": base})
    r = await client.post(
        "/invoke",
        json={"operation": "binance.constituents", "args": {"symbol": "币安人生USDT"}},
    )
    assert r.status_code == 200, r.text
    assert seen == ["/api/v3/fapi/v1/constituents?symbol=%E5%B8%81%E5%AE%89%E4%BA%BA%E7%94%9FUSDT"]


async def test_a_path_argument_in_another_script_is_sent_percent_encoded(make_client, echo):
    """A coin named 币安人生 was refused (422) by the ASCII-only path pattern; its look-alike
    with a zero-width joiner must still be refused, before the vendor is called."""
    base, seen = echo
    _, client = await make_client(
        vendor_env={"LUNARCRUSH_BASE_URL": base, "LUNARCRUSH_API_KEY": "lc-key-1234"}
    )
    op = "lunarcrush.coins_meta_v1"
    r = await client.post("/invoke", json={"operation": op, "args": {"coin": "币安人生"}})
    assert r.status_code == 200, r.text
    assert seen == ["/api/v3/public/coins/%E5%B8%81%E5%AE%89%E4%BA%BA%E7%94%9F/meta/v1"]
    for bad in ("币安\u200d人生", "BTC\u0301", "\u2060BTC", "币安人生\ufe0f"):
        r = await client.post("/invoke", json={"operation": op, "args": {"coin": bad}})
        assert r.status_code == 422, (bad, r.text)
        assert "\\p{" not in r.text  # the 422 quotes the pattern the operation publishes
    assert len(seen) == 1
    ops = (await client.get("/invoke/operations", params={"prefix": op})).json()["operations"]
    pattern = next(o for o in ops if o["name"] == op)["parameters"]["properties"]["coin"]["pattern"]
    assert re.fullmatch(pattern, "币安人生") and not re.fullmatch(pattern, "币安\u200d人生")
