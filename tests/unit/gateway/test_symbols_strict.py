"""Symbol forms the gateway accepts, and garbage it must not silently map to a real symbol."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest

from perpsignal_gateway.symbols import normalize_symbol


@pytest.mark.parametrize(
    ("raw", "want"),
    [("BTC", "BTCUSDT"), ("btc", "BTCUSDT"), ("BTCUSDT", "BTCUSDT"), ("BTC-USDT", "BTCUSDT"),
     ("btc/usdt", "BTCUSDT"), (" eth ", "ETHUSDT"), ("币安人生", "币安人生USDT"),
     ("币安人生usdt", "币安人生USDT"), ("币安人生/USDT", "币安人生USDT"),
     # only a-z are upper-cased: the long s, sharp s and Greek letters stay what they are
     ("\u017fol", "\u017fOLUSDT"), ("\u00dftc", "\u00dfTCUSDT"),
     ("\u03b1\u03b2\u03b3usdt", "\u03b1\u03b2\u03b3USDT")],
)  # fmt: skip
def test_accepted_forms(raw: str, want: str) -> None:
    assert normalize_symbol(raw) == want


@pytest.mark.parametrize("raw", ["BTC$", "BTC USDT", "<script>", "../../etc/passwd", "B-T-C"])
def test_garbage_is_not_turned_into_a_real_symbol(raw: str) -> None:
    assert normalize_symbol(raw) not in {"BTCUSDT", "SCRIPTUSDT", "ETCPASSWDUSDT"}
    assert normalize_symbol(raw) == raw.strip().upper()


# what the event contract refuses: each looks like (or hides inside) another symbol
HOSTILE = {
    "nul": "BTC\x00",
    "bidi": "BTC\u202eUSDT",
    "markup": "<script>",
    "space": "BTC USDT",
    "nl": "BTC\nUSDT",
    "zwj": "币安\u200d人生USDT",
    "zwnj": "BTC\u200cUSDT",
    "combining": "BTC\u0301USDT",
    "variation-selector": "币安人生\ufe0fUSDT",
    "word-joiner": "\u2060BTCUSDT",
    "soft-hyphen": "BTC\u00adUSDT",
    "bom": "\ufeffBTCUSDT",
    "ideographic-space": "\u3000BTC",
    "bare-number": "1000",
    "punctuation-only": "-.:",
}


@pytest.mark.parametrize("raw", HOSTILE.values(), ids=HOSTILE.keys())
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


REAL = "币安人生USDT"  # a real Binance USD-M perpetual


async def test_a_symbol_in_another_script_is_served_on_every_surface(make_client, listed) -> None:
    """The scorer carries 币安人生USDT; every gateway input must name it (they answered 422)."""
    from tests.unit.gateway import builders as b

    listed.add(REAL)
    app, client = await make_client()
    signal = b.signal(REAL, price=0.05)  # the real scorer and judge, for this symbol
    assert signal.symbol == REAL
    model = app.state.model
    for event in (signal, b.funding(REAL), b.liquidation(REAL, notional=1234.0)):
        model.apply(event)
    for name in (REAL, "币安人生", "币安人生usdt"):
        path = quote(name, safe="")
        hot = await client.get(f"/signals/{path}")
        routed = await client.get(f"/signals/{path}", params={"debug": "true"})
        assert hot.status_code == routed.status_code == 200, (name, hot.text, routed.text)
        assert hot.json()["symbol"] == routed.json()["symbol"] == REAL
        assert hot.json()["signalId"] == signal.signal_id
        for route in ("smc", "market", "liquidations", "ui/candles"):
            r = await client.get(f"/{route}/{path}")
            assert r.status_code == 200 and r.json()["symbol"] == REAL, (route, r.text)
        for rpc in (
            {"operation": "get_signal", "symbol": name},  # the cached fast path
            {"operation": "get_signal", "args": {"symbol": f" {name} ", "debug": True}},
            {"operation": "get_market", "symbol": name},
        ):
            r = await client.post("/invoke", json=rpc)
            assert r.status_code == 200 and r.json()["result"]["symbol"] == REAL, (rpc, r.text)
        r = await client.post("/gpt/signal", json={"symbol": name})
        assert r.status_code == 200 and r.json()["symbol"] == REAL
    liquidations = (await client.get(f"/liquidations/{quote(REAL)}")).json()["orders"]
    assert [x["notionalUsd"] for x in liquidations] == [1234.0]


async def test_case_folding_never_turns_one_symbol_into_another(make_client) -> None:
    """'\u017fol'.upper() is 'SOL': the long s must not answer SOLUSDT's signal anywhere."""
    from tests.unit.gateway import builders as b

    app, client = await make_client()
    app.state.model.apply(b.signal("SOLUSDT"))
    for name in ("\u017fol", "\u017folusdt", "\u017fOLUSDT"):
        for params in ({}, {"debug": "true"}):
            r = await client.get(f"/signals/{quote(name)}", params=params)
            assert r.status_code == 404, (name, params, r.text)
            assert "SOLUSDT" not in r.text.replace("\u017fOLUSDT", "")
        r = await client.post("/invoke", json={"operation": "get_signal", "symbol": name})
        assert r.status_code == 404 and r.json()["error"]["details"]["symbol"].startswith("\u017f")
        assert (await client.get(f"/ui/candles/{quote(name)}")).status_code == 404
    assert (await client.get("/signals/sol")).json()["symbol"] == "SOLUSDT"  # ASCII still folds


