"""Outcomes throughput and analytics latency on the embedded PostgreSQL.

* Signals stored/s per process: 8 concurrent handlers each storing one event (3 due rows) and
  waiting until it is committed, through `repository.SignalWriter` as the Kafka handler does
  (concurrent handlers share one INSERT statement). Baseline, same run: a one-row INSERT per
  transaction into a scratch table at the same concurrency (the DB floor). Goal (same run)
  >= 1.0x that floor; >= 2,000/s as an absolute figure.
  An extra row without a goal shows `repository.store_signals` with one transaction per event.
* Due evaluations completed/s per process: `Tracker.evaluate_batch` over real XRPUSDT 5m
  candles (1h/4h/24h paths: 12/48/288 candles each). Baseline, same run: claiming the same
  number of rows with SKIP LOCKED and marking them done without reading candles. Goal (same
  run) >= 0.5x that; >= 2,000/s as an absolute figure.
* Analytics latency on 1,000,000 outcome rows (generated with INSERT ... SELECT generate_series):
  median of 5 runs of each `perpsignal_common.db.analytics` query. Baseline, same run: a plain
  `count(*)` over the table, shown for context. Goal < 200 ms each (absolute figures).
* Signal research (`GET /analytics/signal-research`, one horizon, the newest 20,000 outcomes
  with 8 factor sub-scores each): query plus block-bootstrap statistics, median of 3 runs;
  baseline, same run: its query alone. Goal < 2 s (absolute; the gateway caches each answer
  for 60 s).

Run: `uv run python bench/outcomes_throughput.py` (uses DATABASE_URL's server when set, else an
embedded PostgreSQL in a temporary folder). `--signals N` / `--rows N` (or BENCH_OUTCOMES_SIGNALS,
default 5,000, and BENCH_OUTCOMES_ROWS, default 1,000,000) change the sizes.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import Row, report
from perpsignal_common.db import analytics
from perpsignal_common.db.engine import create_engine, create_sessionmaker, session_scope
from perpsignal_common.db.migrate import upgrade
from perpsignal_common.events.signals import SignalJudgedV1, VerdictLayer, VolatilityMetrics
from perpsignal_common.settings import DatabaseSettings
from perpsignal_outcomes import repository as repo
from perpsignal_outcomes.settings import OutcomesSettings
from perpsignal_outcomes.tracker import Tracker

REPO = Path(__file__).resolve().parents[1]
XRP = REPO.parent / "shared" / "data" / "market" / "XRP_USDT_USDT-5m-futures.csv"
HORIZONS = {"1h": 3600, "4h": 14_400, "24h": 86_400}
CONCURRENCY = 8
T0 = datetime(2021, 11, 15, 0, 5, tzinfo=UTC)


def signal(i: int) -> SignalJudgedV1:
    sid = uuid.uuid4().hex
    # entries every 5 min over the first 5.5 days of the recording: every 24h path exists
    at = T0 + timedelta(minutes=5 * (i % 1580))
    long = bool(i % 2)
    # a plan on its direction's sides of the price (the contract refuses any other)
    stop, target = (1.05, 1.2) if long else (1.15, 1.0)
    return SignalJudgedV1(
        event_id=f"ev-{sid}",
        source="judge",
        symbol="XRPUSDT",
        observed_at=at,
        signal_id=sid,
        timeframe="5m",
        direction="LONG" if long else "SHORT",
        score=float(i % 100),
        confidence=60.0,
        price=1.1,
        ai_verdict_layer=VerdictLayer(
            verdict=("CONFIRM", "DOWNSIZE", "SKIP", "WAIT")[i % 4],
            risk_mode="NORMAL",
            position_multiplier=1.0,
            ai_summary="bench",
            volatility_metrics=VolatilityMetrics(stop_loss_price=stop, take_profit_price=target),
        ),
    )


async def run_concurrently(n: int, work: Callable[[int], Awaitable[None]]) -> float:
    """Run work(0..n-1) on CONCURRENCY workers; return items per second."""
    counter = iter(range(n))

    async def worker() -> None:
        for i in counter:
            await work(i)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return n / (time.perf_counter() - started)


async def bench_store(sessions: async_sessionmaker[AsyncSession], url: str, n: int) -> list[Row]:
    events = [signal(i) for i in range(n)]

    async def store(i: int) -> None:
        async with session_scope(sessions) as s:
            await repo.store_signals(s, [events[i]], HORIZONS, timedelta(0))

    async with session_scope(sessions) as s:
        await s.execute(text("CREATE TABLE IF NOT EXISTS bench_scratch (id text PRIMARY KEY)"))

    async def scratch(i: int) -> None:
        async with session_scope(sessions) as s:
            await s.execute(text("INSERT INTO bench_scratch VALUES (:i)"), {"i": f"{i}"})

    writer = repo.SignalWriter(
        url.replace("+asyncpg", ""), HORIZONS, timedelta(0), pool_size=CONCURRENCY
    )
    batched = [signal(i) for i in range(n)]

    async def handler(i: int) -> None:
        await writer.store(batched[i])

    base = await run_concurrently(n, scratch)
    rate = await run_concurrently(n, store)
    try:
        batched_rate = await run_concurrently(n, handler)
    finally:
        await writer.close()
    # the evaluation benchmark below works on the n signals of the first run, as before
    async with session_scope(sessions) as s:
        await s.execute(
            text("DELETE FROM outcome_signals WHERE signal_id = ANY(:ids)"),
            {"ids": [e.signal_id for e in batched]},
        )
    return [
        Row(
            "signals stored/s (3 due rows each)",
            batched_rate,
            "signals/s",
            "1-row INSERT per transaction",
            base,
            ">= 1.0x (a signal and its rows cost no more than one trivial insert)",
            goal_ratio=1.0,
        ),
        Row.absolute(
            "signals stored/s (3 due rows each)",
            batched_rate,
            "signals/s",
            ">= 2,000/s",
            limit=2000,
            baseline_name="1-row INSERT per transaction",
            baseline_value=base,
        ),
        Row(
            "store_signals, one transaction per signal",
            rate,
            "signals/s",
            "1-row INSERT per transaction",
            base,
            "(no goal)",
        ),
    ]


async def bench_evaluate(sessions: async_sessionmaker[AsyncSession], n_signals: int) -> list[Row]:
    with XRP.open() as f:
        candles = [
            {
                "symbol": "XRPUSDT",
                "timeframe": "5m",
                "open_time": datetime.fromtimestamp(int(r["open_time"]) / 1000, tz=UTC),
                "open": float(r["open"]),
                "high": float(r["high"]),
                "low": float(r["low"]),
                "close": float(r["close"]),
                "source": "stream",
            }
            for r in csv.DictReader(f)
        ]
    async with session_scope(sessions) as s:
        await repo.store_candles(s, candles)
    later = datetime(2021, 12, 1, tzinfo=UTC)
    cfg = OutcomesSettings(
        outcomes_settle_s=0, outcomes_candle_timeframes="5m", outcomes_batch_size=500
    )

    # baseline: claim + mark done without candles, on a copy of the due rows
    async with session_scope(sessions) as s:
        await s.execute(text("UPDATE signal_outcomes SET status = 'pending'"))
    total = n_signals * 3
    started = time.perf_counter()
    while True:
        async with session_scope(sessions) as s:
            conn = await repo.driver_connection(s)
            async with conn.transaction():
                rows = await repo.claim_due(conn, later, 500)
                if not rows:
                    break
                await repo.defer(conn, [(r.id, "bench", later) for r in rows], status="failed")
    base = total / (time.perf_counter() - started)
    async with session_scope(sessions) as s:
        await s.execute(text("UPDATE signal_outcomes SET status = 'pending', attempts = 0"))
        await s.execute(text("ANALYZE signal_outcomes"))

    tracker = Tracker(cfg, sessions, None, clock=lambda: later, worker="bench")
    started = time.perf_counter()
    while await tracker.evaluate_batch():
        pass
    rate = tracker.completed / (time.perf_counter() - started)
    assert tracker.completed == total, (tracker.completed, total)
    return [
        Row(
            "due evaluations completed/s",
            rate,
            "rows/s",
            "claim + mark, no candles",
            base,
            ">= 0.5x (evaluating costs at most the bookkeeping)",
            goal_ratio=0.5,
        ),
        Row.absolute(
            "due evaluations completed/s",
            rate,
            "rows/s",
            ">= 2,000/s",
            limit=2000,
            baseline_name="claim + mark, no candles",
            baseline_value=base,
        ),
    ]


GENERATE = """
INSERT INTO outcome_signals (signal_id, event_id, symbol, timeframe, direction, score,
    confidence, price, observed_at, verdict, risk_mode, judge, position_multiplier,
    factors, verdict_layer)
