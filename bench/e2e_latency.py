"""End-to-end latency: a closed candle entering the platform → the judged signal on /ws/signals.

Path measured: candle published on `perpsignal.market.v1` → scorer process → `signals.v1` →
judge process (rule judge) → `signals.judged.v1` → gateway process → `/ws/signals` frame
received by this process. Entry is the market topic, not the ingestor's HTTP edge: the
ingestor fetches a timeframe's klines once per closed candle (a 1-minute cadence at best),
so its edge cannot be driven at a measurable rate; the hop it adds (vendor answer → one
produce) is the same produce this benchmark does.

Load: 100 symbols (BENCH_E2E_SYMBOLS), each warmed with 30 real 1-minute candles (FTX BTC-PERP
history from ../shared/data/market, each symbol at its own offset), then BENCH_E2E_ROUNDS
rounds in which every symbol closes one candle, paced at BENCH_E2E_RATE candles/s.

Every Kafka client runs at the shipped defaults (`KafkaSettings`): fetch wait
KAFKA_FETCH_MAX_WAIT_MS = 50 ms, producer linger 5 ms, the registry's partition counts. The
fetch wait is the main cost: the embedded broker polls instead of waking a waiting fetch, so
each hop waits about uniform(0, wait/2) (../shared/broker-notes.md), ~12.5 ms a hop on
average at 50 ms. BENCH_E2E_FETCH_WAIT_MS measures another wait; its rows then say so.

Baseline, same run, same broker, same client settings: a raw aiokafka chain of the same three
Kafka hops (produce → relay → relay → relay → consume, each relay a consumer + producer in
one separate process), carrying the same encoded candles at the same pace. The ratio
e2e/baseline is what the platform costs on top of the transport (goal: p99 within 1.5x of
the raw chain's). The issue's absolute p99 < 100 ms is reported as context.

Knobs (defaults): BENCH_E2E_SYMBOLS (100), BENCH_E2E_ROUNDS (5), BENCH_E2E_RATE (50
candles/s), BENCH_E2E_FETCH_WAIT_MS (the setting's default).
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.common import Row, report
from perpsignal_common.events.topics import DEFAULT_PARTITIONS
from perpsignal_common.settings import KafkaSettings

REPO = Path(__file__).resolve().parents[1]
MARKET = REPO.parent / "shared" / "data" / "market" / "ftx-btc-perp-20211231-20220201_1m.csv"
SYMBOLS = int(os.environ.get("BENCH_E2E_SYMBOLS", "100"))
ROUNDS = int(os.environ.get("BENCH_E2E_ROUNDS", "5"))
RATE = float(os.environ.get("BENCH_E2E_RATE", "50"))
_SETTINGS = KafkaSettings.model_fields
SHIPPED_FETCH_WAIT_MS = int(_SETTINGS["kafka_fetch_max_wait_ms"].default)
FETCH_WAIT_MS = int(os.environ.get("BENCH_E2E_FETCH_WAIT_MS", str(SHIPPED_FETCH_WAIT_MS)))
LINGER_MS = int(_SETTINGS["kafka_linger_ms"].default)
SESSION_TIMEOUT_MS = int(_SETTINGS["kafka_session_timeout_ms"].default)
HEARTBEAT_MS = int(_SETTINGS["kafka_heartbeat_interval_ms"].default)
GOAL_VS_RAW = 1.5
WARM = 30
# warm-up pace (candles/s): not measured, every warm-up signal is awaited before the rounds
WARM_RATE = 4 * RATE
GOAL_P99_MS = 100.0
T0 = datetime(2024, 1, 1, tzinfo=UTC)


def pct(values: list[float], q: float) -> float:
    """Return the q-quantile (0..1) by nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def load_history() -> list[tuple[float, float, float, float, float]]:
    with MARKET.open() as f:
        return [
            (float(r["open"]), float(r["high"]), float(r["low"]), float(r["close"]),
             float(r["volume_usd"]) / float(r["close"]))
            for r in csv.DictReader(f)
        ]  # fmt: skip


