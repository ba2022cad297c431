"""Capacity: throughput and consumer lag of scorer, judge and outcomes by replica count.

The market: BENCH_CAPACITY_SYMBOLS (default 2,000) symbols, each closing
BENCH_CAPACITY_CANDLES (default 3) 1-minute candles, every symbol a real recorded price path
(FTX BTC-PERP 1m history from ../shared/data/market, each symbol at its own offset; the same
synthetic-from-recorded candles as `e2e_latency`). They are published straight onto
`perpsignal.market.v1`: the ingestor polls on a schedule (a closed candle per timeframe per
symbol, under Binance's weight budget), so it cannot be driven at the rate that loads the
consumers; the replay takes its place, as in `perpsignal demo`.

Per service, the same backlog is consumed by 1 and then 2 replicas (real processes,
`python -m perpsignal_<svc>`, one consumer group, 12 partitions, each trial on its own topic
prefix): the scorer the candles, the judge the scorer's own output (its signals, recorded in
the 1-replica scorer trial), outcomes the judge's output plus the candles. Lag is read every
0.25 s as the group's committed offsets against the partitions' ends (OffsetFetch, as a
restarting replica resumes), so it is the lag KEDA's Kafka scaler sees. The replicas start
first; the backlog is published once every replica holds its partitions (read from the
consumers' ownership log lines), so neither start-up nor a rebalance is measured.
Throughput = backlog / (drain end - first commit).

Rows: each service's 2-replica throughput against its 1-replica throughput of the same run
(the ratio is what a second replica buys on this machine; on 2 shared cores it cannot reach
2), and the seconds to drain the backlog. `bench/results/capacity.json` holds the rows,
`capacity_lag.json` the lag samples. deploy/README.md's capacity table is derived from the
1-replica figures (see there).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench.common import RESULTS, Row, machine, report
from bench.e2e_latency import MARKET, candle, load_history

REPO = Path(__file__).resolve().parents[1]
SYMBOLS = int(os.environ.get("BENCH_CAPACITY_SYMBOLS", "2000"))
CANDLES = int(os.environ.get("BENCH_CAPACITY_CANDLES", "3"))
PARTITIONS = 12
DRAIN_LIMIT_S = float(os.environ.get("BENCH_CAPACITY_LIMIT_S", "600"))
INPUTS = {  # service -> the topics its group consumes that carry the backlog
    "scorer": ("perpsignal.market.v1",),
    "judge": ("perpsignal.signals.v1",),
    "outcomes": ("perpsignal.signals.judged.v1", "perpsignal.market.v1"),
}
OUTPUT = {"scorer": "perpsignal.signals.v1", "judge": "perpsignal.signals.judged.v1"}

Rec = tuple[bytes | None, bytes, list[tuple[str, bytes]]]  # key, value, headers


async def settled(paths: list[Path], topic: str, procs: list[subprocess.Popen[bytes]]) -> None:
    """Wait until every replica holds some of `topic`'s partitions and all are held once,
    read from the consumers' ownership log lines ("partitions assigned"/"revoked")."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        for p in procs:
            if p.poll() is not None:
                raise RuntimeError(f"a replica exited with {p.returncode}: {paths}")
        held: list[set[str]] = []
        for path in paths:
            mine: set[str] = set()
            for line in path.read_text(errors="replace").splitlines():
                if '"partitions ' not in line:
                    continue
                with contextlib.suppress(ValueError):
                    rec = json.loads(line)
                    parts = {x for x in rec.get("partitions", []) if x.startswith(topic + ":")}
                    if rec.get("msg") == "partitions assigned":
                        mine |= parts
                    elif rec.get("msg") == "partitions revoked":
                        mine -= parts
            held.append(mine)
        every = [x for mine in held for x in mine]
        if all(held) and len(every) == len(set(every)) == PARTITIONS:
            await asyncio.sleep(1.0)  # and its first fetches issued
            return
        await asyncio.sleep(0.25)
    raise RuntimeError(f"the group never settled: {paths}")


@dataclass
class Trial:
    """One service at one replica count: its drain and the lag seen on the way."""

    service: str
    replicas: int
    records: int
    started: float = 0.0
    first_commit: float | None = None
    drained: float | None = None
    samples: list[tuple[float, int]] = field(default_factory=list)

    @property
    def rate(self) -> float:
        if self.first_commit is None or self.drained is None:
            return 0.0
        return self.records / max(1e-6, self.drained - self.first_commit)

    @property
    def drain_s(self) -> float:
        return (self.drained or 0.0) - (self.first_commit or 0.0)


