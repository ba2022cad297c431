"""API keys, client identity, rate limits, costly-operation budgets and request size limits.

Pure ASGI (not `BaseHTTPMiddleware`) so the hot path costs a few dict lookups. Keys are
compared with `hmac.compare_digest` against every configured key (no early exit). Limits are
moving windows (`limits`, asyncio storage: its thread-based storage starts expiry timer
threads on the hot path):

* per key (per client address when auth is off) for every request;
* per client address for the public paths (the dashboard, its assets, the API docs and
  documents), which need no key: without it anyone could make the gateway serialise and send
  hundreds of KB per request for free; the probes (`unlimited_paths`) stay unlimited, so a
  busy address can never fail a kubelet's or Prometheus' check;
* per client address for wrong credentials (a missing key is a plain 401, not a guess):
  past the limit every attempt from that client is refused with 429 unchecked, so
  guessing keys costs a window per few tries;
* per key for the costly operations: the LLM judge (`POST /judge/validate`, `/invoke
  validate_signal`), the vendor pass-through (`/invoke <vendor>.<name>`) and the signal
  research (`GET /analytics/signal-research`, `/invoke signal_research`: bootstraps over up
  to 100k rows per uncached query, so varying `since` could keep every core busy).

The client address is the TCP peer; `X-Forwarded-For` is believed only when the peer is one
of the configured trusted proxies, and then only up to the first address that is not one.
WebSockets authenticate with the header, a short-lived ticket (`?ticket=`, see `tickets`) or,
outside staging/prod, `?apiKey=`; a refused WebSocket is accepted and closed with 4401 (bad
key) or 4429 (rate limited), so browsers, which never see a handshake's HTTP status, can tell
the two apart. Bodies larger than the limit are refused with 413 before the app sees them.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any
from urllib.parse import parse_qs

import orjson
from limits import RateLimitItem
from limits import parse as parse_limit
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter
from prometheus_client import Counter, Histogram

from perpsignal_gateway.errors import error_body
from perpsignal_gateway.tickets import TicketBook

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

HTTP_REQUESTS = Counter(
    "perpsignal_gateway_http_requests_total",
    "HTTP requests by route and status",
    ["route", "status"],
)
HTTP_SECONDS = Histogram(
    "perpsignal_gateway_http_request_duration_seconds",
    "HTTP request latency by route",
    ["route"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 30),
)
AUTH_FAILURES = Counter(
    "perpsignal_gateway_auth_failures_total", "Requests refused for a bad or missing key"
)
RATE_LIMITED = Counter(
    "perpsignal_gateway_rate_limited_total", "Requests refused by a limit", ["limit"]
)

WS_UNAUTHORIZED = 4401  # private-use close codes mirroring the HTTP statuses
WS_RATE_LIMITED = 4429
IDENT_STATE = "perpsignal.ident"  # scope["state"] key: the caller's rate-limit identity

_BODY_METHODS = {"POST", "PUT", "PATCH"}

log = logging.getLogger(__name__)


class SecurityMiddleware:
    """Authenticate, rate-limit and size-limit every request except the public paths."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        api_keys: list[str],
        public_paths: set[str],
        rate_limit: str,
        max_body_bytes: int,
        trusted_proxies: Sequence[Network] = (),
        auth_failure_limit: str = "20/minute",
        judge_limit: str = "10/minute",
        vendor_limit: str = "60/minute",
        research_limit: str = "30/minute",
        public_limit: str = "1200/minute",
        unlimited_paths: frozenset[str] = frozenset(),
        tickets: TicketBook | None = None,
        allow_query_key: bool = True,
    ) -> None:
        self.app = app
        self._keys = [k.encode() for k in api_keys]
        self._public = public_paths
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._limit = parse_limit(rate_limit)
        self._fail_limit = parse_limit(auth_failure_limit)
        self._public_limit = parse_limit(public_limit)
        self._unlimited = unlimited_paths
        self._costly_limits = {
            "judge": parse_limit(judge_limit),
            "vendor": parse_limit(vendor_limit),
            "research": parse_limit(research_limit),
        }
        self._max_body = max_body_bytes
        self._proxies = tuple(trusted_proxies)
        self._tickets = tickets or TicketBook(api_keys)
        self._allow_query_key = allow_query_key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        address = client_address(scope, self._proxies)
        if address is not None and scope.get("client"):
            scope["client"] = (address, scope["client"][1])
        path: str = scope["path"]
        client = f"ip:{client_block(address)}" if address else "anonymous"
        if path in self._public or path.startswith("/static/") or path == "/":
            if path in self._unlimited or await self._spend(
                scope, receive, send, self._public_limit, client, "public"
            ):
                await self.app(scope, receive, send)
            return
        ident = await self._authenticate(scope, receive, send, client)
        if ident is None:
            return
        scope.setdefault("state", {})[IDENT_STATE] = ident
        if not await self._spend(scope, receive, send, self._limit, ident, "request"):
            return
        if path == RESEARCH_PATH and not await self._spend(
            scope, receive, send, self._costly_limits["research"], ident, "research"
        ):
            return
        if kind == "http" and scope.get("method") in _BODY_METHODS:
            coding = (_header(scope, b"content-encoding") or b"").strip().lower()
            if coding not in (b"", b"identity"):
                # never inflated here (a few KiB of gzip can unpack to gigabytes), and the app
                # would read the compressed bytes as a body that "is not JSON"
                await refuse(
                    scope,
                    receive,
                    send,
                    415,
                    "unsupported_media_type",
                    f"Content-Encoding {coding.decode('latin-1')[:40]!r} is not accepted: "
                    "send the body uncompressed",
                )
                return
            body = await self._read_body(scope, receive)
            if body is None:
                await refuse(
                    scope,
                    receive,
                    send,
                    413,
                    "payload_too_large",
                    f"request body larger than {self._max_body} bytes",
                )
                return
            costly = _costly(path, body)
            if costly and not await self._spend(
                scope, receive, send, self._costly_limits[costly], ident, costly
            ):
                return
            receive = _replay(body)
        await self.app(scope, receive, send)

    async def _authenticate(
        self, scope: Scope, receive: Receive, send: Send, client: str
    ) -> str | None:
        """Return the caller's rate-limit identity, or answer 401/429 and return None."""
        key = _header(scope, b"x-api-key")
        ticket: str | None = None
        if key is None and scope["type"] == "websocket":
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            ticket = (query.get("ticket") or [None])[0]
            if ticket is None and self._allow_query_key:
                raw = (query.get("apiKey") or query.get("api_key") or [None])[0]
                key = raw.encode() if raw is not None else None
        if not self._keys:
            # no key is checked, so none names the caller: an invented X-API-Key per request
            # would be a fresh budget (and WebSocket allowance) each time; the address is it
            return client
        if not key and ticket is None:
            # nothing presented, nothing guessed: a plain 401, not counted against the client
            AUTH_FAILURES.inc()
            await refuse(scope, receive, send, 401, "unauthorized", "missing X-API-Key")
            return None
        if not await self._limiter.test(self._fail_limit, "auth", client):
            await self._failed(scope, receive, send, client, None)
            return None
        if ticket is not None:
            ident = self._tickets.redeem(ticket)
            if ident is None:
                await self._failed(scope, receive, send, client, "invalid or used ticket")
            return ident
        if self._valid(key):
            assert key is not None
            return self._tickets.key_ident(key)
        await self._failed(scope, receive, send, client, "invalid X-API-Key")
        return None

    async def _failed(
        self, scope: Scope, receive: Receive, send: Send, client: str, why: str | None
    ) -> None:
        """Answer a wrong credential: 401 while the client has tries left, then 429."""
        AUTH_FAILURES.inc()
        if why is not None and await self._limiter.hit(self._fail_limit, "auth", client):
            await refuse(scope, receive, send, 401, "unauthorized", why)
            return
        retry = await self._retry_after(self._fail_limit, "auth", client)
        RATE_LIMITED.labels("auth_failures").inc()
        await refuse(
            scope,
            receive,
            send,
            429,
            "too_many_auth_failures",
            f"too many failed authentications from this client; retry in {retry} s",
            {"retry-after": str(retry)},
        )

    async def _spend(
        self, scope: Scope, receive: Receive, send: Send, item: RateLimitItem, ident: str, what: str
    ) -> bool:
        if await self._limiter.hit(item, what, ident):
            return True
        retry = await self._retry_after(item, what, ident)
        RATE_LIMITED.labels(what).inc()
        limit = "rate limit" if what in ("request", "public") else f"{what} budget"
        # auth off: no key counts; a public path is counted per address whatever the key
        whose = "key" if self._keys and what != "public" else "client address"
        await refuse(
            scope,
            receive,
            send,
            429,
            "rate_limited",
            f"{limit} of this {whose} ({item}) exceeded; retry in {retry} s",
            {"retry-after": str(retry)},
        )
        return False

    async def _retry_after(self, item: RateLimitItem, *ids: str) -> int:
        reset_at, _ = await self._limiter.get_window_stats(item, *ids)
        return max(1, math.ceil(reset_at - time.time()))

    def _valid(self, key: bytes | None) -> bool:
        if not key:
            return False
        ok = False
        for k in self._keys:  # compare against every key: no timing hint of which matched
            ok |= hmac_equal(key, k)
        return ok

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes | None:
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self._max_body:
            return None
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self._max_body:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)


