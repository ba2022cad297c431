"""Symbol forms the gateway accepts, and garbage it must not silently map to a real symbol."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from perpsignal_gateway.symbols import normalize_symbol


@pytest.mark.parametrize(
    ("raw", "want"),
    [("BTC", "BTCUSDT"), ("btc", "BTCUSDT"), ("BTCUSDT", "BTCUSDT"), ("BTC-USDT", "BTCUSDT"),
     ("btc/usdt", "BTCUSDT"), (" eth ", "ETHUSDT")],
)  # fmt: skip
def test_accepted_forms(raw: str, want: str) -> None:
    assert normalize_symbol(raw) == want


@pytest.mark.parametrize("raw", ["BTC$", "BTC USDT", "<script>", "../../etc/passwd", "B-T-C"])
def test_garbage_is_not_turned_into_a_real_symbol(raw: str) -> None:
    assert normalize_symbol(raw) not in {"BTCUSDT", "SCRIPTUSDT", "ETCPASSWDUSDT"}
    assert normalize_symbol(raw) == raw.strip().upper()


HOSTILE = ["BTC\x00", "BTC\u202eUSDT", "<script>", "../../etc", "BTC USDT", "BTC\nUSDT"]


@pytest.mark.parametrize("raw", HOSTILE, ids=["nul", "bidi", "markup", "dots", "space", "nl"])
async def test_every_surface_refuses_what_the_symbol_path_refuses(make_client, producer, raw):
    """GET /signals/{symbol} answers 422; the bodies and /invoke must not look it up and 404."""
    from tests.unit.gateway import builders as b

    app, client = await make_client()
    app.state.model.apply(b.signal("ETHUSDT"))
    if "/" not in raw:  # a URL path cannot carry a slash as a symbol at all
        path = await client.get(f"/signals/{quote(raw, safe='')}")
        assert path.status_code == 422 and path.json()["error"]["details"][0]["field"] == "symbol"
    calls = [
        ("/gpt/signal", {"symbol": raw}),
        ("/gpt/market", {"symbol": raw}),
        ("/judge/validate", {"symbol": raw, "direction": "LONG"}),
        *[
            ("/invoke", {"operation": op, "symbol": raw})
            for op in ("get_signal", "get_market", "get_smc", "get_liquidations")
        ],
        ("/invoke", {"operation": "validate_signal", "symbol": raw, "direction": "LONG"}),
    ]
    for url, body in calls:
        r = await client.post(url, json=body)
        assert r.status_code == 422, (url, body, r.status_code, r.text)
        assert [d["field"] for d in r.json()["error"]["details"]] == ["symbol"], (url, r.text)
    assert producer.events == []  # nothing tracked or judged
    # the forms a caller means are still read, on the cached fast path and the routed one
    for sym in ("eth", " ETH ", "ETH/USDT", "eth-usdt"):
        for debug in (False, True):
            rpc = {"operation": "get_signal", "symbol": sym, **({"debug": True} if debug else {})}
            r = await client.post("/invoke", json=rpc)
            assert r.status_code == 200 and r.json()["result"]["symbol"] == "ETHUSDT", (sym, r.text)
        r = await client.post("/gpt/signal", json={"symbol": sym})
        assert r.status_code == 200 and r.json()["symbol"] == "ETHUSDT", (sym, r.text)
