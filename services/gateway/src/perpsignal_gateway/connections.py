"""Connection hygiene uvicorn lacks: a deadline for each request, and a cap that sheds idle sockets.

Uvicorn's h11 protocol arms its keep-alive timer only after a response: a connection that
never sends a byte, or trickles a request head one byte at a time (slowloris), or starts a
body and stalls, is kept forever, and enough of them exhaust the file handles so that no
legitimate client is served. `guarded_h11()` returns an h11 protocol class that

* closes a connection whose request head is not complete `header_timeout_s` after the
  connection opened or the client started sending it;
* closes one whose request body is not complete `body_timeout_s` after its head;
* above `max_connections` open sockets, closes the longest-idle connections (no request in
  flight) to admit the new one, so a flood of idle sockets never locks clients out; when
  none is idle the newcomer is closed instead.

WebSockets are handed to their own protocol after the upgrade, with its ping/pong timeouts.
"""

from __future__ import annotations

import asyncio
import resource
from typing import Any

import h11
from prometheus_client import Counter
from uvicorn.protocols.http.h11_impl import H11Protocol

CONNECTIONS_CLOSED = Counter(
    "perpsignal_gateway_connections_closed_total",
    "Connections the gateway closed to protect itself",
    ["reason"],
)
FD_HEADROOM = 64  # file handles kept for the database, Kafka, vendors and logs


def connection_cap(configured: int) -> int:
    """Return `configured`, lowered to stay under the process's file-handle limit."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return configured
    return max(16, min(configured, soft - FD_HEADROOM))


def guarded_h11(
    *, header_timeout_s: float, body_timeout_s: float, max_connections: int
) -> type[H11Protocol]:
    """Return an h11 protocol class with request deadlines and an idle-shedding cap."""

    class GuardedH11Protocol(H11Protocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._deadline: asyncio.TimerHandle | None = None
            self._deadline_for: object = None
            self._opened_at = 0.0
            self._last_active = 0.0

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._opened_at = self._last_active = self.loop.time()
            self._arm(h11.IDLE, header_timeout_s)
            if len(self.connections) > max_connections:
                self._shed()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            self._last_active = self.loop.time()
            super().data_received(data)
            self._track()

        def on_response_complete(self) -> None:
            self._last_active = self.loop.time()
            self._disarm()  # idle between requests: uvicorn's keep-alive timer takes over
            super().on_response_complete()
            if self.conn.their_state is not h11.IDLE:
                self._track()  # a pipelined request was already buffered

        def _track(self) -> None:
            if self.transport.is_closing() or self.transport.get_protocol() is not self:
                self._disarm()  # closed, or upgraded to a WebSocket
                return
            state = self.conn.their_state
            if state is h11.IDLE and self.timeout_keep_alive_task is None:
                self._arm(h11.IDLE, header_timeout_s)  # a request head is on its way
            elif state is h11.SEND_BODY:
                self._arm(h11.SEND_BODY, body_timeout_s)
            elif state is not h11.IDLE:
                self._disarm()  # the request is complete: the app has it

        def _arm(self, phase: object, delay: float) -> None:
            if self._deadline is not None and self._deadline_for is phase:
                return  # the deadline runs from the start of the phase, not the last byte
            self._disarm()
            self._deadline_for = phase
            self._deadline = self.loop.call_later(delay, self._expire, phase)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
            self._deadline = None
            self._deadline_for = None

        def _expire(self, phase: object) -> None:
            self._deadline = None
            if self.transport.is_closing():
                return
            CONNECTIONS_CLOSED.labels(
                "header_timeout" if phase is h11.IDLE else "body_timeout"
            ).inc()
            if self.cycle is not None and not self.cycle.response_complete:
                self.cycle.disconnected = True
            self.transport.close()

        def _idle(self) -> bool:
            busy = self.cycle is not None and not self.cycle.response_complete
            return not busy and self.conn.their_state in (h11.IDLE, h11.SEND_BODY)

        def _shed(self) -> None:
            idle = [
                c
                for c in self.connections
                if isinstance(c, GuardedH11Protocol) and c is not self and c._idle()
            ]
            excess = len(self.connections) - max_connections
            if not idle:
                CONNECTIONS_CLOSED.labels("over_capacity").inc()
                self.transport.close()
                return
            idle.sort(key=lambda c: c._last_active)
            for victim in idle[:excess]:
                CONNECTIONS_CLOSED.labels("shed_idle").inc()
                victim._disarm()
                victim.transport.close()

    return GuardedH11Protocol