SELECT 'g' || g, 'e' || g, 'SYM' || (g % 50), '5m',
    CASE WHEN g % 2 = 0 THEN 'LONG' ELSE 'SHORT' END,
    (g * 37 % 1000) / 10.0, 50, 100, now() - make_interval(mins => g % 130000),
    (ARRAY['CONFIRM','DOWNSIZE','SKIP','WAIT'])[1 + g % 4],
    (ARRAY['NORMAL','REDUCED','AVOID','AGGRESSIVE'])[1 + g / 4 % 4],
    CASE WHEN g % 3 = 0 THEN 'llm' ELSE 'rules' END, 1,
    (SELECT jsonb_agg(jsonb_build_object('name', f.name, 'score', (g * f.k) % 101,
                                         'weight', 12.5, 'contribution', 0,
                                         'status', CASE WHEN (g + f.k) % 5 = 0
                                                        THEN 'missing' ELSE 'ok' END))
       FROM unnest(ARRAY['liquidations','funding','momentum','long_short','smart_money',
                         'oi_trend','social','fear_greed'], ARRAY[7,11,13,17,19,23,29,31])
            AS f(name, k)),
    '{}'::jsonb
FROM generate_series(1, :n) AS g;

INSERT INTO signal_outcomes (signal_id, horizon, horizon_s, symbol, direction, verdict, risk_mode,
    judge, score, entry_price, entry_at, due_at, status, next_attempt_at, exit_price, pnl_pct,
    result, max_favorable_pct, max_adverse_pct, first_hit, evaluated_at, evaluation_count)
