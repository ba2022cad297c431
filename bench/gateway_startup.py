"""Gateway start-up: a new replica ready from the read-model snapshot vs re-reading 7 days.

A stream of 7 days of market events for 200 symbols goes onto the embedded broker: per
symbol 5-minute candles, open interest and global long/short ratio every 5 minutes, funding
every 8 hours, and a judged signal every 4 hours. Everything is recorded data (the bundled
Binance/FTX candles, Binance XRPUSDT funding, Binance BTCUSDT open interest and ratios,
signals of the real scorer + rule judge via tests/producers.py), each symbol a different
window of it, shifted in time to end now.

Then real gateway processes (`python -m perpsignal_gateway`) are timed from spawn to the first
`/readyz` 200 (every process pays the same interpreter and import start-up):

1. a first replica with no snapshot yet (re-reads everything; it is elected writer and
   publishes the snapshot);
2. a new replica starting from that snapshot (`GATEWAY_SNAPSHOT_READ=true`, the default);
3. a new replica re-reading the topics (`GATEWAY_SNAPSHOT_READ=false`): the same-run baseline.

Goals: the snapshot replica ready in < 10 s, and its ratio to the re-read baseline. Both new
replicas must then serve the same signals and market state.

Measured 2026-12-06 on the shared 2-core box (load average ~5-8 from other sessions): 1,222,200
events; the new replica from the snapshot ready 3.9 s after spawn (read model 0.5 s from connect
to caught up) vs 36.4 s re-reading (read model 32.8 s): ratio 0.11 (0.01 for the read model).
Under a load average of ~15 an earlier run gave 19.5 s vs 126 s spawn-to-ready, of which ~18 s
was the interpreter importing the gateway; the read model itself took 1.6 s vs 109 s.

Run: `uv run python bench/gateway_startup.py` (several minutes: producing the stream
dominates). `BENCH_STARTUP_SYMBOLS` / `BENCH_STARTUP_DAYS` scale it down for a quick look.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import Row, report
from perpsignal_cli.backtesting.importers import (
    aggregate,
    candle_events,
    read_candles,
    read_funding,
    read_long_short,
    read_open_interest,
)
from perpsignal_common.embedded import EmbeddedKafka
from perpsignal_common.events.base import Event, deterministic_id
from perpsignal_common.events.topics import Topic
from perpsignal_common.kafka.admin import ensure_topics
from perpsignal_common.kafka.producer import EventProducer
from perpsignal_common.settings import KafkaSettings
from tests.recorded import recorded_data_dir
from tests.unit.gateway import builders as b

REPO = Path(__file__).resolve().parents[1]
SYMBOLS = int(os.environ.get("BENCH_STARTUP_SYMBOLS", "200"))
DAYS = float(os.environ.get("BENCH_STARTUP_DAYS", "7"))
STEP = timedelta(minutes=5)
SIGNAL_EVERY = 48  # candles: one judged signal per 4 h
READY_GOAL_S = 10.0


@dataclass
class AbsRow(Row):
    """A row whose goal is an absolute bound on the value (lower is better)."""

    limit: float | None = None

    @property
    def passed(self) -> bool | None:
        return None if self.limit is None else self.value <= self.limit


class Templates:
    """The recorded series every symbol's history is cut from."""

    def __init__(self, data: Path) -> None:
        market = data / "market"
        self.candles = [
            candle_events(read_candles(market / "ETH_BTC-5m.csv"), "X"),
            candle_events(read_candles(market / "ADA_BTC-5m.csv"), "X"),
            candle_events(
                aggregate(read_candles(market / "ftx-btc-perp-20211231-20220201_1m.csv"), "5m"),
                "X",
            ),
        ]
        self.funding = read_funding(market / "XRP_USDT_USDT-8h-funding_rate.csv", "X")
        flows = market / "binance-BTCUSDT-5m-oi_longshort_basis.csv"
        self.oi = read_open_interest(flows, "X")
        self.ratios = [e for e in read_long_short(flows, "X") if e.kind == "global_account"]
        # judged signals of the real scorer + rule judge, each re-keyed per symbol and time
        self.signals = [
            b.signal("XUSDT", direction=d, score=s) for d in ("LONG", "SHORT") for s in (35, 70)
        ]