def service_env(service: str, kafka_env: dict[str, str], db_url: str) -> dict[str, str]:
    """What each replica runs with: quiet logs, rule judge, outcomes on market time."""
    from perpsignal_common.embedded import free_port

    # INFO: the ownership lines `settled` reads (a few per rebalance, nothing per record)
    env = {**os.environ, **kafka_env, "LOG_FORMAT": "json", "LOG_LEVEL": "INFO",
           "ENVIRONMENT": "test", "OPS_HOST": "127.0.0.1", "OPS_PORT": str(free_port()),
           "DATABASE_URL": db_url}  # fmt: skip
    if service == "scorer":
        env |= {"SCORER_PRIMARY_TIMEFRAME": "1m", "SCORER_SMC_TIMEFRAMES": "1m,5m",
                "SCORER_GLOBAL_WARMUP_S": "0.5"}  # fmt: skip
    elif service == "judge":
        env |= {"ENABLE_AI_JUDGE": "false"}
    elif service == "outcomes":
        env |= {"OUTCOMES_CLOCK": "event", "OUTCOMES_KLINES_FALLBACK": "false",
                "OUTCOMES_CANDLE_TIMEFRAMES": "1m"}  # fmt: skip
    return env


async def publish(
    bootstrap: str, prefix: str, inputs: dict[str, list[Rec]]
) -> dict[TopicPartition, int]:
    """Publish the backlog onto the prefixed topics; return each partition's end offset."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, acks="all",
                                max_batch_size=1 << 20)  # fmt: skip
    await producer.start()
    try:
        futures = [
            await producer.send(prefix + topic, value=value, key=key, headers=headers)
            for topic, recs in inputs.items()
            for key, value, headers in recs
        ]
        written = await asyncio.gather(*futures)
    finally:
        await producer.stop()
    ends: dict[TopicPartition, int] = {}
    for meta in written:
        tp = TopicPartition(meta.topic, meta.partition)
        ends[tp] = max(ends.get(tp, 0), meta.offset + 1)
    return ends


async def read_all(bootstrap: str, topic: str, expect: int, limit_s: float = 120) -> list[Rec]:
    """Read `topic` from the beginning until `expect` records (redeliveries deduplicated by
    event id) have come; return them as they were produced."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest", fetch_max_wait_ms=50)  # fmt: skip
    await consumer.start()
    seen: dict[bytes, Rec] = {}
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        deadline = time.monotonic() + limit_s
        while len(seen) < expect and time.monotonic() < deadline:
            for recs in (await consumer.getmany(timeout_ms=200, max_records=5000)).values():
                for r in recs:
                    ident = dict(r.headers).get("event_id", r.value)
                    seen[ident] = (r.key, r.value, list(r.headers))
    finally:
        await consumer.stop()
    return list(seen.values())


async def lag(probe: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> tuple[int, int]:
    """Return (records the group has yet to commit, records it has committed)."""
    behind = done = 0
    for tp, end in ends.items():
        committed = await probe.committed(tp) or 0
        behind += max(0, end - committed)
        done += min(end, committed)
    return behind, done


async def run_trial(
    bootstrap: str, db_url: str, service: str, replicas: int, inputs: dict[str, list[Rec]],
    logs: Path,
) -> tuple[Trial, str]:  # fmt: skip
    """Publish the backlog on a fresh prefix, start `replicas` processes, follow the lag."""
    from perpsignal_common.kafka.admin import ensure_topics
    from perpsignal_common.settings import KafkaSettings

    prefix = f"cap{uuid.uuid4().hex[:8]}."
    kafka_env = {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "KAFKA_TOPIC_PREFIX": prefix,
        "KAFKA_TOPIC_PARTITIONS": str(PARTITIONS), "KAFKA_SESSION_TIMEOUT_MS": "6000",
        "KAFKA_HEARTBEAT_INTERVAL_MS": "2000", "KAFKA_FETCH_MAX_WAIT_MS": "50",
    }  # fmt: skip
    kafka = KafkaSettings(kafka_bootstrap_servers=bootstrap, kafka_topic_prefix=prefix,
                          kafka_topic_partitions=PARTITIONS)  # fmt: skip
    await ensure_topics(kafka)
    # a member of no generation: it only asks the group's committed offsets (OffsetFetch)
    probe = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=kafka.group(service),
                             enable_auto_commit=False)  # fmt: skip
    await probe.start()
    procs = []
    paths = [logs / f"{prefix}{service}-{i}.log" for i in range(replicas)]
    for path in paths:
        out = open(path, "wb")  # noqa: SIM115, ASYNC230
        procs.append(subprocess.Popen(  # noqa: ASYNC220
            [sys.executable, "-m", f"perpsignal_{service}"], cwd=REPO,
            env=service_env(service, kafka_env, db_url), stdout=out, stderr=subprocess.STDOUT,
        ))  # fmt: skip
    try:
        # the backlog arrives once the group is stable: no rebalance inside the measurement
        await settled(paths, prefix + INPUTS[service][0], procs)
        trial = Trial(service, replicas, sum(len(recs) for recs in inputs.values()))
        trial.started = time.monotonic()
        ends = await publish(bootstrap, prefix, inputs)
        assert sum(ends.values()) == trial.records, (ends, trial.records)
        while time.monotonic() - trial.started < DRAIN_LIMIT_S:
            for p in procs:
                if p.poll() is not None:
                    raise RuntimeError(f"{service} exited with {p.returncode} (logs: {logs})")
            behind, done = await lag(probe, ends)
            now = time.monotonic()
            trial.samples.append((round(now - trial.started, 2), behind))
            if done and trial.first_commit is None:
                trial.first_commit = now  # the first batch handled: the pipeline is full
            if behind == 0:
                trial.drained = now
                break
            await asyncio.sleep(0.25)
        else:
            raise RuntimeError(f"{service} x{replicas} did not drain in {DRAIN_LIMIT_S}s")
    finally:
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        await probe.stop()
    return trial, prefix


