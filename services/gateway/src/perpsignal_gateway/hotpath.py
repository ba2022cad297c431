"""Serve the two hottest reads straight from the read model's pre-rendered JSON.

`GET /signals/{symbol}` (no query) and `POST /invoke` of `get_signal` with only a `symbol`
argument are answered before routing when the symbol has a signal: same bytes, same status,
same headers as the routed endpoints (the contract tests compare them), after the security
middleware has authenticated, rate-limited and size-limited the request. Anything else —
debug mode, unknown symbols, other arguments — falls through to FastAPI unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from perpsignal_gateway.errors import json_media_type
from perpsignal_gateway.security import ASGIApp, Message, Receive, Scope, Send
from perpsignal_gateway.symbols import is_path_symbol, is_symbol

_JSON = [(b"content-type", b"application/json")]


@dataclass(frozen=True)
class _Route:
    path: str  # what the metrics middleware labels the request with


SIGNAL_ROUTE = _Route("/signals/{symbol}")
INVOKE_ROUTE = _Route("/invoke")


class HotPathMiddleware:
    """Answer cached signal reads without routing, validation or serialisation."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            method = scope["method"]
            if method == "GET" and path.startswith("/signals/") and not scope["query_string"]:
                symbol = path[len("/signals/") :]
                # the route's own pattern: what it refuses (422) is never answered here
                body = self._signal(scope, symbol) if is_path_symbol(symbol) else None
                if body is not None:
                    scope["route"] = SIGNAL_ROUTE
                    await _respond(send, body)
                    return
            elif method == "POST" and path == "/invoke" and json_content(scope):
                message = await receive()
                raw = message.get("body", b"") if not message.get("more_body") else None
                body = self._invoke(scope, raw) if raw is not None else None
                if body is not None:
                    scope["route"] = INVOKE_ROUTE
                    await _respond(send, body)
                    return
                receive = _replay(message, receive)
        await self.app(scope, receive, send)

    @staticmethod
    def _signal(scope: Scope, symbol: str) -> bytes | None:
        platform = getattr(scope["app"].state, "platform", None)
        if platform is None:
            return None
        body: bytes | None = platform.cached_signal(symbol)
        return body

    @classmethod
    def _invoke(cls, scope: Scope, raw: bytes) -> bytes | None:
        try:
            data: Any = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(data, dict) or data.get("operation") != "get_signal":
            return None
        args = data.get("args") if len(data) == 2 and "args" in data else None
        if args is None:
            args = {k: v for k, v in data.items() if k != "operation"}
        if not isinstance(args, dict) or set(args) != {"symbol"}:
            return None
        symbol = args["symbol"]
        # the argument's own pattern: what it refuses (422) is never answered here
        if not isinstance(symbol, str) or not is_symbol(symbol):
            return None
        body = cls._signal(scope, symbol)
        if body is None:
            return None
        return b'{"operation":"get_signal","result":' + body + b"}"


def json_content(scope: Scope) -> bool:
    """Return True when the request's body is JSON by its Content-Type, as the route reads it."""
    for name, value in scope.get("headers", ()):
        if name == b"content-type":
            return json_media_type(value.decode("latin-1"))
    return False


async def _respond(send: Send, body: bytes) -> None:
    headers = [*_JSON, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _replay(first: Message, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return first
        return await receive()

    return replay
