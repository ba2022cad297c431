"""A WebSocket session that survives: reconnect with backoff, heartbeat, resubscribe.

Each vendor stream (`binance_usdm/stream.py`, `coinglass/stream.py`) supplies the URL, the
subscribe messages (sent again after every reconnect), an optional application-level ping
(Coinglass wants the text `ping` every 20 s; Binance pings us and `websockets` answers) and a
message handler. Protocol-level pings (`ping_interval`) detect dead TCP connections; an idle
timeout catches a server that keeps the socket open but stops sending.

A key carried in the URL's query (Coinglass's `cg-api-key`) is masked in every logged
error: websockets names the URI in some of its errors (an `https://` URL: `InvalidURI`).

`send()` sends on the open connection (Binance's live SUBSCRIBE/UNSUBSCRIBE), every message
of ours at least `min_send_interval_s` apart: a vendor caps the messages a client may send
(Binance: 10 a second, then it disconnects).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from urllib.parse import parse_qsl, quote, quote_plus, urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from perpsignal_common.errors import DependencyUnavailable
from perpsignal_common.retry import RetryPolicy
from perpsignal_connectors.metrics import STREAM_RECONNECTS
from perpsignal_connectors.redact import redact

log = logging.getLogger(__name__)

MessageHandler = Callable[[str | bytes], Awaitable[None]]


def query_secrets(url: str) -> list[str]:
    """Return the query values of `url` as they may appear in an error (raw and encoded)."""
    values = [v for _, v in parse_qsl(urlsplit(url).query) if v]
    return sorted({f(v) for v in values for f in (str, quote, quote_plus)}, key=len, reverse=True)


class WsStream:
    """Keep one WebSocket subscription alive until `stop` is set."""

    def __init__(
        self,
        vendor: str,
        name: str,
        url: str,
        on_message: MessageHandler,
        *,
        subscribe: Callable[[], Sequence[str]] = tuple,
        on_connect: Callable[[], Awaitable[None]] | None = None,
        app_ping: tuple[float, str] | None = None,
        ping_interval_s: float | None = 20.0,
        idle_timeout_s: float | None = 120.0,
        retry: RetryPolicy | None = None,
        stable_after_s: float = 30.0,
        min_send_interval_s: float = 0.0,
    ) -> None:
        self.vendor = vendor
        self.name = name
        self.url = url
        self._secrets = query_secrets(url)
        self._on_message = on_message
        self._subscribe = subscribe
        self._on_connect = on_connect
        self._app_ping = app_ping
        self._ping_interval_s = ping_interval_s
        self._idle_timeout_s = idle_timeout_s
        self._retry = retry or RetryPolicy(base_delay_s=0.5, max_delay_s=30.0)
        self._stable_after_s = stable_after_s
        self._min_send_interval_s = min_send_interval_s
        self._ws: ClientConnection | None = None  # the open connection, once subscribed
        self._send_lock = asyncio.Lock()
        self._last_send = 0.0
        self.connections = 0
        self.connected = False
        self.connected_since: float | None = None
        self.failing = False

    async def run(self, stop: asyncio.Event) -> None:
        """Connect, subscribe and dispatch messages; reconnect on any failure until `stop`."""
        attempt = 0
        while not stop.is_set():
            started = time.monotonic()
            try:
                await self._session(stop)
            except (asyncio.CancelledError, DependencyUnavailable):
                # our own Kafka/DB failing in a handler is not the vendor's fault: stop
                raise
            except (OSError, TimeoutError, WebSocketException) as exc:
                self._note_failure(repr(exc))
            except Exception as exc:
                self._note_failure(f"{type(exc).__name__}: {exc}")
            finally:
                self.connected = False
                self.connected_since = None
                self._ws = None
            if stop.is_set():
                return
            STREAM_RECONNECTS.labels(self.vendor, self.name).inc()
            # A session that lived a while resets the backoff: the next drop is a new incident
            attempt = 1 if time.monotonic() - started > self._stable_after_s else attempt + 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._retry.delay(attempt))

    def _note_failure(self, error: str) -> None:
        # one warning per incident (until a session connects again), not one per retry
        for secret in self._secrets:
            error = error.replace(secret, "***")
        error = redact(error)  # a key the vendor echoed in its close reason or status
        extra = {"vendor": self.vendor, "stream": self.name, "error": error[:300]}
        if not self.failing:
            self.failing = True
            log.warning("stream disconnected; reconnecting with backoff", extra=extra)
        else:
            log.debug("stream reconnect failed; retrying", extra=extra)

    async def _session(self, stop: asyncio.Event) -> None:
        async with connect(
            self.url,
            ping_interval=self._ping_interval_s,
            ping_timeout=20,
            open_timeout=10,
            close_timeout=2,
            max_size=2**22,
        ) as ws:
            for msg in self._subscribe():
                await self._paced(ws, msg)
            self._ws = ws
            self.connections += 1
            self.connected = True
            self.connected_since = time.time()
            again = " again" if self.failing else ""
            self.failing = False
            log.info(f"stream connected{again}", extra={"vendor": self.vendor, "stream": self.name})
            if self._on_connect is not None:
                await self._on_connect()
            pinger = asyncio.create_task(self._ping(ws)) if self._app_ping else None
            try:
                await self._read(ws, stop)
            finally:
                if pinger is not None:
                    pinger.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await pinger

    async def send(self, message: str, connection: int | None = None) -> bool:
        """Send `message` on the open connection (number `connection`, when given), paced.

        Returns False, sending nothing, when there is no open connection (or another one):
        a new connection sends the subscriptions of that moment anyway.
        """
        ws = self._ws
        if ws is None or (connection is not None and connection != self.connections):
            return False
        try:
            await self._paced(ws, message)
        except ConnectionClosed:
            return False  # the session ends and reconnects on its own
        return True

    async def _paced(self, ws: ClientConnection, message: str) -> None:
        async with self._send_lock:
            wait = self._last_send + self._min_send_interval_s - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            await ws.send(message)
            self._last_send = time.monotonic()

    async def _read(self, ws: ClientConnection, stop: asyncio.Event) -> None:
        stopper = asyncio.create_task(stop.wait())
        try:
            while not stop.is_set():
                recv = asyncio.create_task(ws.recv())
                done, _ = await asyncio.wait(
                    {recv, stopper},
                    timeout=self._idle_timeout_s,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if recv not in done:
                    recv.cancel()
                    with contextlib.suppress(asyncio.CancelledError, WebSocketException):
                        await recv
                    if stop.is_set():
                        return
                    raise TimeoutError(f"no message for {self._idle_timeout_s}s")
                await self._on_message(recv.result())
        finally:
            stopper.cancel()

    async def _ping(self, ws: ClientConnection) -> None:
        assert self._app_ping is not None
        interval, payload = self._app_ping
        while True:
            await asyncio.sleep(interval)
            await self._paced(ws, payload)