class MetricsMiddleware:
    """Count and time requests by route template; turn any escaped exception into a bare 500.

    Starlette's own server-error middleware re-raises after answering, which makes uvicorn log
    a traceback; catching here keeps tracebacks out of responses and logs alike.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception as exc:
            log.error(
                "unhandled error",
                extra={"path": scope.get("path"), "error_type": type(exc).__name__},
            )
            if not response_started:
                await refuse(scope, receive, send, 500, "internal_error", "internal error")
        finally:
            route = scope.get("route")
            label = getattr(route, "path", None) or "unmatched"
            HTTP_REQUESTS.labels(label, str(status)).inc()
            HTTP_SECONDS.labels(label).observe(time.perf_counter() - started)


def _header(scope: Scope, name: bytes) -> bytes | None:
    for k, v in scope.get("headers", ()):
        if k == name:
            return bytes(v)
    return None


def hmac_equal(a: bytes, b: bytes) -> bool:
    """Compare in constant time."""
    return hmac.compare_digest(a, b)


def client_address(scope: Scope, proxies: Sequence[Network]) -> str | None:
    """Return the client's address: the peer, or what trusted proxies forwarded for it."""
    peer = scope.get("client")
    address: str | None = peer[0] if peer else None
    if not proxies or address is None or not _trusted(address, proxies):
        return address
    forwarded = b",".join(v for k, v in scope.get("headers", ()) if k == b"x-forwarded-for")
    # rightmost first: each trusted hop appended the address it saw; the first untrusted
    # one is the client (anything to its left was written by the client itself)
    for item in reversed(forwarded.decode("latin-1").split(",")):
        hop = item.strip()
        if not hop:
            continue
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return address  # garbage: believe nothing beyond the last trusted hop
        address = hop
        if not _trusted(hop, proxies):
            break
    return address


