"""Every message a real WebSocket session receives is in the gateway README's table, and the
table lists nothing a session does not send (`subscribed` was sent first but never documented
for `/ws/liquidations`)."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import websockets

from tests.unit.gateway import builders as b
from tests.unit.gateway.test_streams import open_gateway

README = Path(__file__).resolve().parents[3] / "services" / "gateway" / "README.md"
ROW = re.compile(r'^\| (both|`(/ws/\w+)`) \| `(\{"type":.*?\})` \|', re.M)


def documented() -> dict[str, dict[str, dict[str, Any]]]:
    """{stream: {type: the documented example}} from the README's table (`<signal>` → null)."""
    out: dict[str, dict[str, dict[str, Any]]] = {"/ws/signals": {}, "/ws/liquidations": {}}
    for row in ROW.finditer(README.read_text()):
        example = json.loads(re.sub(r"<\w+>", "null", row[3]))
        for stream in out if row[1] == "both" else (row[2],):
            out[stream][example["type"]] = example
    return out


async def _session(url: str, feed: Any) -> list[dict[str, Any]]:
    """Connect, resubscribe, have `feed()` publish one event, wait for a heartbeat."""
    got: list[dict[str, Any]] = []
    async with websockets.connect(url, additional_headers={"X-API-Key": "k1"}) as ws:
        got.append(json.loads(await ws.recv()))  # what the server sends unasked
        await ws.send(json.dumps({"type": "subscribe", "symbols": ["ETH"]}))
        got.append(json.loads(await ws.recv()))
        feed()
        async with asyncio.timeout(10):
            while got[-1]["type"] != "heartbeat":
                got.append(json.loads(await ws.recv()))
    return got


async def test_every_websocket_message_is_documented_and_every_documented_one_is_sent() -> None:
    table = documented()
    async with open_gateway(gateway_api_keys="k1", gateway_ws_heartbeat_s=0.3) as (app, port):
        model = app.state.model
        sessions = {
            "/ws/signals": await _session(
                f"ws://127.0.0.1:{port}/ws/signals",
                lambda: model.apply(b.signal("ETHUSDT", score=70, verdict="CONFIRM")),
            ),
            "/ws/liquidations": await _session(
                f"ws://127.0.0.1:{port}/ws/liquidations",
                lambda: model.apply(b.liquidation("ETHUSDT", notional=1234.0)),
            ),
        }
    for stream, messages in sessions.items():
        assert messages[0]["type"] == "subscribed", stream  # first, before anything is asked
        assert {m["type"] for m in messages} == set(table[stream]), (stream, messages)
        for m in messages:  # the documented example's keys are the ones sent
            assert set(m) == set(table[stream][m["type"]]), (stream, m)
        sub = next(m for m in messages if m["type"] == "subscribed")
        assert set(sub["filters"]) == set(table[stream]["subscribed"]["filters"])
