"""The dashboard's WebSocket client (`static/js/api.js`) under Node with stand-in browser APIs.

No browser here: Node runs the real module with `fetch`, `WebSocket`, `location` and
`localStorage` replaced by recorders, to check what the page would put on the wire.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

API_JS = (
    Path(__file__).resolve().parents[3] / "services/gateway/src/perpsignal_gateway/static/js/api.js"
)

HARNESS = r"""
const sockets = [], fetches = [], states = [];
globalThis.location = { origin: "https://dash.example.com", protocol: "https:" };
const store = { "perpsignal.apiKey": "long-lived-key-123" };
globalThis.localStorage = {
  getItem: (k) => store[k] ?? null, setItem: (k, v) => { store[k] = v; },
  removeItem: (k) => { delete store[k]; },
};
let ticketStatus = 200;
globalThis.fetch = async (url, init) => {
  fetches.push({ url: String(url), method: init?.method, headers: init?.headers });
  return { ok: ticketStatus === 200, status: ticketStatus,
           json: async () => ({ ticket: "T" + fetches.length, expiresInS: 60 }) };
};
class FakeSocket {
  constructor(url) { this.url = String(url); sockets.push(this); }
  close() {}
}
globalThis.WebSocket = FakeSocket;
const api = await import(process.argv[2]);
const tick = () => new Promise((r) => setTimeout(r, 10));
const stream = new api.Stream("/ws/signals", { symbols: "BTC" },
                              { onState: (s) => states.push(s) });
stream.start();
await tick();
sockets[0].onopen();
// a refused ticket is "unauthorized", not a reconnect loop
sockets[0].onclose({ code: 4401 });
await tick();
ticketStatus = 401;
stream.restart();
await tick();
console.log(JSON.stringify({ sockets: sockets.map((s) => s.url), fetches, states }));
process.exit(0);
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_websocket_opens_with_a_ticket_never_the_key(tmp_path: Path) -> None:
    module = tmp_path / "api.mjs"
    module.write_text(API_JS.read_text())
    harness = tmp_path / "harness.mjs"
    harness.write_text(HARNESS)
    done = subprocess.run(
        ["node", str(harness), module.as_uri()],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    seen = json.loads(done.stdout)
    [url] = seen["sockets"]
    assert url.startswith("wss://dash.example.com/ws/signals?")
    assert "ticket=T1" in url and "symbols=BTC" in url
    assert "long-lived-key-123" not in url and "apiKey" not in url
    ticket = seen["fetches"][0]
    assert ticket["url"] == "https://dash.example.com/ws/ticket" and ticket["method"] == "POST"
    assert ticket["headers"]["X-API-Key"] == "long-lived-key-123"  # only ever in a header
    assert seen["states"][:2] == ["connecting", "live"]
    # 4401 and a refused ticket both end in "unauthorized" (the page asks for a key)
    assert seen["states"].count("unauthorized") == 2
    assert len(seen["sockets"]) == 1  # no socket opened without a ticket
