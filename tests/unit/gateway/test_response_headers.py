"""Security headers on every response, page CSPs that fit the pages, and the DNS-rebinding guard.

The CSP tests read the pages the way a browser would (every script, style and connection they
make) so a policy that is strict on paper but breaks the dashboard fails here, not in a user's
browser; `tests/browser` then runs the real pages under the real headers.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from starlette.responses import Response

from tests.unit.gateway import builders as b
from tests.unit.gateway.conftest import model_of, settings
from tests.unit.gateway.test_streams import open_gateway

KEY = "key-alpha"
AUTH = {"X-API-Key": KEY}
STATIC = Path(__file__).resolve().parents[3] / "services/gateway/src/perpsignal_gateway/static"
LWC = STATIC / "vendor/lightweight-charts/lightweight-charts.standalone.production.mjs"
API_CSP = "default-src 'none'; frame-ancestors 'none'"
COMMON = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
}


def directives(csp: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for part in csp.split(";"):
        words = part.split()
        if words:
            assert words[0] not in out, f"{words[0]} twice in {csp}"
            out[words[0]] = words[1:]
    return out


def assert_common(r: httpx.Response, what: str) -> None:
    for name, value in COMMON.items():
        assert r.headers.get_list(name) == [value], (what, name, r.headers.get_list(name))
    csp = r.headers.get_list("content-security-policy")
    assert len(csp) == 1, (what, csp)
    assert directives(csp[0]).get("frame-ancestors") == ["'none'"], (what, csp)
    assert "strict-transport-security" not in r.headers, what


async def test_every_kind_of_response_carries_the_headers(make_client) -> None:
    app, client = await make_client(
        gateway_api_keys=KEY, gateway_max_body_bytes=256, gateway_rate_limit="40/minute"
    )
    model_of(app).apply(b.signal("BTCUSDT"))
    answers = {
        "hot path": await client.get("/signals/BTCUSDT", headers=AUTH),
        "routed json": await client.get("/signals", headers=AUTH),
        "invoke": await client.post("/invoke", headers=AUTH, json={"operation": "list_signals"}),
        "public probe": await client.get("/healthz"),
        "metrics": await client.get("/metrics"),
        "openapi": await client.get("/openapi.json"),
        "401": await client.get("/signals"),
        "404": await client.get("/nowhere", headers=AUTH),
        "422": await client.get("/signals?limt=5", headers=AUTH),
        "413": await client.post("/invoke", headers=AUTH, content=b"x" * 400),
        "dashboard": await client.get("/"),
        "swagger": await client.get("/docs"),
        "redoc": await client.get("/redoc"),
        "asset": await client.get("/static/css/app.css"),
    }
    statuses = {k: r.status_code for k, r in answers.items()}
    assert statuses["401"] == 401 and statuses["404"] == 404 and statuses["413"] == 413
    assert statuses["422"] == 422 and statuses["hot path"] == 200 and statuses["asset"] == 200
    for what, r in answers.items():
        assert_common(r, what)
    while (limited := await client.get("/ping", headers=AUTH)).status_code != 429:
        pass
    assert_common(limited, "429")
    for what in ("hot path", "routed json", "invoke", "401", "404", "413", "public probe"):
        assert answers[what].headers["content-security-policy"] == API_CSP, what
        assert answers[what].headers.get_list("cache-control") == ["no-store"], what
    assert limited.headers["content-security-policy"] == API_CSP
    assert limited.headers["cache-control"] == "no-store"


async def test_static_assets_stay_cacheable_and_routes_keep_their_own_headers(make_client) -> None:
    app, client = await make_client()

    @app.get("/own-headers")
    async def own() -> Response:
        return Response(
            b"{}",
            media_type="application/json",
            headers={
                "X-Frame-Options": "SAMEORIGIN",
                "Content-Security-Policy": "default-src 'self'",
                "Cache-Control": "max-age=60",
            },
        )

    @app.get("/boom")
    async def boom() -> Response:
        raise RuntimeError("unexpected")

    crashed = await client.get("/boom")  # answered by the metrics middleware's last resort
    assert crashed.status_code == 500
    assert_common(crashed, "500")
    assert crashed.headers["cache-control"] == "no-store"
    asset = await client.get("/static/js/app.js")
    assert asset.status_code == 200 and "etag" in asset.headers
    assert "no-store" not in asset.headers.get("cache-control", "")
    own_r = await client.get("/own-headers")
    assert own_r.headers.get_list("x-frame-options") == ["SAMEORIGIN"]
    assert own_r.headers.get_list("content-security-policy") == ["default-src 'self'"]
    assert own_r.headers.get_list("cache-control") == ["max-age=60"]
    assert own_r.headers["x-content-type-options"] == "nosniff"
    # the dashboard shell asks for revalidation itself, and keeps it
    assert (await client.get("/")).headers.get_list("cache-control") == ["no-cache"]


async def test_hsts_only_when_configured(make_client) -> None:
    _, off = await make_client()
    assert "strict-transport-security" not in (await off.get("/healthz")).headers
    _, on = await make_client(gateway_hsts_max_age_s=31536000)
    for path in ("/healthz", "/", "/static/css/app.css", "/nowhere"):
        r = await on.get(path)
        assert r.headers["strict-transport-security"] == "max-age=31536000", path


class _Page(HTMLParser):
    """Everything a page makes the browser load or run, as a CSP sees it."""

    def __init__(self) -> None:
        super().__init__()
        self.loads: list[tuple[str, str]] = []  # (tag, url)
        self.inline_scripts: list[str] = []
        self.inline_styles: list[str] = []
        self.style_attrs: list[str] = []
        self.handlers: list[str] = []
        self._open: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        for name in a:
            if name.startswith("on"):
                self.handlers.append(f"<{tag} {name}>")
        if "style" in a:
            self.style_attrs.append(tag)
        url = a.get("src") if tag in ("script", "img") else a.get("href")
        if url and (tag != "a"):
            self.loads.append((tag, url))
        if tag in ("script", "style") and not a.get("src"):
            self._open, self._text = tag, []

    def handle_data(self, data: str) -> None:
        if self._open:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == self._open:
            text = "".join(self._text)
            (self.inline_scripts if tag == "script" else self.inline_styles).append(text)
            self._open = None


def sha256_source(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def parse(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    return page


@pytest.mark.parametrize("path", ["/", "/docs", "/redoc", "/docs/oauth2-redirect"])
async def test_each_page_policy_allows_exactly_what_the_page_loads(make_client, path: str) -> None:
    _, client = await make_client()
    r = await client.get(path, headers={"Host": "localhost:8000"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    csp = directives(r.headers["content-security-policy"])
    page = parse(r.text)
    assert csp["default-src"] == ["'none'"] and csp["base-uri"] == ["'none'"]
    script = csp["script-src"]
    assert "'unsafe-inline'" not in script and "'unsafe-eval'" not in script
    assert not page.handlers and not page.style_attrs, (page.handlers, page.style_attrs)
    for text in page.inline_scripts:  # each inline script is allowed by its hash, nothing more
        assert sha256_source(text) in script, path
    for text in page.inline_styles:
        style = csp["style-src"]
        assert sha256_source(text) in style or "'unsafe-inline'" in style, path
    for tag, url in page.loads:  # same origin only: the gateway serves every asset itself
        assert url.startswith("/") and not url.startswith("//"), (tag, url)
    wanted = {"script": "script-src", "link": "style-src", "img": "img-src"}
    for tag, url in page.loads:
        if tag in wanted and not url.endswith(".png"):
            assert "'self'" in csp[wanted[tag]], (tag, url)
    if path in ("/", "/docs", "/redoc"):
        assert "'self'" in csp["connect-src"]  # /openapi.json, the REST routes


async def test_dashboard_policy_is_strict_and_fits_the_dashboard(make_client) -> None:
    _, client = await make_client()
    r = await client.get("/", headers={"Host": "localhost:8000"})
    csp = directives(r.headers["content-security-policy"])
    page = parse(r.text)
    assert page.inline_scripts == [] and page.inline_styles == []
    assert csp["script-src"] == ["'self'"]
    assert "'unsafe-inline'" not in csp["style-src"]
    # the WebSockets: 'self' covers ws:/wss: to the same host only in CSP3 browsers, so the
    # page's own host is named for both schemes
    assert {"'self'", "ws://localhost:8000", "wss://localhost:8000"} <= set(csp["connect-src"])
    # the chart library adds one fixed <style> for its attribution logo: allowed by hash
    lwc = LWC.read_text()
    styles = re.findall(r'createElement\("style"\),[\w.$]+\.innerText="([^"]*)"', lwc)
    assert styles, "the chart library's injected <style> moved: re-read it and update the CSP"
    for text in styles:
        assert sha256_source(text) in csp["style-src"]


async def test_dashboard_connect_src_names_no_host_it_cannot_trust(make_client) -> None:
    _, client = await make_client(gateway_allowed_hosts="dash.example.com")
    r = await client.get("/", headers={"Host": "dash.example.com"})
    assert "wss://dash.example.com" in r.headers["content-security-policy"]
    # nothing from a Host that is not a plain host[:port] lands in the header
    csp = directives(r.headers["content-security-policy"])
    assert all(re.fullmatch(r"'self'|wss?://[a-z0-9.:\[\]-]+", s) for s in csp["connect-src"])


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_dashboard_sets_inline_styles_through_cssom_not_a_style_attribute() -> None:
    """A `style` attribute set by script is blocked without 'unsafe-inline'; CSSOM is not."""
    harness = """
    const calls = [];
    globalThis.Node = class {};
    globalThis.document = { createElement: (tag) => {
      const node = new Node();
      node.tag = tag; node.style = {}; node.dataset = {}; node.append = () => {};
      node.setAttribute = (k, v) => calls.push(["setAttribute", k, v]);
      return node;
    } };
    const { h } = await import(process.argv[1]);
    const el = h("span", { style: "width:5%", class: "x", title: "t" });
    console.log(JSON.stringify({ calls, css: el.style.cssText ?? null }));
    """
    out = subprocess.run(
        ["node", "--input-type=module", "-e", harness, str(STATIC / "js/dom.js")],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    got = json.loads(out.stdout)
    assert got["css"] == "width:5%"
    assert ["setAttribute", "title", "t"] in got["calls"]
    assert not [c for c in got["calls"] if c[1] == "style"]


# --- DNS rebinding: an open gateway answers only to its loopback names (or configured ones)


@pytest.mark.parametrize(
    "host", ["localhost", "localhost:8000", "127.0.0.1:1234", "[::1]:8000", "LOCALHOST:80"]
)
async def test_open_gateway_answers_loopback_hosts(make_client, host: str) -> None:
    _, client = await make_client()
    r = await client.get("/signals", headers={"Host": host})
    assert r.status_code == 200, host


@pytest.mark.parametrize(
    "host", ["evil.example", "evil.example:8000", "localhost.evil.example", "127.0.0.2", ""]
)
async def test_open_gateway_refuses_any_other_host(make_client, host: str) -> None:
    _, client = await make_client()
    for path in ("/signals", "/", "/docs", "/static/js/app.js"):
        r = await client.get(path, headers={"Host": host})
        assert r.status_code == 421, (host, path)
        assert r.json()["error"]["code"] == "misdirected_request"
        assert "GATEWAY_ALLOWED_HOSTS" in r.json()["error"]["message"]
        assert_common(r, f"421 {host}")
    # orchestrators probe by pod address or service name: probes stay answered
    for probe in ("/healthz", "/readyz", "/metrics"):
        assert (await client.get(probe, headers={"Host": host})).status_code == 200, probe


async def test_open_gateway_closes_a_websocket_for_another_host_with_4421(make_client) -> None:
    app, _ = await make_client()
    sent: list[dict[str, Any]] = []
    incoming = [{"type": "websocket.connect"}]

    async def receive() -> dict[str, Any]:
        return incoming.pop(0) if incoming else {"type": "websocket.disconnect", "code": 1000}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "path": "/ws/signals",
        "raw_path": b"/ws/signals",
        "query_string": b"",
        "headers": [(b"host", b"rebind.evil.example:8000")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "scheme": "ws",
        "subprotocols": [],
        "state": {},
    }
    await app(scope, receive, send)
    assert [m["type"] for m in sent] == ["websocket.accept", "websocket.close"]
    assert sent[1]["code"] == 4421 and "GATEWAY_ALLOWED_HOSTS" in sent[1]["reason"]


@pytest.mark.parametrize("bad", ["http://dash.example.com", "dash.example.com/path", "a b"])
def test_allowed_hosts_must_be_host_names(bad: str) -> None:
    with pytest.raises(ValueError, match="GATEWAY_ALLOWED_HOSTS"):
        settings(gateway_allowed_hosts=f"localhost,{bad}")


async def test_configured_hosts_are_answered_with_auth_off(make_client) -> None:
    _, client = await make_client(gateway_allowed_hosts="gateway.internal, Dash.Example.com")
    for host in ("gateway.internal:8000", "dash.example.com", "localhost:8000"):
        assert (await client.get("/signals", headers={"Host": host})).status_code == 200, host
    assert (await client.get("/signals", headers={"Host": "evil.example"})).status_code == 421


async def test_with_keys_any_host_unless_hosts_are_configured(make_client) -> None:
    _, open_host = await make_client(gateway_api_keys=KEY)
    r = await open_host.get("/signals", headers={**AUTH, "Host": "api.example.com"})
    assert r.status_code == 200
    _, pinned = await make_client(gateway_api_keys=KEY, gateway_allowed_hosts="api.example.com")
    ok = await pinned.get("/signals", headers={**AUTH, "Host": "api.example.com:443"})
    assert ok.status_code == 200
    refused = await pinned.get("/signals", headers={**AUTH, "Host": "evil.example"})
    assert refused.status_code == 421


async def test_open_gateway_refuses_cross_site_origins(make_client) -> None:
    _, client = await make_client(gateway_cors_origins="https://dash.example.com")
    body = {"operation": "list_signals"}
    host = {"Host": "localhost:8000"}
    evil = await client.post("/invoke", json=body, headers={**host, "Origin": "https://evil.ex"})
    assert evil.status_code == 403 and evil.json()["error"]["code"] == "forbidden_origin"
    null = await client.post("/invoke", json=body, headers={**host, "Origin": "null"})
    assert null.status_code == 403
    for origin in ("http://localhost:8000", "https://dash.example.com", None):
        headers = {**host, **({"Origin": origin} if origin else {})}
        r = await client.post("/invoke", json=body, headers=headers)
        assert r.status_code == 200, origin


async def test_a_second_origin_header_does_not_pass_a_cross_site_one(make_client) -> None:
    """The guard read the last Origin, CORS and the app the first: a same-site one after a
    cross-site one let the cross-site request through the guard."""
    _, client = await make_client()
    body = {"operation": "list_signals"}
    for first, last in (
        ("https://evil.ex", "http://localhost:8000"),
        ("http://localhost:8000", "null"),
    ):
        headers = [("Host", "localhost:8000"), ("Origin", first), ("Origin", last)]
        r = await client.post("/invoke", json=body, headers=headers)
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden_origin", (
            first,
            last,
        )


async def _first_or_close(url: str, **kwargs: Any) -> tuple[str, Any]:
    async with websockets.connect(url, **kwargs) as ws:
        try:
            return "message", json.loads(await asyncio.wait_for(ws.recv(), 5))
        except websockets.exceptions.ConnectionClosed as closed:
            assert closed.rcvd is not None
            return "closed", (closed.rcvd.code, closed.rcvd.reason)


async def test_open_gateway_websocket_refuses_a_cross_site_origin() -> None:
    async with open_gateway() as (_, port):
        url = f"ws://127.0.0.1:{port}/ws/signals"
        kind, got = await _first_or_close(url, origin="https://evil.example")
        assert kind == "closed" and got[0] == 4403 and "origin" in got[1].lower()
        # no Origin (a program) and the page's own origin (the dashboard) are served
        assert (await _first_or_close(url))[1]["type"] == "subscribed"
        same = await _first_or_close(url, origin=f"http://127.0.0.1:{port}")
        assert same[1]["type"] == "subscribed"
        async with httpx.AsyncClient() as http:
            r = await http.get(f"http://127.0.0.1:{port}/healthz")
        assert_common(r, "served healthz")


async def test_websocket_with_keys_is_unaffected_by_origin() -> None:
    async with open_gateway(gateway_api_keys=KEY) as (_, port):
        url = f"ws://127.0.0.1:{port}/ws/signals?apiKey={KEY}"
        kind, got = await _first_or_close(url, origin="https://dash.example.com")
        assert kind == "message" and got["type"] == "subscribed"