async def measure(bootstrap: str, db_url: str, market: list[Rec], logs: Path) -> list[Trial]:
    """Run every service at 1 then 2 replicas, each stage fed the previous one's output."""
    trials: list[Trial] = []
    inputs: dict[str, dict[str, list[Rec]]] = {"scorer": {INPUTS["scorer"][0]: market}}
    for service in ("scorer", "judge", "outcomes"):
        for n in (1, 2):
            trial, prefix = await run_trial(bootstrap, db_url, service, n, inputs[service], logs)
            trials.append(trial)
            print(f"{service} x{n}: {trial.records} records, {trial.rate:,.0f}/s, "
                  f"drained in {trial.drain_s:.1f}s (first commit after "
                  f"{(trial.first_commit or 0) - trial.started:.1f}s)", flush=True)  # fmt: skip
            if n == 1 and service in OUTPUT:
                out = await read_all(bootstrap, prefix + OUTPUT[service], trial.records)
                nxt = "judge" if service == "scorer" else "outcomes"
                inputs[nxt] = {OUTPUT[service]: out}
                if nxt == "outcomes":
                    inputs[nxt][INPUTS["scorer"][0]] = market
    return trials


def rows_of(trials: list[Trial]) -> list[Row]:
    """Each service's 2-replica figures against its 1-replica figures of the same run."""
    by = {(t.service, t.replicas): t for t in trials}
    rows = []
    for service in ("scorer", "judge", "outcomes"):
        one, two = by[(service, 1)], by[(service, 2)]
        # no pass mark: the ratio is what a second replica buys on *this* machine (about 2
        # with a free core per replica, about 1 when the cores are already busy)
        rows.append(Row(f"{service} throughput, 2 replicas", two.rate, "records/s",
                        f"{service}, 1 replica", one.rate,
                        "ratio = gain of a 2nd replica here"))  # fmt: skip
        rows.append(Row(f"{service} backlog drain, 2 replicas", two.drain_s, "s",
                        f"{service}, 1 replica", one.drain_s, "shorter",
                        higher_is_better=False))  # fmt: skip
    return rows


def main() -> list[dict[str, object]]:
    """Run the benchmark and return its rows."""
    from perpsignal_common.db.migrate import upgrade
    from perpsignal_common.embedded import EmbeddedKafka, EmbeddedPostgres

    if not MARKET.exists():
        print(f"skipped: {MARKET} is not present (the benchmark replays real candles)")
        return []
    history = load_history()
    market: list[Rec] = []
    for minute in range(CANDLES):  # candle after candle, every symbol each minute
        for i in range(SYMBOLS):
            sym, value = candle(history, i, minute, "capacity")
            market.append((sym.encode(), value, []))
    logs = Path(tempfile.mkdtemp(prefix="bench-capacity-"))
    broker = EmbeddedKafka(log_path=logs / "broker.log").start()
    pg = EmbeddedPostgres(logs / "postgres", durable=False).start()
    try:
        db_url = pg.url()
        upgrade(db_url.replace("postgresql://", "postgresql+asyncpg://", 1))
        trials = asyncio.run(measure(broker.bootstrap, db_url, market, logs))
    finally:
        broker.stop()
        pg.stop()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "capacity_lag.json").write_text(json.dumps({
        "machine": machine(), "symbols": SYMBOLS, "candles_per_symbol": CANDLES,
        "trials": [{"service": t.service, "replicas": t.replicas, "records": t.records,
                    "records_per_s": round(t.rate, 1), "drain_s": round(t.drain_s, 2),
                    "lag_samples": t.samples} for t in trials],
    }, indent=2))  # fmt: skip
    print(f"logs: {logs}")
    return report("capacity", rows_of(trials))


if __name__ == "__main__":
    main()


__all__ = ["Trial", "main", "measure", "run_trial"]