def symbol_history(t: Templates, n: int, end: datetime) -> list[Event]:
    """Return symbol `n`'s events: its own window of the recorded series, ending at `end`."""
    sym = f"S{n:04d}USDT"
    count = int(DAYS * 86400 / STEP.total_seconds())
    series = t.candles[n % len(t.candles)]
    first = (n * 131) % (len(series) - count)
    window = series[first : first + count]
    # the window's last candle closes at `end` (a recorded gap makes it start earlier): no
    # event may lie in the future, which a gateway would refuse then and accept later
    shift = end - window[-1].observed_at
    out: list[Event] = []
    for k, c in enumerate(window):
        at = c.observed_at + shift
        out.append(_moved(c, sym, at, open_time=c.open_time + shift))
        oi = t.oi[(k + n) % len(t.oi)]
        out.append(_moved(oi, sym, at))
        ratio = t.ratios[(k + n) % len(t.ratios)]
        out.append(_moved(ratio, sym, at))
        if k % SIGNAL_EVERY == SIGNAL_EVERY - 1:
            judged = t.signals[(k // SIGNAL_EVERY + n) % len(t.signals)]
            out.append(_moved(judged, sym, at, score=float(20 + (k + n) % 60)))
        if k % 96 == 0:  # 8 h
            funding = t.funding[(k // 96 + n) % len(t.funding)]
            out.append(_moved(funding, sym, at))
    return out


def _moved(event: Event, symbol: str, at: datetime, **more: Any) -> Event:
    if "signal_id" in type(event).model_fields:
        more["signal_id"] = deterministic_id("bench-signal", symbol, at)
    return event.model_copy(
        update={
            "symbol": symbol,
            "observed_at": at,
            "produced_at": at,
            "event_id": deterministic_id("bench", event.type, symbol, at),
            **more,
        }
    )


async def produce(kafka: KafkaSettings) -> int:
    """Publish every symbol's history; return the number of events."""
    data = recorded_data_dir()
    if data is None:
        raise SystemExit("no recorded data (data/recorded/recorded-data.tar.xz)")
    t = Templates(data)
    end = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=10)
    producer = EventProducer(kafka, service="bench")
    await producer.start()
    total = 0
    try:
        for n in range(SYMBOLS):
            events = symbol_history(t, n, end)
            for event in events:
                await producer.publish(event)
            await producer.wait_delivered()
            total += len(events)
            if n % 20 == 19:
                print(f"  produced {n + 1}/{SYMBOLS} symbols, {total:,} events", flush=True)
    finally:
        await producer.stop()
    return total


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Replica:
    """One gateway process, timed from spawn to its first /readyz 200."""

    def __init__(self, name: str, kafka: KafkaSettings, logs: Path, **env: str) -> None:
        self.name = name
        self.port = _free_port()
        self.env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": kafka.kafka_bootstrap_servers,
            "KAFKA_TOPIC_PREFIX": kafka.kafka_topic_prefix,
            "GATEWAY_PORT": str(self.port),
            "GATEWAY_HOST": "127.0.0.1",
            "GATEWAY_ENABLE_DATABASE": "false",
            "LOG_FORMAT": "json",
            **env,
        }
        self.log = logs / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"http://127.0.0.1:{self.port}"

    def _spawn(self) -> subprocess.Popen[bytes]:
        with open(self.log, "ab") as out:
            return subprocess.Popen(
                [sys.executable, "-m", "perpsignal_gateway"],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=REPO,
                start_new_session=True,
            )

    async def start_and_wait_ready(self, timeout_s: float = 900) -> float:
        started = time.monotonic()
        self.proc = self._spawn()
        async with httpx.AsyncClient(timeout=2) as client:
            while time.monotonic() - started < timeout_s:
                if self.proc.poll() is not None:
                    raise SystemExit(f"{self.name} exited; see {self.log}")
                try:
                    r = await client.get(self.url + "/readyz")
                    if r.status_code == 200:
                        return time.monotonic() - started
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.05)
        raise SystemExit(f"{self.name} not ready after {timeout_s} s; see {self.log}")

    async def get(self, path: str) -> Any:
        async with httpx.AsyncClient(timeout=10) as client:
            return (await client.get(self.url + path)).json()

    def caught_up_s(self) -> float:
        """Return the read model's own figure: connect to caught up (from its log line)."""
        for line in self.log.read_text(errors="replace").splitlines():
            if '"read model caught up"' in line:
                return float(orjson.loads(line)["seconds"])
        raise SystemExit(f"{self.name} logged no catch-up; see {self.log}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


async def wait_for_dump(kafka: KafkaSettings, timeout_s: float = 300) -> None:
    """Wait until the snapshot topic holds a full dump's closing marker."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    topic = kafka.topic(Topic.GATEWAY_SNAPSHOT)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka.kafka_bootstrap_servers,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=50,
    )
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            if any(r.key == b"dump:dump" for rs in batches.values() for r in rs):
                return
        raise SystemExit("no snapshot dump was written")
    finally:
        await consumer.stop()


def _served(path: str, body: dict[str, Any]) -> Any:
    """Return what must match between replicas (ages tick with the clock: left out)."""
    if path == "/signals":
        return [(s["symbol"], s["score"], s["timestamp"]) for s in body["signals"]]
    if path.startswith("/signals/"):
        return (body["symbol"], body["score"], body["timestamp"])
    return sorted((s["type"], s["observedAt"]) for s in body["sources"])


async def main() -> None:
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    broker = None if external else EmbeddedKafka().start()
    bootstrap = external or (broker.bootstrap if broker else "")
    kafka = KafkaSettings(
        kafka_bootstrap_servers=bootstrap,
        kafka_topic_prefix=f"bench{uuid.uuid4().hex[:6]}.",
        kafka_linger_ms=20,
    )
    logs = Path(tempfile.mkdtemp(prefix="bench-gateway-startup-"))
    replicas: list[Replica] = []
    try:
        await ensure_topics(kafka)
        print(f"producing {DAYS:g} days of market events for {SYMBOLS} symbols ...", flush=True)
        t0 = time.monotonic()
        total = await produce(kafka)
        print(f"  {total:,} events in {time.monotonic() - t0:.0f} s", flush=True)

        writer = Replica(
            "first", kafka, logs, GATEWAY_SNAPSHOT_WRITE="true", GATEWAY_SNAPSHOT_INTERVAL_S="5"
        )
        replicas.append(writer)
        first_s = await writer.start_and_wait_ready()
        print(f"  first replica (no snapshot yet) ready in {first_s:.1f} s", flush=True)
        await wait_for_dump(kafka)

        fast = Replica("snapshot", kafka, logs, GATEWAY_SNAPSHOT_WRITE="false")
        replicas.append(fast)
        fast_s = await fast.start_and_wait_ready()
        ready = await fast.get("/readyz")
        print(f"  new replica from the snapshot ready in {fast_s:.1f} s ({ready})", flush=True)
        if ready.get("startedFrom") != "snapshot":
            raise SystemExit("the new replica did not start from the snapshot")

        full = Replica(
            "reread",
            kafka,
            logs,
            GATEWAY_SNAPSHOT_WRITE="false",
            GATEWAY_SNAPSHOT_READ="false",
        )
        replicas.append(full)
        full_s = await full.start_and_wait_ready()
        print(f"  new replica re-reading the topics ready in {full_s:.1f} s", flush=True)

        for path in ("/signals", "/market/S0007USDT", "/signals/S0011USDT"):
            seen = [_served(path, await r.get(path)) for r in (fast, full)]
            if seen[0] != seen[1]:
                raise SystemExit(f"the two replicas serve different {path}: {seen}")
    finally:
        for r in replicas:
            r.stop()
        if broker is not None:
            broker.stop()

    size = f"{SYMBOLS} sym, {DAYS:g} d, {total:,} ev"
    rows: list[Row] = [
        AbsRow(
            name=f"new replica: spawn to /readyz 200, from snapshot ({size})",
            value=fast_s,
            unit="s",
            baseline_name="new replica: spawn to /readyz 200, re-reading the topics",
            baseline_value=full_s,
            goal=f"< {READY_GOAL_S:g} s",
            higher_is_better=False,
            limit=READY_GOAL_S,
        ),
        Row(
            name="new replica: read model connect to caught up, from snapshot",
            value=fast.caught_up_s(),
            unit="s",
            baseline_name="new replica: read model connect to caught up, re-reading",
            baseline_value=full.caught_up_s(),
            goal="ratio (history-independent with the snapshot)",
            higher_is_better=False,
        ),
        Row(
            name="first replica: spawn to /readyz 200, no snapshot yet",
            value=first_s,
            unit="s",
            baseline_name="new replica: spawn to /readyz 200, re-reading the topics",
            baseline_value=full_s,
            goal="info (same work as the baseline)",
            higher_is_better=False,
        ),
    ]
    report("gateway_startup", rows)


if __name__ == "__main__":
    asyncio.run(main())
