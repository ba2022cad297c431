"""A local fake of every market-data vendor: HTTP + WebSocket, replaying recorded bodies.

One aiohttp server serves every vendor under its own prefix (`url("binance")` →
`http://127.0.0.1:PORT/binance`), so a real client pointed at it speaks the vendor's exact
paths. Bodies come from `../shared/data/api/<vendor>/` (never copied into the repo); bulk
Binance endpoints are expanded to the configured symbol universe by re-keying the recorded
item. On top of replay it offers what tests and benchmarks need:

* Binance request-weight accounting per endpoint, per minute (on an injectable clock), the
  `X-MBX-USED-WEIGHT-1M` header, 429 + Retry-After past the budget, and the separate
  5-minute caps of the statistics and funding endpoints;
* fault injection per vendor/path: a status (429 with Retry-After, 418, 5xx), a timeout, a
  truncated JSON body, an HTML error page, wrong types in an otherwise valid body, a
  valid body dripped out slowly (`drip`: every read quick, the whole answer slow), the
  real body compressed (`compressed`: gzip, zlib-wrapped or raw deflate, as servers send
  them), a decompression bomb (`bomb`: `inflated_bytes` of JSON whitespace, gzipped) or
  an error that quotes the key it was sent (`echo_key`: after `padding` characters; with
  `status` 200, a Coinglass-style envelope);
* WebSockets: Binance (`/binance/ws`: SUBSCRIBE and UNSUBSCRIBE acks, an error past
  `binance_max_streams` streams, and the connection closed past
  `binance_max_messages_per_s` messages from the client in a second) and Coinglass
  (`/coinglass/ws-api`,
  `ping`→`pong`); `push()` sends a message to every client, `drop()` cuts them mid-stream.

Other engineers reuse it in end-to-end tests: `async with FakeVendors(data_dir) as fake:`.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import json
import math
import time
import zlib
from collections import Counter, defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from aiohttp import WSMsgType, web

VENDORS = ("binance", "okx", "coinglass", "lunarcrush", "coinapi", "coingecko", "alternative_me")
DATA_DIRS = {"binance": "binance_usdm"}
FaultKind = Literal[
    "status",
    "timeout",
    "truncated",
    "html",
    "wrong_types",
    "drip",
    "redirect",
    "bad_gzip",
    "compressed",
    "bomb",
    "echo_key",
]
Encoding = Literal["gzip", "deflate", "raw-deflate"]
WBITS = {"gzip": zlib.MAX_WBITS | 16, "deflate": zlib.MAX_WBITS, "raw-deflate": -zlib.MAX_WBITS}


@dataclass
class Fault:
    """One injected failure; `times=None` makes it permanent (an unreachable vendor)."""

    kind: FaultKind
    status: int = 500
    retry_after: float | str | None = None  # a number of seconds or an HTTP-date
    delay_s: float = 2.0
    times: int | None = 1
    location: str = "https://elsewhere.example/"  # redirect: where it points
    body: Any = None  # redirect: the body sent with it
    encoding: Encoding = "gzip"  # compressed, bomb
    inflated_bytes: int = 64 * 1024 * 1024  # bomb: its size once decoded
    padding: int = 0  # echo_key: characters before the key in the message
    # status: the error's `msg` (Binance's 418 says "... banned until <epoch ms>. ...")
    message: str = "fault injected"


def compress(data: bytes, encoding: Encoding) -> bytes:
    """`data` as a server sends it under `Content-Encoding` (raw deflate: a non-conforming
    server's `deflate` without the zlib header)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, WBITS[encoding])
    return packer.compress(data) + packer.flush()


@functools.cache
def bomb(inflated_bytes: int, encoding: Encoding) -> bytes:
    """A valid compressed body of `inflated_bytes` spaces (about 1,000 times smaller)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, WBITS[encoding])
    block = b" " * (1 << 20)
    parts = [packer.compress(block) for _ in range(inflated_bytes >> 20)]
    parts.append(packer.compress(b" " * (inflated_bytes % (1 << 20))))
    return b"".join([*parts, packer.flush()])


@dataclass
class BinanceAccounting:
    """The server's view of Binance usage: weight per minute and 5-minute request caps."""

    weight_limit_1m: int = 2400
    stats_limit_5m: int = 1000
    funding_limit_5m: int = 500
    weight_by_minute: Counter[int] = field(default_factory=Counter)
    weight_by_endpoint: Counter[str] = field(default_factory=Counter)
    caps_by_window: Counter[tuple[str, int]] = field(default_factory=Counter)
    rejected: int = 0


def binance_weight(path: str, query: dict[str, str]) -> int:
    """Return the request weight Binance documents for a call (server-side table)."""
    if path == "/fapi/v1/klines":
        limit = int(query.get("limit", 500))
        return 1 if limit < 100 else 2 if limit < 500 else 5 if limit <= 1000 else 10
    if path == "/fapi/v1/premiumIndex":
        return 1 if "symbol" in query else 10
    if path == "/fapi/v1/ticker/24hr":
        return 1 if "symbol" in query else 40
    if path in ("/fapi/v1/exchangeInfo", "/fapi/v1/openInterest"):
        return 1
    return 0  # /futures/data/* and fundingRate are capped per 5 minutes instead


def corrupt(body: Any) -> Any:
    """Return `body` with its values replaced by the wrong types (envelopes keep their code)."""
    if isinstance(body, dict) and "data" in body and "code" in body:
        return {**body, "data": corrupt(body["data"])}
    if isinstance(body, dict):
        return {k: ["?"] for k in body}
    if isinstance(body, list):
        return [corrupt(x) if isinstance(x, dict | list) else {"?": x} for x in body]
    return ["?"]


class FakeVendors:
    """Every vendor on one local port; see the module docstring."""

    def __init__(
        self,
        data_dir: Path,
        *,
        symbols: list[str] | None = None,
        clock: Callable[[], float] = time.time,
        host: str = "127.0.0.1",
    ) -> None:
        self.api = data_dir / "api" if (data_dir / "api").is_dir() else data_dir
        self.symbols = symbols
        self.clock = clock
        self.host = host
        self.port = 0
        self.binance = BinanceAccounting()
        self.requests: Counter[tuple[str, str]] = Counter()
        self.calls: list[tuple[str, str, dict[str, str]]] = []  # every HTTP call with its query
        self.call_times: list[float] = []  # time.monotonic() of each entry of `calls`
        self.faults: dict[tuple[str, str], deque[Fault]] = defaultdict(deque)
        self.overrides: dict[tuple[str, str], Any] = {}
        self.listings: list[tuple[str, int]] = []
        self.ws_clients: dict[str, list[web.WebSocketResponse]] = defaultdict(list)
        self.ws_connects: Counter[str] = Counter()
        self.ws_received: dict[str, list[str]] = defaultdict(list)
        # streams the latest connection subscribed to; a SUBSCRIBE past the cap is refused
        self.ws_subscribed: dict[str, set[str]] = {}
        self.binance_max_streams = 1024  # "a single connection: at most 1024 streams"
        # "WebSocket connections have a limit of 10 incoming messages per second. A
        # connection that goes beyond the limit will be disconnected"
        self.binance_max_messages_per_s = 10
        self.ws_closed_for_rate: Counter[str] = Counter()
        # CoinAPI's credits: the plan's `x-ratelimit-limit` per rolling 24 h (a paid plan's
        # size unless a test sets the free plan's 100); the times of the calls it charged
        # (`clock`), and `coinapi_spent_elsewhere` credits other users of the key spent
        self.coinapi_plan = 100_000
        self.coinapi_charged: list[float] = []
        self.coinapi_spent_elsewhere = 0
        self._runner: web.AppRunner | None = None
        self._cache: dict[str, Any] = {}

    # lifecycle -------------------------------------------------------------------------
    async def start(self) -> FakeVendors:
        """Start serving on a free port."""
        app = web.Application()
        app.router.add_get("/binance/ws", self._binance_ws)
        app.router.add_get("/coinglass/ws-api", self._coinglass_ws)
        app.router.add_get("/{vendor}/{tail:.*}", self._http)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        """Close WebSockets and stop the server."""
        await self.drop()
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> FakeVendors:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def url(self, vendor: str) -> str:
        """Return the base URL that stands in for `vendor`'s API."""
        return f"http://{self.host}:{self.port}/{vendor}"

    def ws_url(self, vendor: str) -> str:
        """Return the WebSocket base URL of `vendor` (Binance: append `/ws`)."""
        base = f"ws://{self.host}:{self.port}/{vendor}"
        return base + "/ws-api" if vendor == "coinglass" else base

    def env(self) -> dict[str, str]:
        """Return the ingestor settings that point every vendor at this fake."""
        return {
            "BINANCE_FAPI_BASE_URL": self.url("binance"),
            "BINANCE_WS_URL": self.ws_url("binance"),
            "OKX_BASE_URL": self.url("okx"),
            "COINGLASS_BASE_URL": self.url("coinglass"),
            "COINGLASS_WS_URL": self.ws_url("coinglass"),
            "LUNARCRUSH_BASE_URL": self.url("lunarcrush"),
            "COINAPI_BASE_URL": self.url("coinapi"),
            "COINGECKO_BASE_URL": self.url("coingecko"),
            "FEAR_GREED_URL": self.url("alternative_me") + "/fng/",
        }

    # control ---------------------------------------------------------------------------
    def inject(self, vendor: str, path: str, *faults: Fault) -> None:
        """Queue faults for requests to `vendor` whose path starts with `path`."""
        self.faults[(vendor, path)].extend(faults)

    def clear_faults(self) -> None:
        """Remove every queued fault."""
        self.faults.clear()

    def set_body(self, vendor: str, path: str, body: Any) -> None:
        """Serve `body` for `vendor` + exact `path` instead of the recorded one.

        `body` may be a callable of the query (a dict) that returns the body.
        """
        self.overrides[(vendor, path)] = body

    def add_listing(self, symbol: str, onboard_ms: int) -> None:
        """Make exchangeInfo list a new USDT perpetual from now on."""
        self.listings.append((symbol, onboard_ms))

    async def push(self, vendor: str, message: Any) -> int:
        """Send a message (JSON-encoded unless str) to every client of `vendor`'s stream."""
        text = message if isinstance(message, str) else json.dumps(message)
        clients = [ws for ws in self.ws_clients[vendor] if not ws.closed]
        for ws in clients:
            await ws.send_str(text)
        return len(clients)

    async def drop(self, vendor: str | None = None) -> None:
        """Close stream connections mid-stream (all vendors by default)."""
        for v in [vendor] if vendor else list(self.ws_clients):
            for ws in list(self.ws_clients[v]):
                await ws.close()
            self.ws_clients[v].clear()

    def weight_per_minute(self) -> dict[int, int]:
        """Return Binance weight by minute window."""
        return dict(sorted(self.binance.weight_by_minute.items()))

    # data ------------------------------------------------------------------------------
    def load(self, vendor: str, name: str) -> Any:
        """Return a recorded body (cached, deep-copied)."""
        rel = f"{DATA_DIRS.get(vendor, vendor)}/{name}"
        if rel not in self._cache:
            self._cache[rel] = json.loads((self.api / rel).read_text())
        return copy.deepcopy(self._cache[rel])

    def _universe(self) -> list[str]:
        if self.symbols is not None:
            return list(self.symbols)
        info = self.load("binance", "fapi_v1_exchangeInfo.recorded_trimmed.json")
        return [s["symbol"] for s in info["symbols"] if s["contractType"] == "PERPETUAL"]

    def _exchange_info(self) -> Any:
        info = self.load("binance", "fapi_v1_exchangeInfo.recorded_trimmed.json")
        template = next(s for s in info["symbols"] if s["contractType"] == "PERPETUAL")
        if self.symbols is not None:
            info["symbols"] = [
                self._symbol_entry(template, s, template["onboardDate"]) for s in self.symbols
            ]
        info["symbols"] += [self._symbol_entry(template, s, ms) for s, ms in self.listings]
        info["serverTime"] = int(self.clock() * 1000)
        return info

    @staticmethod
    def _symbol_entry(template: dict[str, Any], symbol: str, onboard_ms: int) -> dict[str, Any]:
        entry = copy.deepcopy(template)
        entry.update(
            symbol=symbol,
            pair=symbol,
            baseAsset=symbol.removesuffix("USDT"),
            onboardDate=onboard_ms,
        )
        return entry

    def _rekey(self, item: dict[str, Any], symbol: str) -> dict[str, Any]:
        out = dict(item)
        if "symbol" in out:
            out["symbol"] = symbol
        return out

    def _binance_body(self, path: str, q: dict[str, str]) -> Any:
        sym = q.get("symbol", "BTCUSDT")
        files = {
            "/fapi/v1/klines": "fapi_v1_klines.thirdparty_doc.json",
            "/fapi/v1/fundingRate": "fapi_v1_fundingRate.doc_current.json",
            "/fapi/v1/openInterest": "fapi_v1_openInterest.doc_current.json",
            "/futures/data/openInterestHist": "futures_data_openInterestHist.doc_current.json",
            **{
                f"/futures/data/{n}": f"futures_data_{n}.doc_current.json"
                for n in (
                    "globalLongShortAccountRatio",
                    "topLongShortAccountRatio",
                    "topLongShortPositionRatio",
                    "takerlongshortRatio",
                )
            },
        }
        if path == "/fapi/v1/exchangeInfo":
            return self._exchange_info()
        if path in ("/fapi/v1/premiumIndex", "/fapi/v1/ticker/24hr"):
            name = (
                "fapi_v1_premiumIndex.doc_current.json"
                if "premium" in path
                else "fapi_v1_ticker_24hr.doc_current.json"
            )
            item = self.load("binance", name)
            if "symbol" in q:
                return self._rekey(item, sym)
            return [self._rekey(item, s) for s in self._universe()]
        if path == "/fapi/v1/klines":
            return self._klines(q.get("interval", "5m"))
        if path in files:
            body = self.load("binance", files[path])
            if isinstance(body, list):
                return [self._rekey(x, sym) if isinstance(x, dict) else x for x in body]
            return self._rekey(body, sym)
        raise web.HTTPNotFound(text=json.dumps({"code": -1, "msg": f"unknown path {path}"}))

    _OKX_BAR_S: ClassVar[dict[str, int]] = {
        "1m": 60,
        "5m": 300,
        "15m": 900,
        "30m": 1800,
        "1H": 3600,
        "2H": 7200,
        "4H": 14400,
        "1Dutc": 86400,
    }

    def _okx_candles(self, bar: str) -> Any:
        """The recorded candles (two BTC swap 1m bars) on the grid of the bar asked for, as
        OKX answers: newest first, the newest the last bar closed on the fake's clock."""
        body = self.load("okx", "api_v5_market_candles.recorded.json")
        step = self._OKX_BAR_S.get(bar, 60) * 1000
        newest = int(self.clock() * 1000) // step * step - step
        body["data"] = [[str(newest - i * step), *row[1:]] for i, row in enumerate(body["data"])]
        return body

    def _klines(self, interval: str) -> list[list[Any]]:
        """The recorded 5m rows, re-timed to `interval` as Binance would answer it (each row
        spans the interval, the first opens on an interval boundary); prices as recorded."""
        rows: list[list[Any]] = self.load("binance", "fapi_v1_klines.thirdparty_doc.json")
        unit = {"m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
        step = int(interval[:-1]) * unit[interval[-1]] if interval[-1:] in unit else 300_000
        start = rows[0][0] - rows[0][0] % step
        for i, row in enumerate(rows):
            row[0] = start + i * step
            row[6] = row[0] + step - 1
        return rows

    def _account_binance(self, path: str, q: dict[str, str]) -> tuple[int, float | None]:
        """Count the call; return (weight used this minute, retry-after when over a cap)."""
        acc, now = self.binance, self.clock()
        minute, five = int(now // 60), int(now // 300)
        weight = binance_weight(path, q)
        acc.weight_by_minute[minute] += weight
        acc.weight_by_endpoint[path] += weight
        used = acc.weight_by_minute[minute]
        if used > acc.weight_limit_1m:
            acc.rejected += 1
            return used, math.ceil((minute + 1) * 60 - now)
        if path.startswith("/futures/data/"):
            acc.caps_by_window[(path, five)] += 1
            if acc.caps_by_window[(path, five)] > acc.stats_limit_5m:
                acc.rejected += 1
                return used, math.ceil((five + 1) * 300 - now)
        if path == "/fapi/v1/fundingRate":
            acc.caps_by_window[(path, five)] += 1
            if acc.caps_by_window[(path, five)] > acc.funding_limit_5m:
                acc.rejected += 1
                return used, math.ceil((five + 1) * 300 - now)
        return used, None

    def _vendor_body(self, vendor: str, path: str, q: dict[str, str]) -> Any:
        if vendor == "binance":
            return self._binance_body(path, q)
        if vendor == "okx" and path == "/api/v5/market/candles":
            return self._okx_candles(q.get("bar", "1m"))
        if vendor == "alternative_me" and path.rstrip("/") == "/fng":
            return self.load("alternative_me", "fng_limit2.json")
        if vendor == "coingecko" and path == "/coins/markets":
            return self.load("coingecko", "coins_markets.json")
        if vendor == "coingecko" and path == "/search/trending":
            return self.load("coingecko", "search_trending.json")
        if vendor == "coinglass":
            for entry in self.load("coinglass", "_index.json"):
                if entry.get("path") == path and str(entry.get("saved", "")).endswith(".json"):
                    return self.load("coinglass", entry["saved"])
        if vendor == "lunarcrush":
            parts = path.strip("/").split("/")
            if path == "/public/coins/list/v2":
                return self.load("lunarcrush", "coins_list_v2.json")
            if parts[:2] == ["public", "coins"] and parts[-2:] == ["time-series", "v2"]:
                return self.load("lunarcrush", "coins_coin_time-series_v2.json")
            if parts[:2] == ["public", "topic"] and parts[-1] == "v1" and len(parts) == 4:
                return self.load("lunarcrush", "topic_topic_v1.json")
        if vendor == "coinapi":
            parts = path.strip("/").split("/")
            if parts[:2] == ["v1", "ohlcv"] and parts[-1] == "history":
                return self.load("coinapi", "v1_ohlcv_symbol_id_history.json")
            if parts[:2] == ["v1", "exchangerate"] and len(parts) == 4:
                return self.load("coinapi", "v1_specific_rate.json")
            if parts[:2] == ["v1", "trades"] and parts[-1] == "latest":
                # the recorded Kraken trades, as CoinAPI answers: under the id asked for
                rows = self.load("coinapi", "v1_trades_symbol_id_latest.json")
                return [{**r, "symbol_id": parts[2]} for r in rows]
        raise web.HTTPNotFound(text=json.dumps({"error": f"unknown path {path}"}))

    _AUTH = {"coinglass": "CG-API-KEY", "lunarcrush": "Authorization", "coinapi": "X-CoinAPI-Key"}

    # handlers --------------------------------------------------------------------------
    def _take_fault(self, vendor: str, path: str) -> Fault | None:
        for (v, prefix), queue in self.faults.items():
            if v == vendor and path.startswith(prefix) and queue:
                fault = queue[0]
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times <= 0:
                        queue.popleft()
                return fault
        return None

    def _account_coinapi(self, headers: dict[str, str]) -> web.Response | None:
        """Charge one credit (as CoinAPI does for a call up to 100 items) and say the key's
        use in its headers; over the plan, a hard-limited key's 429 (nothing charged)."""
        now = self.clock()
        self.coinapi_charged = [t for t in self.coinapi_charged if t > now - 86_400]
        used = len(self.coinapi_charged) + self.coinapi_spent_elsewhere
        headers["x-ratelimit-limit"] = str(self.coinapi_plan)
        if used + 1 > self.coinapi_plan:
            headers |= {"x-ratelimit-used": str(used), "x-ratelimit-remaining": "0"}
            return web.json_response(
                {"error": "Too many requests - You have exceeded your API key rate limits."},
                status=429,
                headers=headers,
            )
        self.coinapi_charged.append(now)
        headers["x-ratelimit-used"] = str(used + 1)
        headers["x-ratelimit-remaining"] = str(self.coinapi_plan - used - 1)
        headers["x-ratelimit-request-cost"] = "1"
        return None

    async def _http(self, request: web.Request) -> web.StreamResponse:
        vendor = request.match_info["vendor"]
        path = "/" + request.match_info["tail"]
        q = dict(request.query)
        self.requests[(vendor, path)] += 1
        self.calls.append((vendor, path, q))
        self.call_times.append(time.monotonic())
        headers: dict[str, str] = {}
        if vendor == "binance":
            used, retry_after = self._account_binance(path, q)
            headers["X-MBX-USED-WEIGHT-1M"] = str(used)
            if retry_after is not None:
                return web.json_response(
                    {"code": -1003, "msg": "Too many requests"},
                    status=429,
                    headers={**headers, "Retry-After": str(retry_after)},
                )
        header = self._AUTH.get(vendor)
        if header and not request.headers.get(header):
            return web.json_response({"code": "401", "msg": "API key missing"}, status=401)
        if vendor == "coinapi":
            refused = self._account_coinapi(headers)
            if refused is not None:
                return refused
        fault = self._take_fault(vendor, path)
        if fault is not None and fault.kind == "echo_key":
            # what some APIs do: "Invalid API key: <the key>" (LunarCrush's: "Bearer <key>")
            said = f"Invalid API key: {'.' * fault.padding}{request.headers.get(header or '')}"
            if fault.status == 200:
                return web.json_response({"code": "401", "msg": said}, headers=headers)
            return web.json_response({"error": said}, status=fault.status, headers=headers)
        if fault is not None and fault.kind in (
            "status",
            "timeout",
            "html",
            "redirect",
            "bad_gzip",
            "bomb",
        ):
            return await self._fault_response(fault, headers)
        body = self.overrides.get((vendor, path))
        if callable(body):
            body = body(q)
        if body is None:
            body = self._vendor_body(vendor, path, q)
        if fault is not None and fault.kind == "wrong_types":
            body = corrupt(body)
        text = json.dumps(body)
        if fault is not None and fault.kind == "truncated":
            text = text[: max(1, len(text) // 2)]
        if fault is not None and fault.kind == "drip":
            return await self._drip(request, text, fault.delay_s, headers)
        if fault is not None and fault.kind == "compressed":
            return self._encoded(compress(text.encode(), fault.encoding), fault, headers)
        return web.Response(text=text, content_type="application/json", headers=headers)

    @staticmethod
    async def _drip(
        request: web.Request, text: str, delay_s: float, headers: dict[str, str]
    ) -> web.StreamResponse:
        """Send the body in 20 pieces, `delay_s` apart: every read is quick, the whole slow."""
        resp = web.StreamResponse(headers={**headers, "Content-Type": "application/json"})
        await resp.prepare(request)
        step = max(1, len(text) // 20)
        for i in range(0, len(text), step):
            await resp.write(text[i : i + step].encode())
            await asyncio.sleep(delay_s)
        await resp.write_eof()
        return resp

    @staticmethod
    def _encoded(body: bytes, fault: Fault, headers: dict[str, str]) -> web.Response:
        coding = "deflate" if fault.encoding == "raw-deflate" else fault.encoding
        return web.Response(
            body=body,
            headers={**headers, "Content-Type": "application/json", "Content-Encoding": coding},
        )

    async def _fault_response(self, fault: Fault, headers: dict[str, str]) -> web.Response:
        if fault.kind == "timeout":
            await asyncio.sleep(fault.delay_s)  # the client's timeout fires first
            return web.json_response([], headers=headers)
        if fault.kind == "redirect":
            # a proxy or a moved API: the real body, but under a 302 to another host
            return web.json_response(
                fault.body, status=302, headers={**headers, "Location": fault.location}
            )
        if fault.kind == "bad_gzip":
            # says gzip, is not: a proxy mangling the encoding, a truncated cache entry
            # (or `body`, bytes: e.g. a real gzip body cut short)
            return web.Response(
                body=fault.body or b"\x1f\x8b\x08\x00garbage, not a deflate stream",
                headers={**headers, "Content-Type": "application/json", "Content-Encoding": "gzip"},
            )
        if fault.kind == "bomb":
            return self._encoded(bomb(fault.inflated_bytes, fault.encoding), fault, headers)
        if fault.kind == "html":
            return web.Response(
                text="<html><body><h1>502 Bad Gateway</h1>cloudflare</body></html>",
                content_type="text/html",
                headers=headers,
            )
        if fault.retry_after is not None:
            headers["Retry-After"] = str(fault.retry_after)
        if fault.status >= 500:
            return web.Response(
                text="<html><body>Service Unavailable</body></html>",
                status=fault.status,
                content_type="text/html",
                headers=headers,
            )
        return web.json_response(
            {"code": -1003, "msg": fault.message}, status=fault.status, headers=headers
        )

    async def _binance_ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=None)
        await ws.prepare(request)
        self.ws_clients["binance"].append(ws)
        self.ws_connects["binance"] += 1
        subscribed: set[str] = set()
        self.ws_subscribed["binance"] = subscribed  # the latest connection's streams
        arrivals: deque[float] = deque()
        async for msg in ws:
            if msg.type is WSMsgType.TEXT:
                self.ws_received["binance"].append(msg.data)
                now = time.monotonic()
                arrivals.append(now)
                while arrivals and arrivals[0] <= now - 1.0:
                    arrivals.popleft()
                if len(arrivals) > self.binance_max_messages_per_s:
                    self.ws_closed_for_rate["binance"] += 1
                    await ws.close()
                    break
                data = json.loads(msg.data)
                if data.get("method") == "UNSUBSCRIBE":
                    subscribed -= set(data.get("params", ()))
                    await ws.send_str(json.dumps({"result": None, "id": data.get("id")}))
                    continue
                if data.get("method") == "SUBSCRIBE":
                    wanted = set(data.get("params", ()))
                    if len(subscribed | wanted) > self.binance_max_streams:
                        # Binance refuses the whole request and keeps the connection
                        error = {"code": 2, "msg": "Invalid request: too many streams"}
                        await ws.send_str(json.dumps({"error": error, "id": data.get("id")}))
                        continue
                    subscribed |= wanted
                    await ws.send_str(json.dumps({"result": None, "id": data.get("id")}))
        return ws

    async def _coinglass_ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=None)
        if not request.query.get("cg-api-key"):
            raise web.HTTPUnauthorized()
        await ws.prepare(request)
        self.ws_clients["coinglass"].append(ws)
        self.ws_connects["coinglass"] += 1
        async for msg in ws:
            if msg.type is WSMsgType.TEXT:
                self.ws_received["coinglass"].append(msg.data)
                if msg.data == "ping":
                    await ws.send_str("pong")
        return ws


async def serve_forever(data_dir: Path, port: int = 0) -> None:  # pragma: no cover - manual use
    """Run the fake on its own (`python -m tests.fakes.vendors`)."""
    fake = FakeVendors(data_dir)
    await fake.start()
    print(json.dumps(fake.env(), indent=2))  # noqa: T201
    await asyncio.Event().wait()


if __name__ == "__main__":  # pragma: no cover
    repo = Path(__file__).resolve().parents[2]
    asyncio.run(serve_forever(repo.parent / "shared" / "data"))
