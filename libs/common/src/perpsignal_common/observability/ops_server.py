"""`/healthz`, `/readyz` and `/metrics` for the non-HTTP services, as a tiny ASGI app.

The server has no authentication, so it listens where `OPS_HOST` says: loopback by default,
0.0.0.0 only where something else guards the port (Kubernetes NetworkPolicies, a compose
network).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

import uvicorn
from prometheus_client import make_asgi_app

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


JsonRoutes = Mapping[str, Callable[[], Any]]


def build_ops_app(
    is_ready: Callable[[], bool],
    routes: JsonRoutes | None = None,
) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """Return an ASGI app serving health, readiness, Prometheus metrics and `routes`.

    `routes` maps a path to a function returning a JSON-serialisable value (e.g. the
    ingestor's `/shards`), answered on GET.
    """
    extra = dict(routes or {})
    # prometheus-client's own app: content negotiation (OpenMetrics), gzip, `name[]` filters
    metrics_app = make_asgi_app()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        path = scope["path"]
        if path == "/healthz":
            status, body, ctype = 200, b'{"status":"ok"}', b"application/json"
        elif path == "/readyz":
            ready = is_ready()
            status = 200 if ready else 503
            body = b'{"status":"ready"}' if ready else b'{"status":"not ready"}'
            ctype = b"application/json"
        elif path == "/metrics":
            await metrics_app(scope, receive, send)
            return
        elif path in extra:
            status, ctype = 200, b"application/json"
            body = json.dumps(extra[path]()).encode()
        else:
            status, body, ctype = 404, b'{"error":"not found"}', b"application/json"
        await send(
            {"type": "http.response.start", "status": status, "headers": [(b"content-type", ctype)]}
        )
        await send({"type": "http.response.body", "body": body})

    return app


class _EmbeddedServer(uvicorn.Server):
    # Our runtime owns SIGTERM/SIGINT; uvicorn must not install its own handlers
    @contextlib.contextmanager
    def capture_signals(self):  # type: ignore[no-untyped-def]
        yield


class OpsServer:
    """Run the ops app on `host:port` inside the current event loop."""

    def __init__(
        self,
        host: str,
        port: int,
        is_ready: Callable[[], bool],
        routes: JsonRoutes | None = None,
    ) -> None:
        config = uvicorn.Config(
            build_ops_app(is_ready, routes),
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            lifespan="off",
        )
        self._server = _EmbeddedServer(config)
        self._task: asyncio.Task[None] | None = None
        self.host = host
        self.port = port

    async def start(self) -> None:
        """Start serving; return once the socket is bound."""
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():
                self._task.result()  # raises the bind error
            await asyncio.sleep(0.01)
        sockets = self._server.servers[0].sockets if self._server.servers else []
        if sockets:
            self.port = sockets[0].getsockname()[1]
        # unauthenticated (metrics, DLQ counts): anything but loopback must be deliberate
        log.info("ops server listening", extra={"host": self.host, "port": self.port})

    async def stop(self) -> None:
        """Stop serving."""
        self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._task, 5)
