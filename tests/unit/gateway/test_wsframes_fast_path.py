"""The WebSocket fast path is really taken under the uvicorn the lock installs.

`DirectWriter.attach` finds uvicorn's private protocol object by walking the handler task's
coroutine frame; an uvicorn upgrade that renames or restructures it would silently switch
every client back to `send_text` (slower, still correct). These tests fail instead.
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import websockets

from perpsignal_gateway.wsframes import DirectWriter
from tests.unit.gateway import builders as b
from tests.unit.gateway.test_streams import _expected, _serving, _signals


async def test_real_uvicorn_connections_get_frames_written_directly() -> None:
    async with _serving(gateway_ws_heartbeat_s=60) as (app, url):
        plain = await websockets.connect(url, compression=None)
        deflate = await websockets.connect(url)  # permessage-deflate, as browsers offer
        try:
            for ws in (plain, deflate):
                assert json.loads(await ws.recv())["type"] == "subscribed"
            clients = list(app.state.hub.clients["signals"])
            assert len(clients) == 2
            writers = [c.writer for c in clients]
            assert all(isinstance(w, DirectWriter) for w in writers), "fast path not attached"
            assert sorted(w.framing is None for w in writers) == [False, True]  # type: ignore[union-attr]
            events = [
                b.signal("BTCUSDT", score=60.0 + n, at=b.T0 + timedelta(minutes=n))
                for n in range(3)
            ]
            for event in events:
                app.state.model.apply(event)
                await asyncio.sleep(0.05)  # each written before the next: the socket is idle
            for ws in (plain, deflate):
                assert await _signals(ws, 3) == [_expected(e) for e in events]
            # every signal went through the direct writer, none through send_text
            assert [w.written for w in writers] == [3, 3]  # type: ignore[union-attr]
        finally:
            for ws in (plain, deflate):
                await ws.close()


async def test_attach_refuses_a_task_that_is_not_uvicorns_handler() -> None:
    # the same call from any other task must say "no fast path", never guess
    assert DirectWriter.attach({"type": "websocket"}) is None
