"""`perpsignal up` prints one terminal line per change of a data source's state."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from perpsignal_cli.stack import SourceWatch

DOWN = {
    "name": "binance",
    "state": "down",
    "since": "2026-12-06T20:01:02Z",
    "reason": "transient: binance klines: ConnectError('[Errno -3] name resolution')",
}


@pytest.fixture
def gateway() -> Iterator[tuple[str, dict]]:
    state: dict = {"sources": [], "keys": []}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state["keys"].append(self.headers.get("X-API-Key"))
            if self.path == "/readyz":
                lines = [f"{s['name']} {s['state']} since {s['since']}" for s in state["sources"]]
                body = json.dumps({"status": "degraded", "degradedSources": lines}).encode()
            elif state.get("refuse_key"):
                self.send_response(401)
                self.end_headers()
                return
            else:
                body = json.dumps({"services": [], "sources": state["sources"]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", state
    server.shutdown()


def test_one_line_per_state_change_not_per_poll(gateway) -> None:
    url, state = gateway
    said: list[str] = []
    watch = SourceWatch(url, api_key="k1")
    now = 0.0

    def poll() -> None:
        nonlocal now
        now += 10
        watch.poll(now, said.append)

    poll()  # all up: nothing to say
    state["sources"] = [DOWN]
    for _ in range(5):
        poll()
    state["sources"] = []
    poll()
    poll()
    assert said == [
        "source binance is down since 20:01 UTC: transient: binance klines: "
        "ConnectError('[Errno -3] name resolution')",
        "source binance is up again",
    ]
    assert set(state["keys"]) == {"k1"}


def test_polls_at_most_every_few_seconds_and_survives_a_dead_gateway() -> None:
    watch = SourceWatch("http://127.0.0.1:9", None)  # nothing listens on the discard port
    assert watch.poll(100.0, print) == []
    assert watch.next_at > 100.0


def test_without_a_usable_key_the_public_readiness_summary_is_used(gateway) -> None:
    url, state = gateway
    state["refuse_key"] = True
    state["sources"] = [DOWN]
    said: list[str] = []
    watch = SourceWatch(url, api_key="rotated-away")
    watch.poll(10.0, said.append)
    watch.poll(20.0, said.append)
    assert said == ["source binance is down since 20:01 UTC: ?"]