def candle(history: list[Any], sym_i: int, minute: int, prefix_topic: str) -> tuple[str, bytes]:
    """Return (symbol, encoded CandleClosedV1) of symbol `sym_i` at minute `minute`."""
    from perpsignal_common.events.base import deterministic_id
    from perpsignal_common.events.market import CandleClosedV1
    from perpsignal_common.events.registry import encode

    o, h, low, c, v = history[(sym_i * 997 + minute) % len(history)]
    sym = f"B{sym_i:03d}USDT"
    open_time = T0 + timedelta(minutes=minute)
    close = open_time + timedelta(minutes=1)
    ev = CandleClosedV1(
        event_id=deterministic_id("bench", sym, minute, prefix_topic),
        source="binance",
        symbol=sym,
        observed_at=close,
        timeframe="1m",
        open_time=open_time,
        open=o,
        high=h,
        low=low,
        close=c,
        volume=v,
    )
    return sym, encode(ev)


def service_env(kafka_env: dict[str, str], name: str, port: int) -> dict[str, str]:
    env = {**os.environ, **kafka_env, "LOG_FORMAT": "json", "LOG_LEVEL": "WARNING",
           "ENVIRONMENT": "test", "OPS_HOST": "127.0.0.1"}  # fmt: skip
    from perpsignal_common.embedded import free_port

    env["OPS_PORT"] = str(free_port())
    if name == "scorer":
        env |= {"SCORER_PRIMARY_TIMEFRAME": "1m", "SCORER_SMC_TIMEFRAMES": "1m,5m",
                "SCORER_GLOBAL_WARMUP_S": "0.5"}  # fmt: skip
    if name == "judge":
        env |= {"ENABLE_AI_JUDGE": "false"}
    if name == "gateway":
        env |= {"GATEWAY_HOST": "127.0.0.1", "GATEWAY_PORT": str(port),
                "GATEWAY_API_KEYS": "", "GATEWAY_ENABLE_DATABASE": "false",
                "GATEWAY_WS_QUEUE_SIZE": "100000"}  # fmt: skip
    return env


async def _wait_http(url: str, procs: list[subprocess.Popen[bytes]], limit_s: float) -> None:
    import httpx

    deadline = time.monotonic() + limit_s
    async with httpx.AsyncClient() as http:
        while time.monotonic() < deadline:
            for p in procs:
                if p.poll() is not None:
                    raise RuntimeError(f"a service exited with {p.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get(url, timeout=1)).status_code == 200:
                    return
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{url} not ready in {limit_s}s")


async def measure_platform(bootstrap: str, history: list[Any], logs: Path) -> list[float]:
    """Return per-signal latencies (ms) through scorer → judge → gateway WebSocket."""
    import websockets

    from perpsignal_common.embedded import free_port
    from perpsignal_common.kafka.admin import ensure_topics

    prefix = f"b{uuid.uuid4().hex[:8]}."
    kafka_env = {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "KAFKA_TOPIC_PREFIX": prefix,
        "KAFKA_FETCH_MAX_WAIT_MS": str(FETCH_WAIT_MS),
    }  # fmt: skip
    kafka = KafkaSettings(kafka_bootstrap_servers=bootstrap, kafka_topic_prefix=prefix)
    await ensure_topics(kafka)
    port = free_port()
    procs = []
    for name in ("scorer", "judge", "gateway"):
        out = open(logs / f"{name}.log", "wb")  # noqa: SIM115, ASYNC230
        procs.append(subprocess.Popen(  # noqa: ASYNC220
            [sys.executable, "-m", f"perpsignal_{name}"], cwd=REPO,
            env=service_env(kafka_env, name, port), stdout=out, stderr=subprocess.STDOUT,
        ))  # fmt: skip
    arrivals: dict[tuple[str, str], float] = {}
    try:
        await _wait_http(f"http://127.0.0.1:{port}/healthz", procs, 300)
        ws = await websockets.connect(f"ws://127.0.0.1:{port}/ws/signals", max_size=None)
        await ws.recv()  # subscription ack

        async def listen() -> None:
            async for raw in ws:
                now = time.perf_counter()
                msg = json.loads(raw)
                if msg.get("type") == "signal":
                    d = msg["data"]
                    ts = datetime.fromisoformat(d["timestamp"].replace("Z", "+00:00"))
                    arrivals.setdefault((d["symbol"], ts.isoformat()), now)

        listener = asyncio.create_task(listen())
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=LINGER_MS)
        await producer.start()
        topic = kafka.topic("perpsignal.market.v1")

        async def send_round(minute: int, sent: dict[tuple[str, str], float] | None) -> None:
            # warm-up rounds (sent is None) are not measured: paced faster
            gap = 1.0 / (RATE if sent is not None else WARM_RATE)
            start = time.perf_counter()
            for i in range(SYMBOLS):
                sym, raw = candle(history, i, minute, prefix)
                close = (T0 + timedelta(minutes=minute + 1)).isoformat()
                if sent is not None:
                    sent[(sym, close)] = time.perf_counter()
                await producer.send(topic, raw, key=sym.encode())
                delay = start + (i + 1) * gap - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)

        # warm-up: state for every symbol (ATR needs 15 candles), every process JIT-warm
        for minute in range(WARM):
            await send_round(minute, None)
        last = (T0 + timedelta(minutes=WARM)).isoformat()
        deadline = time.monotonic() + 300
        while sum(1 for (_, ts) in arrivals if ts == last) < SYMBOLS:
            if time.monotonic() > deadline:
                raise RuntimeError("warm-up signals did not all arrive")
            await asyncio.sleep(0.1)
        sent: dict[tuple[str, str], float] = {}
        for r in range(ROUNDS):
            await send_round(WARM + r, sent)
        deadline = time.monotonic() + 120
        while not all(k in arrivals for k in sent) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        missing = [k for k in sent if k not in arrivals]
        if missing:
            print(f"warning: {len(missing)} signals never arrived, e.g. {missing[:3]}")
        listener.cancel()
        await producer.stop()
        await ws.close()
        return [(arrivals[k] - t) * 1000 for k, t in sent.items() if k in arrivals]
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()


