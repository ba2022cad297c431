"""WebSockets: filters and heartbeat over a real server; bounded buffers and slow clients."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
import uvicorn
import websockets
from fastapi import WebSocketDisconnect
from prometheus_client import REGISTRY
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

from perpsignal_common.embedded import free_port
from perpsignal_gateway.main import create_app
from perpsignal_gateway.schemas import signal_out
from perpsignal_gateway.streams import (
    MAX_FILTER_ITEMS,
    MESSAGE_BURST,
    OVERFLOW_CLOSE_CODE,
    StreamHub,
    Subscription,
)
from tests.helpers import eventually
from tests.unit.gateway import builders as b
from tests.unit.gateway.conftest import RecordingProducer, settings


class _QuietServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self):  # type: ignore[no-untyped-def,override]
        yield


@pytest.fixture
async def server() -> AsyncIterator[tuple[Any, str]]:
    async with _serving(gateway_ws_heartbeat_s=0.3) as (app, url):
        yield app, url.removesuffix("/ws/signals?apiKey=k1")


async def _next_of_type(ws: Any, kind: str) -> dict[str, Any]:
    async with asyncio.timeout(5):
        while True:
            msg = json.loads(await ws.recv())
            if msg["type"] == kind:
                return msg


async def test_signals_stream_applies_subscription_filters(server) -> None:
    app, base = server
    async with websockets.connect(f"{base}/ws/signals?apiKey=k1") as ws:
        await _next_of_type(ws, "subscribed")
        await ws.send(
            json.dumps(
                {
                    "type": "subscribe",
                    "symbols": ["btc", "ETH"],
                    "minScore": 60,
                    "verdicts": ["CONFIRM"],
                }
            )
        )
        sub = await _next_of_type(ws, "subscribed")
        assert sub["filters"] == {
            "symbols": ["BTCUSDT", "ETHUSDT"],
            "minScore": 60.0,
            "verdicts": ["CONFIRM"],
        }
        model = app.state.model
        model.apply(b.signal("SOLUSDT", score=90))  # symbol filtered out
        model.apply(b.signal("BTCUSDT", score=50))  # below min score
        model.apply(b.signal("ETHUSDT", score=75, verdict="SKIP"))  # verdict filtered out
        model.apply(b.signal("ETHUSDT", score=70, verdict="CONFIRM"))  # passes
        got = await _next_of_type(ws, "signal")
        assert (got["data"]["symbol"], got["data"]["score"]) == ("ETHUSDT", 70.0)
        assert got["data"]["aiVerdictLayer"]["verdict"] == "CONFIRM"
        # nothing else was queued before the heartbeat
        assert (await _next_of_type(ws, "heartbeat"))["type"] == "heartbeat"


async def test_liquidation_stream_with_symbol_filter(server) -> None:
    app, base = server
    async with websockets.connect(
        f"{base}/ws/liquidations?symbols=ETH", additional_headers={"X-API-Key": "k1"}
    ) as ws:
        await _next_of_type(ws, "subscribed")
        app.state.model.apply(b.liquidation("BTCUSDT", notional=5000.0))
        app.state.model.apply(b.liquidation("ETHUSDT", side="SHORT", notional=1234.0))
        got = await _next_of_type(ws, "liquidation")
        assert got["data"]["symbol"] == "ETHUSDT"
        assert got["data"]["liquidatedSide"] == "SHORT"
        assert got["data"]["notionalUsd"] == 1234.0


async def test_websocket_without_key_is_refused(server) -> None:
    _, base = server
    async with websockets.connect(f"{base}/ws/signals") as ws:
        with pytest.raises(websockets.exceptions.ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401


async def test_one_key_holds_at_most_its_share_of_websockets() -> None:
    async with _serving(gateway_ws_max_per_key=2) as (_, url):
        liq = url.replace("/ws/signals", "/ws/liquidations")
        async with websockets.connect(url) as a, websockets.connect(liq) as b:
            for ws in (a, b):  # both streams count
                assert (await _next_of_type(ws, "subscribed"))["type"] == "subscribed"
            async with websockets.connect(url) as third:
                with pytest.raises(websockets.exceptions.ConnectionClosed) as closed:
                    await _next_of_type(third, "subscribed")
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4429
            await a.close()

            async def replaced() -> bool:  # the closed socket's place is free again
                try:
                    async with websockets.connect(url) as ws:
                        return (await _next_of_type(ws, "subscribed"))["type"] == "subscribed"
                except websockets.exceptions.ConnectionClosed:
                    return False  # the server has not seen the close yet

            await eventually(replaced, timeout=5, what="a free place after a close")


class FakeSocket:
    """A WebSocket whose reader may stall forever (a slow client)."""

    def __init__(self, *, stalled: bool) -> None:
        self.stalled = stalled
        self.sent: list[dict[str, Any]] = []
        self.closed_with: int | None = None
        self._never = asyncio.Event()

    async def accept(self) -> None:
        return None

    async def send_text(self, text: str) -> None:
        if self.stalled and self.sent:
            await self._never.wait()  # the kernel buffer is full: the write never completes
        self.sent.append(json.loads(text))

    async def receive_json(self) -> Any:
        await self._never.wait()

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.closed_with = code


async def test_slow_client_is_dropped_and_never_slows_the_others() -> None:
    hub = StreamHub(queue_size=8, heartbeat_s=60)
    slow, fast = FakeSocket(stalled=True), FakeSocket(stalled=False)
    slow_task = asyncio.create_task(hub.serve(slow, "signals", Subscription()))  # type: ignore[arg-type]
    fast_task = asyncio.create_task(hub.serve(fast, "signals", Subscription()))  # type: ignore[arg-type]
    await eventually(lambda: len(hub.clients["signals"]) == 2, timeout=5, what="2 clients")
    for n in range(40):
        hub.publish(b.signal("BTCUSDT", score=float(n)))  # never awaits: the consumer side
        await asyncio.sleep(0.001)  # a consumer yields on I/O between records
    await asyncio.wait_for(slow_task, 5)  # serve() returns: the slow client was dropped
    assert slow.closed_with == OVERFLOW_CLOSE_CODE
    await eventually(
        lambda: len([m for m in fast.sent if m["type"] == "signal"]) == 40,
        timeout=5,
        what="fast client got all 40",
    )
    scores = [m["data"]["score"] for m in fast.sent if m["type"] == "signal"]
    assert scores == [float(n) for n in range(40)]
    assert hub.clients["signals"] == {c for c in hub.clients["signals"] if c.ws is fast}
    fast_task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await fast_task


class GoneSocket(FakeSocket):
    """A client that disconnected right after the handshake: every send fails."""

    async def send_text(self, text: str) -> None:
        raise WebSocketDisconnect(1006)


def _connected() -> float | None:
    return REGISTRY.get_sample_value("perpsignal_gateway_ws_clients", {"stream": "signals"})


async def test_a_client_gone_before_its_subscribed_message_leaves_no_subscriber() -> None:
    hub = StreamHub(queue_size=8, heartbeat_s=60)
    before = _connected()
    with contextlib.suppress(WebSocketDisconnect):
        await hub.serve(GoneSocket(stalled=False), "signals", Subscription())  # type: ignore[arg-type]
    # nobody is left to fan signals out to, and the connected-clients gauge is back
    assert hub.clients["signals"] == set()
    assert _connected() == before


# --- one signal to many real sockets: every client gets the same message, none holds others up


@contextlib.asynccontextmanager
async def open_gateway(
    *, uvicorn_log_level: str = "warning", **overrides: Any
) -> AsyncIterator[tuple[Any, int]]:
    """A gateway app with `overrides` served by a real uvicorn on a free port."""
    cfg = settings(**overrides)
    app = create_app(cfg, vendor_env={}, producer=RecordingProducer(), connect_kafka=False)
    port = free_port()
    srv = _QuietServer(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level=uvicorn_log_level,
            log_config=None,  # as main() runs it: uvicorn's records reach the root handlers
            ws=cfg.gateway_ws_impl,
        )
    )
    task = asyncio.create_task(srv.serve())
    await eventually(lambda: srv.started, timeout=10, what="uvicorn started")
    try:
        yield app, port
    finally:
        srv.should_exit = True
        await asyncio.wait_for(task, 10)


@contextlib.asynccontextmanager
async def _serving(**overrides: Any) -> AsyncIterator[tuple[Any, str]]:
    async with open_gateway(gateway_api_keys="k1", **overrides) as (app, port):
        yield app, f"ws://127.0.0.1:{port}/ws/signals?apiKey=k1"


def _expected(event: Any) -> str:
    body = signal_out(event).model_dump(mode="json", by_alias=True)
    return json.dumps({"type": "signal", "data": body}, separators=(",", ":"))


async def _signals(ws: Any, n: int) -> list[str]:
    got: list[str] = []
    async with asyncio.timeout(10):
        while len(got) < n:
            text = await ws.recv()
            if json.loads(text)["type"] == "signal":
                got.append(text)
    return got


async def test_every_subscriber_receives_the_exact_message_whatever_its_compression() -> None:
    framings = [
        {"compression": None},  # plain frames
        {},  # permessage-deflate as websockets (and browsers) offer it
        {"extensions": [ClientPerMessageDeflateFactory(server_max_window_bits=10)]},
        {"extensions": [ClientPerMessageDeflateFactory(server_no_context_takeover=True)]},
    ]
    # 40 subscribers with one key: above the default per-key cap of open sockets
    async with _serving(gateway_ws_heartbeat_s=60, gateway_ws_max_per_key=40) as (app, url):
        sockets = [await websockets.connect(url, **framings[i % len(framings)]) for i in range(40)]
        try:
            for ws in sockets:
                assert json.loads(await ws.recv())["type"] == "subscribed"
            hub = app.state.hub
            # the real server takes the direct path for every one of them (what this exercises)
            assert all(c.writer is not None for c in hub.clients["signals"])
            events = [
                b.signal("BTCUSDT", score=60.0 + n, at=b.T0 + timedelta(minutes=n))
                for n in range(5)
            ]
            for event in events:
                app.state.model.apply(event)
            expected = [_expected(e) for e in events]
            for ws in sockets:
                assert await _signals(ws, len(events)) == expected
        finally:
            for ws in sockets:
                await ws.close()


async def test_compressed_replies_between_direct_frames_still_decode() -> None:
    # the server's own compressor ("subscribed", heartbeats) and the shared frames interleave
    async with (
        _serving(gateway_ws_heartbeat_s=0.3) as (app, url),
        websockets.connect(url) as ws,
    ):
        assert json.loads(await ws.recv())["type"] == "subscribed"
        model = app.state.model
        for n in range(3):
            event = b.signal("ETHUSDT", score=70.0 + n, at=b.T0 + timedelta(minutes=n))
            model.apply(event)
            assert await _signals(ws, 1) == [_expected(event)]
            await ws.send(json.dumps({"type": "subscribe", "symbols": ["ETH", "BTC"]}))
            sub = await _next_of_type(ws, "subscribed")
            assert sub["filters"]["symbols"] == ["BTCUSDT", "ETHUSDT"]
            assert (await _next_of_type(ws, "heartbeat")) == {"type": "heartbeat"}


async def _stalled_subscriber(url: str) -> socket.socket:
    """A client that completes the handshake, then never reads again (tiny receive window)."""
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    host_port, _, path = url.removeprefix("ws://").partition("/")
    host, port = host_port.split(":")
    await loop.sock_connect(sock, (host, int(port)))
    request = (
        f"GET /{path} HTTP/1.1\r\nHost: {host_port}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n"
    )
    await loop.sock_sendall(sock, request.encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += await loop.sock_recv(sock, 1)  # byte by byte: leave the frames unread
    assert head.startswith(b"HTTP/1.1 101")
    return sock


async def test_stalled_and_vanished_clients_never_hold_up_the_others() -> None:
    async with _serving(gateway_ws_heartbeat_s=60, gateway_ws_queue_size=4) as (app, url):
        hub = app.state.hub
        hub.close_timeout_s = 0.5
        healthy = [await websockets.connect(url, max_queue=None) for _ in range(5)]
        stalled = await _stalled_subscriber(url)
        vanished = await websockets.connect(url)
        for ws in [*healthy, vanished]:
            assert json.loads(await ws.recv())["type"] == "subscribed"
        await eventually(lambda: len(hub.clients["signals"]) == 7, what="7 subscribers")
        # the kernel would buffer megabytes for it first: keep the server's send buffer small
        port = stalled.getsockname()[1]
        (stalled_client,) = [c for c in hub.clients["signals"] if c.ws.scope["client"][1] == port]
        server_sock = stalled_client.writer.transport.get_extra_info("socket")
        server_sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        # gone without a close frame: the server only sees the connection drop
        vanished.transport.abort()
        model = app.state.model
        events = []
        try:
            # publish until the stalled client has filled the kernel's buffers, then its own
            # bounded buffer, and is dropped (a few MB: the kernel tunes its buffers up)
            while len(hub.clients["signals"]) > len(healthy) and len(events) < 20_000:
                n = len(events)
                event = b.signal("SOLUSDT", score=float(n % 100), at=b.T0 + timedelta(seconds=n))
                events.append(event)
                model.apply(event)  # the consumer side: never awaits a client
                if n % 20 == 0:
                    await asyncio.sleep(0.001)  # a consumer yields on I/O between records
            assert len(hub.clients["signals"]) == len(healthy), "stalled client never dropped"
            expected = [_expected(e) for e in events]
            for ws in healthy:  # every message, in order, for every client that keeps up
                assert await _signals(ws, len(events)) == expected
            # the stalled client's connection is closed by the server (EOF or reset)
            loop = asyncio.get_running_loop()
            with contextlib.suppress(ConnectionResetError):
                async with asyncio.timeout(20):
                    while await loop.sock_recv(stalled, 1 << 20):
                        pass
        finally:
            stalled.close()
            for ws in healthy:
                await ws.close()


async def _closed_with(ws: Any) -> Any:
    """Read until the server closes the socket (5 s at most); return its close frame."""
    with pytest.raises(websockets.exceptions.ConnectionClosed) as closed:
        async with asyncio.timeout(5):
            while True:
                await ws.recv()
    assert closed.value.rcvd is not None, "closed without a close frame"
    return closed.value.rcvd


async def test_a_subscription_too_large_to_be_a_filter_closes_the_socket(server) -> None:
    """Each symbol is normalised on the shared event loop: a 64 KiB list stalls every client."""
    app, base = server
    many = [f"C{i}" for i in range(MAX_FILTER_ITEMS + 1)]
    async with websockets.connect(f"{base}/ws/signals?apiKey=k1") as ws:
        await _next_of_type(ws, "subscribed")
        await ws.send(json.dumps({"type": "subscribe", "symbols": many[:MAX_FILTER_ITEMS]}))
        sub = await _next_of_type(ws, "subscribed")  # the limit itself is a filter
        assert len(sub["filters"]["symbols"]) == MAX_FILTER_ITEMS
        await ws.send(json.dumps({"type": "subscribe", "symbols": many}))
        close = await _closed_with(ws)
    assert close.code == 1008 and str(MAX_FILTER_ITEMS) in close.reason
    # the same list in the URL is refused the same way
    url = f"{base}/ws/liquidations?symbols={','.join(many)}"
    async with websockets.connect(url, additional_headers={"X-API-Key": "k1"}) as ws:
        close = await _closed_with(ws)
    assert close.code == 1008
    await eventually(lambda: not any(app.state.hub.clients.values()), what="no subscriber left")


async def test_a_flood_of_messages_closes_the_socket_with_4429(server) -> None:
    app, base = server
    async with websockets.connect(f"{base}/ws/signals?apiKey=k1") as ws:
        await _next_of_type(ws, "subscribed")
        for _ in range(MESSAGE_BURST):  # a burst is fine: each is answered
            await ws.send(json.dumps({"type": "subscribe", "symbols": ["BTC"]}))
        for _ in range(MESSAGE_BURST):
            await _next_of_type(ws, "subscribed")
        for _ in range(MESSAGE_BURST):  # a flood is not
            await ws.send(json.dumps({"type": "subscribe", "symbols": ["ETH"]}))
        close = await _closed_with(ws)
    assert close.code == 4429 and "too many messages" in close.reason
    await eventually(lambda: not app.state.hub.clients["signals"], what="the flooder is gone")


@pytest.mark.parametrize(
    "message",
    ['{"type": "subscribe", "symbols": [', b'{"type": "subscribe"}', "[" * 100_000 + "]" * 100_000],
    ids=["typo", "binary-frame", "nested-past-the-parser"],
)
async def test_a_message_that_is_not_json_text_is_answered_with_a_close_reason(message) -> None:
    async with _serving() as (app, url):
        async with websockets.connect(url, max_size=None) as ws:
            await _next_of_type(ws, "subscribed")
            await ws.send(message)
            close = await _closed_with(ws)
        assert close.code == 1003 and "JSON" in close.reason
        await eventually(lambda: not app.state.hub.clients["signals"], what="client gone")


async def test_a_symbol_in_another_script_streams_and_the_long_s_is_not_sol(server) -> None:
    """币安人生USDT (a real perpetual) reaches its subscriber; a long-s "sol" is not SOL."""
    from urllib.parse import quote

    app, base = server
    real = "币安人生USDT"
    url = f"{base}/ws/signals?apiKey=k1&symbols={quote('币安人生')}"
    plain = f"{base}/ws/signals?apiKey=k1"
    async with websockets.connect(url) as ws, websockets.connect(plain) as s:
        assert (await _next_of_type(ws, "subscribed"))["filters"]["symbols"] == [real]
        await _next_of_type(s, "subscribed")
        await s.send(json.dumps({"type": "subscribe", "symbols": ["\u017fol", "币安人生usdt"]}))
        assert (await _next_of_type(s, "subscribed"))["filters"]["symbols"] == [
            "\u017fOLUSDT",
            real,
        ]
        app.state.model.apply(b.signal("SOLUSDT", score=90))  # neither asked for SOL
        event = b.signal(real, score=80, price=0.05)  # the real scorer, for this symbol
        app.state.model.apply(event)
        for client in (ws, s):
            (got,) = await _signals(client, 1)
            assert json.loads(got) == json.loads(_expected(event))  # SOLUSDT's came before
        # an invisible joiner inside a symbol would silently never match: refused, named
        await ws.send(json.dumps({"type": "subscribe", "symbols": ["币安\u200d人生USDT"]}))
        close = await _closed_with(ws)
    assert close.code == 1008 and "not a symbol" in close.reason


async def test_a_client_that_stops_reading_on_a_quiet_stream_is_closed_by_the_send_deadline(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Too few messages to overflow its queue: the stalled socket was held without end, its
    task waiting on the full socket, its heartbeats never sent, its key's slot taken."""
    async with _serving(
        gateway_ws_heartbeat_s=0.2,
        gateway_ws_queue_size=10_000,  # never overflows here: only the deadline can act
        gateway_ws_send_timeout_s=1.0,
        gateway_ws_max_per_key=2,
    ) as (app, url):
        hub = app.state.hub
        hub.close_timeout_s = 0.5
        healthy = await websockets.connect(url, max_queue=None)
        assert json.loads(await healthy.recv())["type"] == "subscribed"
        stalled = await _stalled_subscriber(url)
        await eventually(lambda: len(hub.clients["signals"]) == 2, what="2 subscribers")
        port = stalled.getsockname()[1]
        (client,) = [c for c in hub.clients["signals"] if c.ws.scope["client"][1] == port]
        client.writer.transport.get_extra_info("socket").setsockopt(
            socket.SOL_SOCKET, socket.SO_SNDBUF, 4096
        )
        events = []
        try:
            # fill its socket until its own task is stuck in a send, then publish nothing more
            while not (client.sending and not client.writer.ready()) and len(events) < 2000:
                n = len(events)
                events.append(
                    b.signal("SOLUSDT", score=float(n % 100), at=b.T0 + timedelta(seconds=n))
                )
                app.state.model.apply(events[-1])
                await asyncio.sleep(0.002)
            assert client.queue.qsize() < 10_000, "the queue overflowed: not the quiet case"
            with caplog.at_level(logging.INFO, logger="perpsignal_gateway.streams"):
                await eventually(
                    lambda: client not in hub.clients["signals"], timeout=5, what="stalled dropped"
                )
                await eventually(lambda: sum(hub.open.values()) == 1, timeout=5, what="slot freed")
            assert any("stopped reading" in r.getMessage() for r in caplog.records)
            # the one reading got everything, in order, and its heartbeats go on
            assert await _signals(healthy, len(events)) == [_expected(e) for e in events]
            assert (await _next_of_type(healthy, "heartbeat"))["type"] == "heartbeat"
            # its place is free again for the same key
            async with websockets.connect(url) as again:
                assert (await _next_of_type(again, "subscribed"))["type"] == "subscribed"
        finally:
            stalled.close()
            await healthy.close()


