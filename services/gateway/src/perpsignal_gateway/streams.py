"""WebSocket fan-out: each client has a bounded buffer; overflowing it drops that client.

The consumer never waits on a client. A message is serialised once; a client that is keeping
up gets the frame bytes (built once per framing, see `wsframes`) written straight to its
transport. A client whose socket is full (its transport is over its high-water mark) or that
already has messages waiting gets the message on its bounded queue instead, which its own
task sends in order; a client that cannot keep up overflows the queue and is closed with 1013
("try again later") and may reconnect. A client that stops reading while the stream is quiet
never overflows: its task waits on the full socket, so every send (a heartbeat too) has a
deadline (`send_timeout_s`), past which it is closed with 1013 the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, get_args

import orjson
from fastapi import WebSocket, WebSocketDisconnect
from prometheus_client import Counter, Gauge

from perpsignal_common.events.base import Event
from perpsignal_common.events.market import LiquidationOrderV1
from perpsignal_common.events.signals import SignalJudgedV1, Verdict
from perpsignal_gateway.schemas import LiquidationOut, signal_out
from perpsignal_gateway.symbols import ascii_upper, is_symbol, normalize_symbol
from perpsignal_gateway.wsframes import DirectWriter, Outgoing

log = logging.getLogger(__name__)

WS_CLIENTS = Gauge("perpsignal_gateway_ws_clients", "Connected WebSocket clients", ["stream"])
WS_DROPPED = Counter(
    "perpsignal_gateway_ws_dropped_clients_total",
    "Clients dropped for overflowing their buffer",
    ["stream"],
)
WS_SENT = Counter("perpsignal_gateway_ws_messages_total", "Messages queued to clients", ["stream"])
WS_REFUSED = Counter(
    "perpsignal_gateway_ws_refused_total",
    "WebSockets refused: the key had GATEWAY_WS_MAX_PER_KEY open already",
    ["stream"],
)

OVERFLOW_CLOSE_CODE = 1013
POLICY_CLOSE_CODE = 1008  # a subscription past MAX_FILTER_ITEMS
UNSUPPORTED_CLOSE_CODE = 1003  # a message that is not JSON text
WS_TOO_MANY_CLOSE_CODE = 4429  # as the security middleware's rate-limited socket
# what a client may send: each message is parsed and each symbol normalised on the event loop
# every other client and request shares, so a flood of large subscriptions would stall them
# all (a 64 KiB list of symbols costs ~10 ms). A venue lists a few hundred perpetuals;
# a dashboard changes its filters now and then
MAX_FILTER_ITEMS = 1000
MESSAGE_BURST = 20
MESSAGES_PER_S = 1.0
HEARTBEAT = '{"type":"heartbeat"}'
VERDICTS = frozenset(get_args(Verdict))
CLOSE_TIMEOUT_S = 5.0  # a dropped client that does not take its close frame is cut off
SEND_TIMEOUT_S = 10.0


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


class SubscriptionRefused(ValueError):
    """A subscription past the limits: the socket is closed with `code` and the message."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class ClientStalled(Exception):
    """A send to the client missed its deadline: the socket is full and not being read."""


class Client:
    """One connected socket with its bounded queue (and, when possible, a direct writer)."""

    def __init__(
        self, ws: WebSocket, stream: str, queue_size: int, writer: DirectWriter | None = None
    ) -> None:
        self.ws = ws
        self.stream = stream
        self.queue: asyncio.Queue[str] = asyncio.Queue(maxsize=queue_size)
        self.sub = Subscription()
        self.overflowed = asyncio.Event()
        self.stalled = False  # a send missed its deadline: the client stopped reading
        self.writer = writer
        self.sending = False  # the client's task is inside send_text
        self.last_sent = asyncio.get_running_loop().time()
        self.refused: SubscriptionRefused | None = None
        self._allowance = float(MESSAGE_BURST)  # messages it may send now (a token bucket)
        self._counted_at = self.last_sent

    def take_message(self, now: float) -> bool:
        """Count one message from the client; False past MESSAGE_BURST at MESSAGES_PER_S."""
        elapsed = now - self._counted_at
        self._counted_at = now
        self._allowance = min(float(MESSAGE_BURST), self._allowance + elapsed * MESSAGES_PER_S)
        if self._allowance < 1:
            return False
        self._allowance -= 1
        return True

    def offer(self, text: str) -> bool:
        """Queue a message without waiting; return False (and flag overflow) when full."""
        try:
            self.queue.put_nowait(text)
        except asyncio.QueueFull:
            self.overflowed.set()
            return False
        return True

    def deliver(self, message: Outgoing, now: float) -> bool:
        """Write `message` now if the socket takes it, else queue it; False on overflow."""
        writer = self.writer
        if writer is not None and not self.sending and self.queue.empty() and writer.ready():
            try:
                writer.write(message.frame(writer.framing))
            except Exception:  # the queued path will meet the error and end the client
                self.writer = None
            else:
                self.last_sent = now
                return True
        return self.offer(message.text)


