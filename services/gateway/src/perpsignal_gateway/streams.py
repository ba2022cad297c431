"""WebSocket fan-out: each client has a bounded queue; overflowing it drops that client.

The consumer only does `put_nowait` on each matching client's queue, so a slow client never
slows the consumer or the other clients; a client that cannot keep up is closed with 1013
("try again later") and may reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

import orjson
from fastapi import WebSocket, WebSocketDisconnect
from prometheus_client import Counter, Gauge

from perpsignal_common.events.base import Event
from perpsignal_common.events.market import LiquidationOrderV1
from perpsignal_common.events.signals import SignalJudgedV1
from perpsignal_gateway.schemas import LiquidationOut, signal_out
from perpsignal_gateway.symbols import normalize_symbol

log = logging.getLogger(__name__)

WS_CLIENTS = Gauge("gateway_ws_clients", "Connected WebSocket clients", ["stream"])
WS_DROPPED = Counter(
    "gateway_ws_dropped_clients_total", "Clients dropped for overflowing their buffer", ["stream"]
)
WS_SENT = Counter("gateway_ws_messages_total", "Messages queued to clients", ["stream"])

OVERFLOW_CLOSE_CODE = 1013


@dataclass
class Subscription:
    """What a client wants: symbols (empty = all), a minimum score and verdicts."""

    symbols: set[str] = field(default_factory=set)
    min_score: float = 0.0
    verdicts: set[str] = field(default_factory=set)

    def matches_signal(self, event: SignalJudgedV1) -> bool:
        """Return True when the signal passes every filter."""
        if self.symbols and event.symbol not in self.symbols:
            return False
        if event.score < self.min_score:
            return False
        return not self.verdicts or event.ai_verdict_layer.verdict in self.verdicts

    def matches_symbol(self, symbol: str) -> bool:
        """Return True when the symbol filter lets `symbol` through."""
        return not self.symbols or symbol in self.symbols


class Client:
    """One connected socket with its bounded queue."""

    def __init__(self, ws: WebSocket, stream: str, queue_size: int) -> None:
        self.ws = ws
        self.stream = stream
        self.queue: asyncio.Queue[str] = asyncio.Queue(maxsize=queue_size)
        self.sub = Subscription()
        self.overflowed = asyncio.Event()

    def offer(self, text: str) -> bool:
        """Queue a message without waiting; return False (and flag overflow) when full."""
        try:
            self.queue.put_nowait(text)
        except asyncio.QueueFull:
            self.overflowed.set()
            return False
        WS_SENT.labels(self.stream).inc()
        return True


class StreamHub:
    """Fan events out to the clients of `/ws/signals` and `/ws/liquidations`."""

    def __init__(self, *, queue_size: int = 256, heartbeat_s: float = 15.0) -> None:
        self.queue_size = queue_size
        self.heartbeat_s = heartbeat_s
        self.clients: dict[str, set[Client]] = {"signals": set(), "liquidations": set()}

    def publish(self, event: Event) -> None:
        """Queue `event` to every matching client (called by the read model, never blocks)."""
        if isinstance(event, SignalJudgedV1) and self.clients["signals"]:
            text: str | None = None
            for client in list(self.clients["signals"]):
                if client.sub.matches_signal(event):
                    if text is None:
                        body = signal_out(event).model_dump(mode="json", by_alias=True)
                        text = _dumps({"type": "signal", "data": body})
                    self._offer(client, text)
        elif isinstance(event, LiquidationOrderV1) and self.clients["liquidations"]:
            text = None
            for client in list(self.clients["liquidations"]):
                if client.sub.matches_symbol(event.symbol):
                    if text is None:
                        body = liquidation_out(event).model_dump(mode="json", by_alias=True)
                        text = _dumps({"type": "liquidation", "data": body})
                    self._offer(client, text)

    def _offer(self, client: Client, text: str) -> None:
        if not client.offer(text):
            WS_DROPPED.labels(client.stream).inc()
            self.clients[client.stream].discard(client)

    async def serve(self, ws: WebSocket, stream: str, sub: Subscription) -> None:
        """Run one client until it disconnects or overflows its buffer."""
        await ws.accept()
        client = Client(ws, stream, self.queue_size)
        client.sub = sub
        self.clients[stream].add(client)
        WS_CLIENTS.labels(stream).inc()
        await ws.send_text(_dumps({"type": "subscribed", "filters": _sub_json(sub)}))
        tasks = {
            asyncio.create_task(self._send_loop(client)),
            asyncio.create_task(self._receive_loop(client)),
            asyncio.create_task(client.overflowed.wait()),
        }
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, Exception):
                    await task
            self.clients[stream].discard(client)
            WS_CLIENTS.labels(stream).dec()
            if client.overflowed.is_set():
                log.info("dropped slow websocket client", extra={"stream": stream})
                with contextlib.suppress(Exception):
                    await ws.close(OVERFLOW_CLOSE_CODE, "buffer overflow: client too slow")

    async def _send_loop(self, client: Client) -> None:
        while True:
            try:
                async with asyncio.timeout(self.heartbeat_s):
                    text = await client.queue.get()
            except TimeoutError:
                text = '{"type":"heartbeat"}'
            await client.ws.send_text(text)

    async def _receive_loop(self, client: Client) -> None:
        while True:
            message = await client.ws.receive_json()
            if isinstance(message, dict) and message.get("type", "subscribe") == "subscribe":
                client.sub = parse_subscription(message)
                await client.queue.put(
                    _dumps({"type": "subscribed", "filters": _sub_json(client.sub)})
                )


def parse_subscription(raw: dict[str, object]) -> Subscription:
    """Read filters from a subscribe message or query parameters (lenient about types)."""
    symbols = _items(raw.get("symbols"))
    verdicts = _items(raw.get("verdicts"))
    try:
        min_score = float(str(raw.get("minScore", raw.get("min_score", 0)) or 0))
    except (TypeError, ValueError):
        min_score = 0.0
    return Subscription(
        symbols={normalize_symbol(s) for s in symbols},
        min_score=min_score,
        verdicts={v.upper() for v in verdicts},
    )


def _items(value: object) -> list[str]:
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list | tuple):
        return []
    return [str(v).strip() for v in value if str(v).strip()]


def liquidation_out(event: LiquidationOrderV1) -> LiquidationOut:
    """Build the API view of a liquidation order."""
    return LiquidationOut(
        symbol=event.symbol,
        venue=event.venue,
        liquidated_side=event.liquidated_side,
        price=event.price,
        quantity=event.quantity,
        notional_usd=event.notional_usd,
        timestamp=event.observed_at,
    )


def _sub_json(sub: Subscription) -> dict[str, object]:
    return {
        "symbols": sorted(sub.symbols),
        "minScore": sub.min_score,
        "verdicts": sorted(sub.verdicts),
    }


def _dumps(obj: object) -> str:
    return orjson.dumps(obj).decode()
