"""API keys, per-key rate limits, request size limits and request metrics, as ASGI middleware.

Pure ASGI (not `BaseHTTPMiddleware`) so the hot path costs a few dict lookups. Keys are
compared with `hmac.compare_digest` against every configured key (no early exit), the rate
limit is a moving window per key (`limits`, asyncio storage: its thread-based storage starts
expiry timer threads on the hot path), and bodies larger than the limit are refused
with 413 before the app sees them. WebSocket clients may pass the key as `?apiKey=` because
browsers cannot set headers on a WebSocket.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs

from limits import parse as parse_limit
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter
from prometheus_client import Counter, Histogram

from perpsignal_gateway.errors import error_body

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

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
    "perpsignal_gateway_rate_limited_total", "Requests refused by the per-key limit"
)

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
    ) -> None:
        self.app = app
        self._keys = [k.encode() for k in api_keys]
        self._public = public_paths
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._limit = parse_limit(rate_limit)
        self._max_body = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path in self._public or path.startswith("/static/") or path == "/":
            await self.app(scope, receive, send)
            return
        key = _header(scope, b"x-api-key")
        if key is None and kind == "websocket":
            key = _query_key(scope)
        if self._keys and not self._valid(key):
            AUTH_FAILURES.inc()
            await _refuse(scope, send, 401, "unauthorized", "missing or invalid X-API-Key")
            return
        ident = hashlib.sha256(key).hexdigest()[:16] if key else _client(scope)
        if not await self._limiter.hit(self._limit, ident):
            reset_at, _ = await self._limiter.get_window_stats(self._limit, ident)
            retry = max(1, math.ceil(reset_at - time.time()))
            RATE_LIMITED.inc()
            await _refuse(
                scope,
                send,
                429,
                "rate_limited",
                f"rate limit exceeded; retry in {retry} s",
                {"retry-after": str(retry)},
            )
            return
        if kind == "http" and scope.get("method") in _BODY_METHODS:
            body = await self._read_body(scope, receive)
            if body is None:
                await _refuse(
                    scope,
                    send,
                    413,
                    "payload_too_large",
                    f"request body larger than {self._max_body} bytes",
                )
                return
            receive = _replay(body)
        await self.app(scope, receive, send)

    def _valid(self, key: bytes | None) -> bool:
        if not key:
            return False
        ok = False
        for k in self._keys:  # compare against every key: no timing hint of which matched
            ok |= hmac.compare_digest(key, k)
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
                await _refuse(scope, send, 500, "internal_error", "internal error")
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


def _query_key(scope: Scope) -> bytes | None:
    qs = scope.get("query_string", b"").decode("latin-1")
    values = parse_qs(qs).get("apiKey") or parse_qs(qs).get("api_key")
    return values[0].encode() if values else None


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return f"ip:{client[0]}" if client else "anonymous"


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive


async def _refuse(
    scope: Scope,
    send: Send,
    status: int,
    code: str,
    message: str,
    headers: dict[str, str] | None = None,
) -> None:
    if scope["type"] == "websocket":
        # 1008 = policy violation; the handshake is refused before accept
        await send({"type": "websocket.close", "code": 1008, "reason": message[:120]})
        return
    body = error_body(code, message)
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