class StreamHub:
    """Fan events out to the clients of `/ws/signals` and `/ws/liquidations`."""

    def __init__(
        self,
        *,
        queue_size: int = 256,
        heartbeat_s: float = 15.0,
        close_timeout_s: float = CLOSE_TIMEOUT_S,
        send_timeout_s: float = SEND_TIMEOUT_S,
        max_per_client: int = 20,
    ) -> None:
        self.queue_size = queue_size
        self.heartbeat_s = heartbeat_s
        self.close_timeout_s = close_timeout_s
        self.send_timeout_s = send_timeout_s
        self.clients: dict[str, set[Client]] = {"signals": set(), "liquidations": set()}
        # open sockets per caller identity (key, or client address when auth is off): each
        # holds a queue, two tasks and a buffer, so one key cannot open thousands
        self.max_per_client = max_per_client
        self.open: dict[str, int] = {}

    def publish(self, event: Event) -> None:
        """Send `event` to every matching client (called by the read model, never blocks)."""
        if isinstance(event, SignalJudgedV1) and self.clients["signals"]:
            signals = [c for c in self.clients["signals"] if c.sub.matches_signal(event)]
            if signals:
                body = signal_out(event).model_dump(mode="json", by_alias=True)
                self._fan_out("signals", signals, _dumps({"type": "signal", "data": body}))
        elif isinstance(event, LiquidationOrderV1) and self.clients["liquidations"]:
            symbol = event.symbol
            liqs = [c for c in self.clients["liquidations"] if c.sub.matches_symbol(symbol)]
            if liqs:
                body = liquidation_out(event).model_dump(mode="json", by_alias=True)
                self._fan_out("liquidations", liqs, _dumps({"type": "liquidation", "data": body}))

    def _fan_out(self, stream: str, clients: list[Client], text: str) -> None:
        message = Outgoing(text)
        now = asyncio.get_running_loop().time()
        dropped = 0
        for client in clients:
            if not client.deliver(message, now):
                dropped += 1
                self.clients[stream].discard(client)
        if dropped:
            WS_DROPPED.labels(stream).inc(dropped)
        if len(clients) > dropped:
            WS_SENT.labels(stream).inc(len(clients) - dropped)

    async def serve(
        self, ws: WebSocket, stream: str, sub: Subscription, ident: str = "anonymous"
    ) -> None:
        """Run one client until it disconnects or overflows its buffer.

        Past `max_per_client` open sockets of one identity, the new one is accepted and
        closed with 4429 (rate limited), as the security middleware refuses a socket.
        """
        await ws.accept()
        if self.open.get(ident, 0) >= self.max_per_client:
            WS_REFUSED.labels(stream).inc()
            await ws.close(
                WS_TOO_MANY_CLOSE_CODE,
                f"at most {self.max_per_client} open WebSockets per key",
            )
            return
        self.open[ident] = self.open.get(ident, 0) + 1
        try:
            await self._serve(ws, stream, sub)
        finally:
            self.open[ident] -= 1
            if not self.open[ident]:
                del self.open[ident]

    async def _serve(self, ws: WebSocket, stream: str, sub: Subscription) -> None:
        client = Client(
            ws, stream, self.queue_size, DirectWriter.attach(getattr(ws, "scope", None))
        )
        client.sub = sub
        self.clients[stream].add(client)
        WS_CLIENTS.labels(stream).inc()
        tasks: set[asyncio.Task[Any]] = set()
        # a client gone before "subscribed" reaches it must be unregistered too
        try:
            client.sending = True  # "subscribed" comes first: meanwhile signals are queued
            try:
                await self._send(client, _dumps({"type": "subscribed", "filters": _sub_json(sub)}))
            finally:
                client.sending = False
            tasks = {
                asyncio.create_task(self._send_loop(client)),
                asyncio.create_task(self._receive_loop(client)),
                asyncio.create_task(client.overflowed.wait()),
            }
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        except ClientStalled:
            pass  # not even "subscribed" was taken: closed below
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, Exception):
                    await task
            self.clients[stream].discard(client)
            WS_CLIENTS.labels(stream).dec()
            if client.stalled:
                WS_DROPPED.labels(stream).inc()
                log.info(
                    "dropped websocket client that stopped reading",
                    extra={"stream": stream, "send_timeout_s": self.send_timeout_s},
                )
                await self._close(
                    client,
                    OVERFLOW_CLOSE_CODE,
                    f"send timeout: nothing read for {self.send_timeout_s:g} s",
                )
            elif client.overflowed.is_set():
                log.info("dropped slow websocket client", extra={"stream": stream})
                await self._close(client, OVERFLOW_CLOSE_CODE, "buffer overflow: client too slow")
            elif client.refused is not None:
                log.info(
                    "refused websocket subscription",
                    extra={"stream": stream, "reason": str(client.refused)},
                )
                await self._close(client, client.refused.code, str(client.refused))

    async def _close(self, client: Client, code: int, reason: str) -> None:
        # the close frame waits behind a full socket: a client that neither takes it nor
        # answers it within close_timeout_s is cut off (reset), so it cannot hold the socket
        writer = client.writer
        try:
            async with asyncio.timeout(self.close_timeout_s):
                await client.ws.close(code, reason)
                if writer is not None:
                    await writer.wait_closed()
        except TimeoutError:
            if writer is not None:
                writer.abort()
        except Exception:  # the client is gone either way
            log.debug("closing a dropped websocket client failed", exc_info=True)

    async def _send_loop(self, client: Client) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                async with asyncio.timeout_at(client.last_sent + self.heartbeat_s):
                    text = await client.queue.get()
            except TimeoutError:
                if loop.time() - client.last_sent < self.heartbeat_s:
                    continue  # a message was written directly meanwhile: not silent
                text = HEARTBEAT
            client.sending = True
            try:
                await self._send(client, text)
            finally:
                client.sending = False
            client.last_sent = loop.time()

    async def _send(self, client: Client, text: str) -> None:
        """Send `text`; a client that does not take it within send_timeout_s is stalled.

        Raises `ClientStalled` (ending the client's task) after marking it.
        """
        try:
            async with asyncio.timeout(self.send_timeout_s):
                await client.ws.send_text(text)
        except TimeoutError:
            client.stalled = True
            raise ClientStalled from None

    async def _receive_loop(self, client: Client) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                message = await client.ws.receive_json()
            except (ValueError, KeyError, TypeError, RecursionError):
                # a typo, a binary frame or JSON nested past the parser: say so, never just
                # drop the connection (the client saw 1006 and no reason)
                client.refused = SubscriptionRefused(
                    UNSUPPORTED_CLOSE_CODE, 'send JSON text: {"type": "subscribe", ...}'
                )
                return
            if not client.take_message(loop.time()):
                client.refused = SubscriptionRefused(
                    WS_TOO_MANY_CLOSE_CODE,
                    f"too many messages: at most {MESSAGE_BURST} at once, then "
                    f"{MESSAGES_PER_S:g} per second",
                )
                return
            if isinstance(message, dict) and message.get("type", "subscribe") == "subscribe":
                try:
                    client.sub = parse_subscription(message)
                except SubscriptionRefused as exc:
                    client.refused = exc
                    return
                await client.queue.put(
                    _dumps({"type": "subscribed", "filters": _sub_json(client.sub)})
                )