async def relay_chain(bootstrap: str, topics: list[str]) -> None:
    """Run one raw consumer→producer relay per hop (the baseline's 'services')."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=LINGER_MS)
    await producer.start()

    async def relay(src: str, dst: str) -> None:
        consumer = AIOKafkaConsumer(
            src, bootstrap_servers=bootstrap, group_id=f"relay-{src}",
            auto_offset_reset="earliest", fetch_max_wait_ms=FETCH_WAIT_MS,
            session_timeout_ms=SESSION_TIMEOUT_MS, heartbeat_interval_ms=HEARTBEAT_MS,
        )  # fmt: skip
        await consumer.start()
        while True:
            batches = await consumer.getmany(timeout_ms=200)
            for records in batches.values():
                for rec in records:
                    await producer.send(dst, rec.value, key=rec.key, headers=list(rec.headers))
            if batches:
                await producer.flush()
                await consumer.commit()

    await asyncio.gather(*(relay(a, b) for a, b in itertools.pairwise(topics)))


async def measure_baseline(bootstrap: str, history: list[Any], logs: Path) -> list[float]:
    """Return per-message latencies (ms) through three raw aiokafka relay hops."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    topics = [f"raw{uuid.uuid4().hex[:6]}.{i}" for i in range(4)]
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(t, DEFAULT_PARTITIONS, 1) for t in topics])
    await admin.close()
    out = open(logs / "relay.log", "wb")  # noqa: SIM115, ASYNC230
    relay = subprocess.Popen(  # noqa: ASYNC220
        [sys.executable, "-m", "bench.e2e_latency", "--relay", bootstrap, *topics],
        cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
    )  # fmt: skip
    consumer = AIOKafkaConsumer(
        topics[-1], bootstrap_servers=bootstrap, group_id="bench-sink",
        auto_offset_reset="earliest", fetch_max_wait_ms=FETCH_WAIT_MS,
        session_timeout_ms=SESSION_TIMEOUT_MS, heartbeat_interval_ms=HEARTBEAT_MS,
    )  # fmt: skip
    await consumer.start()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=LINGER_MS)
    await producer.start()
    arrivals: dict[bytes, float] = {}

    async def sink() -> None:
        while True:
            batches = await consumer.getmany(timeout_ms=100)
            now = time.perf_counter()
            for records in batches.values():
                for rec in records:
                    arrivals.setdefault(rec.headers[0][1], now)

    task = asyncio.create_task(sink())
    try:

        async def send_round(minute: int, sent: dict[bytes, float] | None) -> None:
            # warm-up rounds (sent is None) are not measured: paced faster
            gap = 1.0 / (RATE if sent is not None else WARM_RATE)
            start = time.perf_counter()
            for i in range(SYMBOLS):
                sym, raw = candle(history, i, minute, topics[0])
                tag = f"{sym}|{minute}".encode()
                if sent is not None:
                    sent[tag] = time.perf_counter()
                await producer.send(topics[0], raw, key=sym.encode(), headers=[("k", tag)])
                delay = start + (i + 1) * gap - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)

        warm_tag = f"B{SYMBOLS - 1:03d}USDT|{2}".encode()
        for minute in range(3):
            await send_round(minute, None)
        deadline = time.monotonic() + 120
        while warm_tag not in arrivals:
            if time.monotonic() > deadline or relay.poll() is not None:
                raise RuntimeError("baseline relay chain did not deliver")
            await asyncio.sleep(0.05)
        sent: dict[bytes, float] = {}
        for r in range(ROUNDS):
            await send_round(3 + r, sent)
        deadline = time.monotonic() + 60
        while not all(k in arrivals for k in sent) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        return [(arrivals[k] - t) * 1000 for k, t in sent.items() if k in arrivals]
    finally:
        task.cancel()
        await producer.stop()
        await consumer.stop()
        relay.terminate()
        relay.wait(10)