SELECT s.signal_id, h.name, h.secs, s.symbol, s.direction, s.verdict, s.risk_mode, s.judge,
    s.score, 100, s.observed_at, s.observed_at + make_interval(secs => h.secs),
    CASE WHEN r.u < 0.02 THEN 'pending' WHEN r.u < 0.03 THEN 'failed' ELSE 'completed' END,
    s.observed_at + make_interval(secs => h.secs),
    100 + r.pnl, r.pnl,
    CASE WHEN r.pnl > 0.1 THEN 'WIN' WHEN r.pnl < -0.1 THEN 'LOSS' ELSE 'NEUTRAL' END,
    abs(r.pnl) + 0.5, abs(r.pnl) + 0.4, 'none',
    s.observed_at + make_interval(secs => h.secs + 5), 1
FROM outcome_signals s
CROSS JOIN (VALUES ('1h', 3600), ('4h', 14400), ('24h', 86400)) AS h(name, secs)
CROSS JOIN LATERAL (SELECT random() AS u, (random() - 0.48 + s.score / 1000.0) * 4 AS pnl
                    OFFSET 0) AS r
WHERE s.signal_id LIKE 'g%';
"""


async def bench_analytics(
    sessions: async_sessionmaker[AsyncSession], url: str, rows: int
) -> list[Row]:
    conn = await asyncpg.connect(url.replace("+asyncpg", ""))
    try:
        started = time.perf_counter()
        for stmt in GENERATE.split(";\n\n"):
            await conn.execute(stmt.replace(":n", str(rows // 3 + 1)))
        # production autovacuum keeps the visibility map set; index-only scans depend on it
        await conn.execute("VACUUM (FREEZE, ANALYZE) signal_outcomes")
        await conn.execute("VACUUM ANALYZE outcome_signals")
        total = await conn.fetchval("SELECT count(*) FROM signal_outcomes")
        print(f"generated {total:,} outcome rows in {time.perf_counter() - started:.1f}s")
    finally:
        await conn.close()

    async def median_ms(query: Callable[[AsyncSession], Awaitable[Any]]) -> float:
        times = []
        for _ in range(6):
            async with sessions() as s:
                t = time.perf_counter()
                await query(s)
                times.append((time.perf_counter() - t) * 1000)
        return statistics.median(times[1:])  # the first run warms the cache

    async def count_all(s: AsyncSession) -> Any:
        return (await s.execute(text("SELECT count(*) FROM signal_outcomes"))).scalar()

    base = await median_ms(count_all)
    since = datetime.now(UTC) - timedelta(days=30)
    queries: list[tuple[str, Callable[[AsyncSession], Awaitable[Any]]]] = [
        ("verdict_performance()", analytics.verdict_performance),
        (
            "verdict_performance(4h, 30d)",
            lambda s: analytics.verdict_performance(s, horizon="4h", since=since),
        ),
        ("verdict_compare()", analytics.verdict_compare),
        ("verdict_compare(4h)", lambda s: analytics.verdict_compare(s, horizon="4h")),
        ("outcomes_history(page 1)", analytics.outcomes_history),
        (
            "outcomes_history(symbol, SKIP, 4h, page 5)",
            lambda s: analytics.outcomes_history(
                s, symbol="SYM7", verdict="SKIP", horizon="4h", offset=200
            ),
        ),
        ("tracking_stats()", analytics.tracking_stats),
        ("calibration(4h)", lambda s: analytics.calibration(s, horizon="4h")),
    ]
    out: list[Row] = []
    out += await bench_research(sessions, total)
    for name, q in queries:
        ms = await median_ms(q)
        out.append(
            Row.absolute(
                f"{name} on {total / 1e6:.1f}M rows",
                ms,
                "ms",
                "< 200 ms",
                limit=200,
                higher_is_better=False,
                baseline_name="count(*) of the table",
                baseline_value=base,
            )
        )
    return out


async def bench_research(sessions: async_sessionmaker[AsyncSession], total: int) -> list[Row]:
    """`GET /analytics/signal-research` at one horizon: the query and the statistics."""
    from perpsignal_gateway.research import compute

    async def fetch(s: AsyncSession) -> analytics.TrackedOutcomes:
        return await analytics.tracked_outcomes(s, horizon="4h", limit=20_000)

    query, whole = [], []
    for _ in range(4):
        async with sessions() as s:
            t = time.perf_counter()
            tracked = await fetch(s)
            q = time.perf_counter()
            await asyncio.to_thread(compute, tracked)
            query.append((q - t) * 1000)
            whole.append((time.perf_counter() - t) * 1000)
    return [
        Row.absolute(
            f"signal_research(4h, newest 20,000) on {total / 1e6:.1f}M rows",
            statistics.median(whole[1:]),
            "ms",
            "< 2,000 ms (then cached 60 s)",
            limit=2000,
            higher_is_better=False,
            baseline_name="its query alone",
            baseline_value=statistics.median(query[1:]),
        )
    ]


async def run(url: str, signals: int, rows: int) -> list[Row]:
    # a slow query is a figure to report, not a crash: lift the service's 5 s statement timeout
    db = DatabaseSettings(database_url=url, database_statement_timeout_ms=120_000)
    engine = create_engine(db, pool_size=CONCURRENCY)
    sessions = create_sessionmaker(engine)
    try:
        results = await bench_store(sessions, url, signals)
        results += await bench_evaluate(sessions, signals)
        results += await bench_analytics(sessions, url, rows)
    finally:
        await engine.dispose()
    return results


async def _database(server_url: str) -> str:
    name = f"bench_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(server_url.replace("+asyncpg", ""))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    base, _, _ = server_url.rpartition("/")
    return f"{base}/{name}"


def main(argv: list[str] | None = None) -> list[dict[str, object]]:
    """Run the benchmark; return the result rows (the shape `perpsignal bench` collects)."""
    import os

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument(
        "--signals", type=int, default=int(os.environ.get("BENCH_OUTCOMES_SIGNALS", "5000"))
    )
    p.add_argument(
        "--rows", type=int, default=int(os.environ.get("BENCH_OUTCOMES_ROWS", "1000000"))
    )
    args = p.parse_args(argv if argv is not None else [])
    external = os.environ.get("DATABASE_URL")
    server = None
    tmp = tempfile.TemporaryDirectory(prefix="bench-pg-")
    try:
        if external:
            server_url = external.replace("postgresql://", "postgresql+asyncpg://", 1)
        else:
            from perpsignal_common.embedded import EmbeddedPostgres

            server = EmbeddedPostgres(Path(tmp.name) / "data", database="postgres").start()
            server_url = server.url("postgres")
        url = asyncio.run(_database(server_url))
        upgrade(url)
        rows = asyncio.run(run(url, args.signals, args.rows))
    finally:
        if server is not None:
            server.stop()
        tmp.cleanup()
    return report("outcomes_throughput", rows)


if __name__ == "__main__":
    main(sys.argv[1:])