def parse_subscription(raw: Mapping[str, object]) -> Subscription:
    """Read filters from a subscribe message or query parameters (lenient about types).

    Raises `SubscriptionRefused` for more than MAX_FILTER_ITEMS symbols or verdicts, and for
    a symbol, verdict or minimum score the REST routes refuse: a filter that silently never
    matches ("CONFIRMED", an invisible joiner) or always does (a NaN minimum) is no filter.
    """
    symbols = _items(raw.get("symbols"))
    bad = next((s for s in symbols if not is_symbol(s)), None)
    if bad is not None:
        raise SubscriptionRefused(
            POLICY_CLOSE_CODE, f"not a symbol: {bad[:20]!a} (letters, digits, _ . : / + $ -)"
        )
    verdicts = _items(raw.get("verdicts"))
    try:
        min_score = float(str(raw.get("minScore", raw.get("min_score", 0)) or 0))
    except (TypeError, ValueError):
        min_score = 0.0
    if not math.isfinite(min_score):
        raise SubscriptionRefused(POLICY_CLOSE_CODE, "minScore must be a finite number")
    # a-z only: "\u017fkip".upper() is "SKIP" (see symbols.ascii_upper)
    wanted = {ascii_upper(v) for v in verdicts}
    unknown = sorted(wanted - VERDICTS)
    if unknown:
        raise SubscriptionRefused(
            POLICY_CLOSE_CODE,
            f"not a verdict: {unknown[0][:20]!a} (one of {', '.join(sorted(VERDICTS))})",
        )
    return Subscription(
        symbols={normalize_symbol(s) for s in symbols},
        min_score=min_score,
        verdicts=wanted,
    )


def _items(value: object) -> list[str]:
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list | tuple):
        return []
    items = [str(v).strip() for v in value if str(v).strip()]
    if len(items) > MAX_FILTER_ITEMS:
        raise SubscriptionRefused(
            POLICY_CLOSE_CODE, f"at most {MAX_FILTER_ITEMS} symbols or verdicts per subscription"
        )
    return items


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