async def _main() -> list[Row]:
    from perpsignal_common.embedded import EmbeddedKafka

    if not MARKET.exists():
        print(f"skipped: {MARKET} is not present (the benchmark replays real candles)")
        return []
    history = load_history()
    logs = Path(tempfile.mkdtemp(prefix="bench-e2e-"))
    broker = EmbeddedKafka(log_path=logs / "broker.log").start()
    try:
        base = await measure_baseline(broker.bootstrap, history, logs)
        e2e = await measure_platform(broker.bootstrap, history, logs)
    finally:
        broker.stop()
    n = SYMBOLS * ROUNDS
    print(f"{len(e2e)}/{n} signals, {len(base)}/{n} baseline messages; "
          f"fetch wait {FETCH_WAIT_MS} ms, {RATE:g} candles/s; logs in {logs}")  # fmt: skip
    if not e2e or not base:
        raise RuntimeError("nothing measured")
    e50, e99 = statistics.median(e2e), pct(e2e, 0.99)
    b50, b99 = statistics.median(base), pct(base, 0.99)
    wait = (
        f"fetch wait {FETCH_WAIT_MS} ms, shipped default"
        if FETCH_WAIT_MS == SHIPPED_FETCH_WAIT_MS
        else f"fetch wait {FETCH_WAIT_MS} ms, NOT the shipped {SHIPPED_FETCH_WAIT_MS} ms"
    )
    what = f"{SYMBOLS} symbols, rule judge, {wait}"
    return [
        Row(f"e2e latency p50 ({what})", e50, "ms", "raw aiokafka 3-hop chain p50", b50,
            "info", higher_is_better=False),
        Row(f"e2e latency p99 ({what})", e99, "ms", "raw aiokafka 3-hop chain p99", b99,
            f"<= {GOAL_VS_RAW:g}x the raw chain", higher_is_better=False,
            goal_ratio=GOAL_VS_RAW),
        Row("e2e signals delivered", len(e2e), "signals", "candles sent", n,
            "all delivered", goal_ratio=1.0),
        Row.absolute(f"e2e latency p99 ({what})", e99, "ms", f"p99 < {GOAL_P99_MS:g} ms",
                     limit=GOAL_P99_MS, higher_is_better=False,
                     baseline_name="raw aiokafka 3-hop chain p99", baseline_value=b99),
    ]  # fmt: skip


def main() -> list[dict[str, object]]:
    """Run the benchmark and return its rows."""
    rows = asyncio.run(_main())
    return report("e2e_latency", rows) if rows else []


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--relay":
        asyncio.run(relay_chain(sys.argv[2], sys.argv[3:]))
    else:
        main()