@pytest.mark.parametrize("raw", HOSTILE.values(), ids=HOSTILE.keys())
async def test_the_dashboard_candles_route_refuses_what_the_symbol_path_refuses(
    make_client, raw
) -> None:
    _, client = await make_client()
    r = await client.get(f"/ui/candles/{quote(raw, safe='')}")
    assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "symbol", r.text


async def test_the_published_patterns_take_the_symbol_and_compile_everywhere(make_client):
    """The document's patterns, read as ECMAScript, Java or Go read them, take 币安人生USDT
    and refuse its look-alikes; what they allow the server takes; the in-process Python
    patterns decide exactly as the server's validator."""
    import re
    import shutil
    import subprocess

    from pydantic import TypeAdapter, ValidationError

    from perpsignal_gateway import symbols as s

    _, client = await make_client()
    doc = (await client.get("/openapi.json")).json()
    path_param = next(
        p for p in doc["paths"]["/signals/{symbol}"]["get"]["parameters"] if p["name"] == "symbol"
    )
    history = doc["paths"]["/analytics/outcomes-history"]["get"]["parameters"]
    query_param = next(p for p in history if p["name"] == "symbol")
    body = doc["components"]["schemas"]["SignalBody"]["properties"]["symbol"]
    published = {
        s.PathSymbol: path_param["schema"]["pattern"],
        s.QuerySymbol: next(x for x in query_param["schema"]["anyOf"] if "pattern" in x)["pattern"],
        s.BodySymbol: body["pattern"],
    }
    samples = [
        REAL,
        "BTC",
        "\u017fol",
        "BTC-USDT-SWAP",
        "BTC/USDT",
        " ETH ",
        "\u00b2",
        "\u216b",
        "1000",
    ]
    in_process = {
        s.PathSymbol: s.PY_PATH_SYMBOL_PATTERN,
        s.QuerySymbol: s.PY_QUERY_SYMBOL_PATTERN,
        s.BodySymbol: s.PY_SYMBOL_PATTERN,
    }
    for kind, pattern in published.items():
        # the document as every client engine reads it (`\\w` would be ASCII there)
        adapter, portable = TypeAdapter(kind), re.compile(pattern, re.ASCII)
        python = re.compile(in_process[kind])
        assert portable.fullmatch(REAL), pattern
        for raw in [*samples, *HOSTILE.values()]:
            try:
                adapter.validate_python(raw)
                valid = True
            except ValidationError:
                valid = False
            assert valid == bool(python.fullmatch(raw)), (in_process[kind], raw)
            # what the document allows the server takes (it takes more scripts than named)
            assert valid or not portable.fullmatch(raw), (pattern, raw)
        for raw in HOSTILE.values():
            assert not portable.fullmatch(raw), (pattern, raw)
    if shutil.which("node") is not None:
        script = (
            "for (const p of JSON.parse(process.argv[1])) { new RegExp(p); new RegExp(p, 'u'); }"
        )
        patterns = json.dumps(list(published.values()))
        subprocess.run(["node", "-e", script, patterns], check=True)  # noqa: ASYNC221


async def test_a_refused_symbol_names_the_pattern_the_document_publishes(make_client) -> None:
    """The 422 quoted the validator's \\p{L} form: not what /openapi.json gave the caller, and
    no pattern its Python or JavaScript regex engine compiles."""
    import re

    _, client = await make_client()
    doc = (await client.get("/openapi.json")).json()
    (param,) = doc["paths"]["/signals/{symbol}"]["get"]["parameters"][:1]
    published = param["schema"]["pattern"]
    for url, body in (
        (f"/signals/{quote(HOSTILE['zwj'])}", None),
        ("/gpt/signal", {"symbol": HOSTILE["zwj"]}),
        (f"/analytics/outcomes-history?symbol={quote(HOSTILE['zwj'])}", None),
    ):
        r = await (client.get(url) if body is None else client.post(url, json=body))
        assert r.status_code == 422, r.text
        message = r.json()["error"]["details"][0]["message"]
        assert "\\p{" not in message, message
        quoted = re.search(r"pattern '(.*)'", message)
        assert quoted is not None and re.compile(quoted[1]), message
    path_message = (await client.get(f"/signals/{quote(HOSTILE['zwj'])}")).json()
    assert published in path_message["error"]["details"][0]["message"]
