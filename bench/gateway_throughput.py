"""Gateway throughput and latency, and WebSocket fan-out, each next to a same-run baseline.

* HTTP: requests/s and p50/p99 latency of `GET /signals/{symbol}` and `POST /invoke`
  (get_signal) against the trivial `GET /ping` of the same app, one uvicorn worker in its own
  process, driven by the same in-repo asyncio HTTP/1.1 load generator (fixed concurrency of
  keep-alive connections; the endpoints alternate in short slices so load from neighbours on
  a shared machine hits each alike). Goals (same run): >= 70 % of /ping's throughput and
  p99 <= 1.5x /ping's p99; p99 < 10 ms is reported as an absolute figure.
* WebSocket: one judged signal fanned out to 1,000 `/ws/signals` subscribers (websockets
  clients spread over BENCH_WS_CLIENT_PROCS=4 processes); p99 delivery latency (publish in
  the read model → message received and parsed) against the same fan-out to one subscriber.
  Goal: p99 < 100 ms (an absolute figure; the one-subscriber fan-out is shown for context).

Run: `uv run python bench/gateway_throughput.py` (about 30 s; BENCH_GATEWAY_DURATION_S=6 s of
HTTP load per endpoint).
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing as mp
import os
import resource
import socket
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import websockets

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import Row, report

CONCURRENCY = 8
DURATION_S = float(os.environ.get("BENCH_GATEWAY_DURATION_S", "6"))
SLICES = 6
SUBSCRIBERS = 1000
FANOUT_ROUNDS = 5
# subscriber processes the 1,000 WebSocket clients are spread over (see `_fanout`)
CLIENT_PROCS = int(os.environ.get("BENCH_WS_CLIENT_PROCS", "4"))


def _raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(hard, 8192) if hard != resource.RLIM_INFINITY else 8192
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(port: int, ready: Any, commands: Any, published: Any) -> None:
    """Child process: one uvicorn worker with a seeded read model."""
    _raise_fd_limit()
    import contextlib as _cl

    import uvicorn

    from perpsignal_gateway.main import create_app
    from perpsignal_gateway.settings import GatewaySettings
    from tests.unit.gateway import builders as b

    class Server(uvicorn.Server):
        @_cl.contextmanager
        def capture_signals(self):  # type: ignore[no-untyped-def,override]
            yield

    app = create_app(
        GatewaySettings(
            gateway_enable_database=False,
            gateway_rate_limit="10000000/minute",
            # 1,000 subscribers from one address, which is the identity with auth off
            gateway_ws_max_per_key=5000,
            gateway_ws_queue_size=64,
            gateway_ws_heartbeat_s=60,
        ),
        vendor_env={},
        connect_kafka=False,
    )
    server = Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="error",
            access_log=False,
            backlog=4096,
            ws=os.environ.get("BENCH_GATEWAY_WS", "websockets-sansio"),
        )
    )

    async def main() -> None:
        task = asyncio.create_task(server.serve())
        while not server.started:  # noqa: ASYNC110 - uvicorn exposes a flag, not an event
            await asyncio.sleep(0.01)
        model = app.state.model
        for n, sym in enumerate(("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT")):
            model.apply(b.signal(sym, score=60.0 + n))
        ready.set()
        loop = asyncio.get_running_loop()
        while True:
            cmd = await loop.run_in_executor(None, commands.get)
            if cmd == "stop":
                break
            # one fresh signal fanned out to every subscriber; report when it was published
            at = datetime.now(UTC) + timedelta(seconds=int(cmd))
            event = b.signal("BTCUSDT", score=50.0 + int(cmd), at=at)
            sent_at = time.time()
            cpu_at = time.process_time()
            model.apply(event, live=True)
            # server side: until every client's queue is empty and its last write returned
            hub = app.state.hub
            while any(not c.queue.empty() for c in hub.clients["signals"]):  # noqa: ASYNC110
                await asyncio.sleep(0.0005)
            await asyncio.sleep(0)
            cpu_ms = (time.process_time() - cpu_at) * 1000
            published.put((sent_at, (time.time() - sent_at) * 1000, cpu_ms))
        server.should_exit = True
        await task

    asyncio.run(main())


async def _load(
    base: str, method: str, path: str, body: bytes | None, duration_s: float
) -> tuple[float, list[float]]:
    """Drive one endpoint with CONCURRENCY keep-alive connections; return (seconds, latencies).

    A minimal HTTP/1.1 client on asyncio streams (pre-built request bytes, Content-Length
    framing): its own cost per request is a few microseconds, so the figures are the server's,
    and every endpoint is driven by exactly the same code.
    """
    host, port = base.removeprefix("http://").split(":")
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n"
    if body:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    request = head.encode() + b"\r\n" + (body or b"")
    latencies: list[float] = []

    async def one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(request)
        raw = await reader.readuntil(b"\r\n\r\n")
        status = int(raw[9:12])
        length = 0
        for line in raw.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        payload = await reader.readexactly(length)
        if status != 200:
            raise RuntimeError(f"{path}: HTTP {status} {payload[:200]!r}")

    warmed = 0
    go = asyncio.Event()
    window: dict[str, float] = {}

    async def worker() -> None:
        nonlocal warmed
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            for _ in range(20):  # warm up the connection and the code path
                await one(reader, writer)
            warmed += 1
            if warmed == CONCURRENCY:  # the measured window starts once all are warm
                window["start"] = time.perf_counter()
                window["end"] = window["start"] + duration_s
                go.set()
            await go.wait()
            while time.perf_counter() < window["end"]:
                t0 = time.perf_counter()
                await one(reader, writer)
                latencies.append(time.perf_counter() - t0)
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return time.perf_counter() - window["start"], latencies


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _receive_signal(ws: Any, arrivals: list[float]) -> None:
    while True:
        msg = orjson.loads(await ws.recv())
        if msg["type"] == "signal":
            arrivals.append(time.time())
            return


async def _subscribe(base_ws: str, n: int) -> list[Any]:
    sockets = []
    for i in range(0, n, 100):  # connect in waves so the accept backlog never overflows
        batch = await asyncio.gather(
            *(
                websockets.connect(f"{base_ws}/ws/signals", max_queue=None)
                for _ in range(min(100, n - i))
            )
        )
        sockets.extend(batch)
    for ws in sockets:
        await ws.recv()  # "subscribed"
    return sockets


def _client(base_ws: str, n: int, orders: Any, results: Any) -> None:
    """One subscriber process: `n` connections; per round, arm receivers, report arrivals."""

    async def run() -> None:
        sockets = await _subscribe(base_ws, n)
        results.put("ready")
        loop = asyncio.get_running_loop()
        while await loop.run_in_executor(None, orders.get) != "stop":
            arrivals: list[float] = []
            receivers = [asyncio.create_task(_receive_signal(ws, arrivals)) for ws in sockets]
            await asyncio.sleep(0.05)  # every receiver is waiting before the publish
            results.put("armed")
            await asyncio.wait_for(asyncio.gather(*receivers), 30)
            results.put(arrivals)
        for ws in sockets:
            with contextlib.suppress(Exception):
                await ws.close()

    asyncio.run(run())


def _fanout(
    base_ws: str,
    n: int,
    commands: Any,
    published: Any,
    rounds: int,
    drains: list[float],
    cpus: list[float],
) -> list[float]:
    """Fan one signal out to `n` subscribers per round, spread over client processes.

    One Python process receiving all 1,000 messages through the `websockets` client spends
    ~100 ms of CPU per round, which made the figure a measure of the benchmark's client (the
    gateway's own CPU per fan-out is ~16 ms). Load generators spread their clients over
    processes for that reason; real subscribers are separate machines.
    """
    ctx = mp.get_context("spawn")
    procs_n = max(1, min(CLIENT_PROCS, n))
    per = [n // procs_n + (1 if i < n % procs_n else 0) for i in range(procs_n)]
    orders = [ctx.Queue() for _ in per]
    results = [ctx.Queue() for _ in per]
    procs = [
        ctx.Process(target=_client, args=(base_ws, k, o, r), daemon=True)
        for k, o, r in zip(per, orders, results, strict=True)
    ]
    for p in procs:
        p.start()
    delays: list[float] = []
    try:
        for r in results:
            if r.get(timeout=120) != "ready":
                raise RuntimeError("subscriber process failed")
        for rnd in range(rounds):
            for o in orders:
                o.put("round")
            for r in results:
                r.get(timeout=60)  # armed
            commands.put(str(rnd + 1))
            arrivals = [t for r in results for t in r.get(timeout=60)]
            sent_at, drain_ms, cpu_ms = published.get(timeout=60)
            drains.append(drain_ms)
            cpus.append(cpu_ms)
            delays.extend((t - sent_at) * 1000 for t in arrivals)
    finally:
        for o in orders:
            o.put("stop")
        for p in procs:
            p.join(15)
            if p.is_alive():
                p.kill()
    return delays


def main() -> list[dict[str, object]]:
    _raise_fd_limit()
    ctx = mp.get_context("spawn")
    port = _free_port()
    ready, commands, published = ctx.Event(), ctx.Queue(), ctx.Queue()
    proc = ctx.Process(target=_serve, args=(port, ready, commands, published), daemon=True)
    proc.start()
    try:
        if not ready.wait(180):  # a loaded shared machine takes long to import the app
            raise RuntimeError("gateway did not start in 180 s")
        base = f"http://127.0.0.1:{port}"
        invoke = orjson.dumps({"operation": "get_signal", "args": {"symbol": "BTC"}})
        targets = {
            "ping": ("GET", "/ping", None),
            "signal": ("GET", "/signals/BTCUSDT", None),
            "invoke": ("POST", "/invoke", invoke),
        }
        # interleaved slices, so a neighbour's load burst hits every endpoint alike
        done: dict[str, list[float]] = {k: [] for k in targets}
        spent: dict[str, float] = dict.fromkeys(targets, 0.0)
        for _ in range(SLICES):
            for key, (method, path, body) in targets.items():
                elapsed, lat = asyncio.run(_load(base, method, path, body, DURATION_S / SLICES))
                done[key] += lat
                spent[key] += elapsed
        ping_lat, sig_lat, inv_lat = done["ping"], done["signal"], done["invoke"]
        ping_rps, sig_rps, inv_rps = (len(done[k]) / spent[k] for k in ("ping", "signal", "invoke"))
        drains_one: list[float] = []
        drains_many: list[float] = []
        cpu_one: list[float] = []
        cpu_many: list[float] = []
        one = _fanout(
            f"ws://127.0.0.1:{port}", 1, commands, published, FANOUT_ROUNDS, drains_one, cpu_one
        )
        many = _fanout(
            f"ws://127.0.0.1:{port}",
            SUBSCRIBERS,
            commands,
            published,
            FANOUT_ROUNDS,
            drains_many,
            cpu_many,
        )
    finally:
        commands.put("stop")
        proc.join(15)
        if proc.is_alive():
            proc.kill()
    ms = 1000.0
    rows: list[Row] = [
        Row(
            "GET /signals/{symbol} throughput",
            sig_rps,
            "req/s",
            "GET /ping",
            ping_rps,
            ">= 0.70 x /ping",
            goal_ratio=0.70,
        ),
        Row(
            "POST /invoke get_signal throughput",
            inv_rps,
            "req/s",
            "GET /ping",
            ping_rps,
            ">= 0.70 x /ping",
            goal_ratio=0.70,
        ),
        Row(
            "GET /signals/{symbol} p50",
            _pct(sig_lat, 0.5) * ms,
            "ms",
            "GET /ping p50",
            _pct(ping_lat, 0.5) * ms,
            "info",
            higher_is_better=False,
        ),
        Row(
            "GET /signals/{symbol} p99",
            _pct(sig_lat, 0.99) * ms,
            "ms",
            "GET /ping p99",
            _pct(ping_lat, 0.99) * ms,
            "<= 1.5x /ping p99",
            higher_is_better=False,
            goal_ratio=1.5,
        ),
        Row.absolute(
            "GET /signals/{symbol} p99",
            _pct(sig_lat, 0.99) * ms,
            "ms",
            "< 10 ms",
            limit=10.0,
            higher_is_better=False,
            baseline_name="GET /ping p99",
            baseline_value=_pct(ping_lat, 0.99) * ms,
        ),
        Row(
            "POST /invoke p50",
            _pct(inv_lat, 0.5) * ms,
            "ms",
            "GET /ping p50",
            _pct(ping_lat, 0.5) * ms,
            "info",
            higher_is_better=False,
        ),
        Row(
            "POST /invoke p99",
            _pct(inv_lat, 0.99) * ms,
            "ms",
            "GET /ping p99",
            _pct(ping_lat, 0.99) * ms,
            "<= 1.5x /ping p99",
            higher_is_better=False,
            goal_ratio=1.5,
        ),
        Row.absolute(
            "POST /invoke p99",
            _pct(inv_lat, 0.99) * ms,
            "ms",
            "< 10 ms",
            limit=10.0,
            higher_is_better=False,
            baseline_name="GET /ping p99",
            baseline_value=_pct(ping_lat, 0.99) * ms,
        ),
        Row.absolute(
            f"WS fan-out to {SUBSCRIBERS} p99 delivery",
            _pct(many, 0.99),
            "ms",
            "< 100 ms",
            limit=100.0,
            higher_is_better=False,
            baseline_name="fan-out to 1 p99",
            baseline_value=_pct(one, 0.99),
        ),
        Row(
            f"WS fan-out to {SUBSCRIBERS} p50 delivery",
            statistics.median(many),
            "ms",
            "fan-out to 1 p50",
            statistics.median(one),
            "info",
            higher_is_better=False,
        ),
        Row(
            f"WS fan-out to {SUBSCRIBERS}: server drain max",
            max(drains_many),
            "ms",
            "fan-out to 1: server drain max",
            max(drains_one),
            "info (publish -> every write done)",
            higher_is_better=False,
        ),
        Row(
            f"WS fan-out to {SUBSCRIBERS}: server CPU per signal",
            statistics.median(cpu_many),
            "ms",
            "fan-out to 1: server CPU",
            statistics.median(cpu_one),
            "info (CPU, not wall: independent of neighbours' load)",
            higher_is_better=False,
        ),
    ]
    return report("gateway_throughput", rows)


if __name__ == "__main__":
    main()
