"""WebSockets: filters and heartbeat over a real server; bounded buffers and slow clients."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn
import websockets

from perpsignal_gateway.main import create_app
from perpsignal_gateway.streams import OVERFLOW_CLOSE_CODE, StreamHub, Subscription
from tests.helpers import eventually
from tests.unit.gateway import builders as b
from tests.unit.gateway.conftest import RecordingProducer, settings


class _QuietServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self):  # type: ignore[no-untyped-def,override]
        yield


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def server() -> AsyncIterator[tuple[Any, str]]:
    cfg = settings(gateway_ws_heartbeat_s=0.3, gateway_api_keys="k1")
    app = create_app(
        cfg,
        vendor_env={},
        producer=RecordingProducer(),
        connect_kafka=False,
    )
    port = _free_port()
    srv = _QuietServer(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", ws=cfg.gateway_ws_impl
        )
    )
    task = asyncio.create_task(srv.serve())
    await eventually(lambda: srv.started, timeout=10, what="uvicorn started")
    try:
        yield app, f"ws://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        await asyncio.wait_for(task, 10)


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
    with pytest.raises(websockets.exceptions.InvalidStatus):
        async with websockets.connect(f"{base}/ws/signals"):
            pass


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