IPV6_CLIENT_PREFIX = 64


def client_block(address: str) -> str:
    """Return the address block that counts as one client: an IPv6 address's /64.

    One subscriber or host gets a whole /64 (RFC 6177) and can send from any of its 2^64
    addresses: counted one by one, each would be a fresh budget and a fresh allowance of
    failed keys. An IPv4-mapped address is its IPv4 address.
    """
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, IPV6_CLIENT_PREFIX), strict=False))
    return address


def _trusted(address: str, proxies: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    # a dual-stack socket (listening on "::") reports an IPv4 peer as ::ffff:a.b.c.d
    mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
    return any(ip in net or (mapped is not None and mapped in net) for net in proxies)


RESEARCH_PATH = "/analytics/signal-research"


def _costly(path: str, body: bytes) -> str | None:
    """Return which costly budget a request spends ("judge", "vendor", "research") or None."""
    if path == "/judge/validate":
        return "judge"
    if path != "/invoke":
        return None
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        # the app parses with the standard library, which also takes what orjson refuses (a
        # BOM, UTF-16/32, NaN): judge by what the app will read, or such a body runs free
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):
            return None
    op = data.get("operation") if isinstance(data, dict) else None
    if not isinstance(op, str):
        return None
    if op == "validate_signal":
        return "judge"
    if op == "signal_research":
        return "research"
    return "vendor" if "." in op else None


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive


async def refuse(
    scope: Scope,
    receive: Receive,
    send: Send,
    status: int,
    code: str,
    message: str,
    headers: dict[str, str] | None = None,
    *,
    ws_close: int | None = None,
) -> None:
    """Answer with the error body, or accept and close a WebSocket with `ws_close`.

    The default close code mirrors the status: 4429 rate limited, 4401 anything else.
    """
    if scope["type"] == "websocket":
        # accept, then close: a browser sees the close code, never a handshake's status
        message_in = await receive()
        if message_in["type"] != "websocket.connect":
            return
        await send({"type": "websocket.accept"})
        close = ws_close or (WS_RATE_LIMITED if status == 429 else WS_UNAUTHORIZED)
        await send({"type": "websocket.close", "code": close, "reason": message[:120]})
        return
    body = error_body(code, message)
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
