"""API keys, per-key rate limits, body size limits, CORS and error hygiene."""

from __future__ import annotations

import gzip
import json
import logging
import zlib

import pytest

from tests.unit.gateway import builders as b
from tests.unit.gateway.conftest import model_of

KEYS = "key-alpha,key-beta"


async def test_requests_without_a_valid_key_are_401(make_client) -> None:
    app, client = await make_client(gateway_api_keys=KEYS)
    model_of(app).apply(b.signal("BTCUSDT"))
    missing = await client.get("/signals/BTC")
    wrong = await client.get("/signals/BTC", headers={"X-API-Key": "key-alph"})
    assert missing.status_code == wrong.status_code == 401
    assert missing.json()["error"]["code"] == "unauthorized"
    for key in ("key-alpha", "key-beta"):
        ok = await client.get("/signals/BTC", headers={"X-API-Key": key})
        assert ok.status_code == 200
    invoke = await client.post("/invoke", json={"operation": "get_signal", "symbol": "BTC"})
    assert invoke.status_code == 401


async def test_health_and_docs_stay_public(make_client) -> None:
    _, client = await make_client(gateway_api_keys=KEYS)
    for path in ("/healthz", "/readyz", "/metrics", "/docs", "/openapi.json", "/openapi-gpt.json"):
        assert (await client.get(path)).status_code == 200, path


async def test_public_paths_are_configurable(make_client) -> None:
    _, client = await make_client(gateway_api_keys=KEYS, gateway_public_paths="/healthz")
    assert (await client.get("/healthz")).status_code == 200
    assert (await client.get("/openapi.json")).status_code == 401


async def test_rate_limit_is_per_key_with_retry_after(make_client) -> None:
    _, client = await make_client(gateway_api_keys=KEYS, gateway_rate_limit="3/minute")
    alpha = {"X-API-Key": "key-alpha"}
    codes = [(await client.get("/ping", headers=alpha)).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    limited = await client.get("/ping", headers=alpha)
    assert limited.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    # another key has its own budget
    assert (await client.get("/ping", headers={"X-API-Key": "key-beta"})).status_code == 200


async def test_body_larger_than_the_limit_is_413(make_client) -> None:
    _, client = await make_client(gateway_max_body_bytes=256)
    r = await client.post("/invoke", json={"operation": "get_signal", "symbol": "B" * 400})
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "payload_too_large"
    small = await client.post("/invoke", json={"operation": "list_signals"})
    assert small.status_code == 200


@pytest.mark.parametrize("coding", ["gzip", "deflate", "br"])
async def test_a_compressed_body_is_refused_as_such(make_client, coding) -> None:
    """The app read gzip bytes as a body that 'is not JSON' (400); a client must learn why."""
    _, client = await make_client()
    raw = json.dumps({"operation": "list_signals"}).encode()
    packed = gzip.compress(raw) if coding == "gzip" else zlib.compress(raw)
    headers = {"Content-Type": "application/json", "Content-Encoding": coding}
    r = await client.post("/invoke", content=packed, headers=headers)
    assert r.status_code == 415, r.text
    assert r.json()["error"]["code"] == "unsupported_media_type"
    assert "Content-Encoding" in r.json()["error"]["message"]
    identity = {"Content-Type": "application/json", "Content-Encoding": "identity"}
    assert (await client.post("/invoke", content=raw, headers=identity)).status_code == 200
    doc = (await client.get("/openapi.json")).json()  # declared where bodies are read
    assert "415" in doc["paths"]["/invoke"]["post"]["responses"]
    assert "415" not in doc["paths"]["/signals"]["get"]["responses"]


async def test_cors_preflight_answers_configured_origins_only(make_client) -> None:
    _, client = await make_client(
        gateway_api_keys=KEYS, gateway_cors_origins="https://dash.example.com"
    )
    headers = {
        "Origin": "https://dash.example.com",
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "X-API-Key",
    }
    ok = await client.options("/signals", headers=headers)
    assert ok.status_code == 200
    assert ok.headers["access-control-allow-origin"] == "https://dash.example.com"
    evil = await client.options("/signals", headers={**headers, "Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in evil.headers
    # refused in the API's one error shape, naming what was not allowed
    assert evil.status_code == 400 and evil.headers["content-type"] == "application/json"
    assert evil.json()["error"]["code"] == "cors_refused"
    assert "origin" in evil.json()["error"]["message"]
    odd = await client.options(
        "/signals", headers={**headers, "Access-Control-Request-Method": "PUT"}
    )
    assert odd.json()["error"]["code"] == "cors_refused" and "method" in odd.text


async def test_a_cross_origin_page_can_read_when_to_retry(make_client) -> None:
    """Without Access-Control-Expose-Headers a browser hides Retry-After from the page."""
    _, client = await make_client(
        gateway_api_keys=KEYS, gateway_cors_origins="https://dash.example.com"
    )
    headers = {"Origin": "https://dash.example.com", "X-API-Key": "key-alpha"}
    tracked = await client.get("/signals/SOL", headers=headers)  # listed, not yet tracked
    assert tracked.status_code == 202 and tracked.headers["retry-after"].isdigit()
    assert tracked.headers["access-control-allow-origin"] == "https://dash.example.com"
    exposed = tracked.headers.get("access-control-expose-headers", "")
    assert "retry-after" in {h.strip().lower() for h in exposed.split(",")}


async def test_unexpected_errors_leak_no_trace_or_secret(make_client, caplog) -> None:
    app, client = await make_client(vendor_env={"COINGLASS_API_KEY": "cg-very-secret"})

    def boom(_q: object) -> object:
        raise RuntimeError("db password is hunter2 at /srv/app.py line 12")

    app.state.platform.list_signals = boom
    app.state.registry.operations["list_signals"].handler = _async(boom)
    with caplog.at_level(logging.DEBUG):
        r = await client.get("/signals")
        r2 = await client.post("/invoke", json={"operation": "list_signals"})
    for resp in (r, r2):
        assert resp.status_code == 500
        assert resp.json() == {
            "error": {"code": "internal_error", "message": "internal error", "details": None}
        }
    logged = "\n".join(rec.getMessage() + str(rec.__dict__) for rec in caplog.records)
    assert "Traceback" not in logged and "hunter2" not in logged
    assert "cg-very-secret" not in logged


def _async(fn):  # type: ignore[no-untyped-def]
    async def wrapper(q: object) -> object:
        return fn(q)

    return wrapper


@pytest.mark.parametrize("path", ["/signals/%00", "/signals/" + "X" * 31])
async def test_odd_symbols_are_client_errors_not_500(make_client, path) -> None:
    _, client = await make_client()
    r = await client.get(path)
    assert 400 <= r.status_code < 500