@pytest.mark.parametrize(
    ("filters", "reason"),
    [
        ({"verdicts": ["\u017fkip"]}, "not a verdict"),  # long s: "\u017fkip".upper() == "SKIP"
        ({"verdicts": ["CONFIRMED"]}, "not a verdict"),  # a typo that would never match
        ({"minScore": "nan"}, "finite"),  # a NaN minimum lets everything through
        ({"minScore": "-inf"}, "finite"),
    ],
)
async def test_a_filter_rest_refuses_closes_the_socket_instead_of_silently_misfiltering(
    server, filters, reason
) -> None:
    _, base = server
    async with websockets.connect(f"{base}/ws/signals?apiKey=k1") as ws:
        await _next_of_type(ws, "subscribed")
        await ws.send(json.dumps({"type": "subscribe", **filters}))
        close = await _closed_with(ws)
    assert close.code == 1008 and reason in close.reason, close
    async with websockets.connect(f"{base}/ws/signals?apiKey=k1&verdicts=skip,Wait") as ws:
        sub = await _next_of_type(ws, "subscribed")  # ASCII case still folds
    assert sub["filters"]["verdicts"] == ["SKIP", "WAIT"]


async def test_a_repeated_filter_parameter_subscribes_to_every_value(server) -> None:
    """?symbols=BTC&symbols=ETH (a list as most HTTP clients send it) subscribed to ETH only."""
    app, base = server
    url = f"{base}/ws/signals?apiKey=k1&symbols=BTC&symbols=eth,SOL&verdicts=SKIP&verdicts=WAIT"
    async with websockets.connect(url) as ws:
        sub = await _next_of_type(ws, "subscribed")
        assert sub["filters"]["symbols"] == ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
        assert sub["filters"]["verdicts"] == ["SKIP", "WAIT"]
        event = b.signal("BTCUSDT", score=61, direction="NEUTRAL")  # the judge's WAIT
        app.state.model.apply(event)
        (got,) = await _signals(ws, 1)
    assert json.loads(got) == json.loads(_expected(event))
