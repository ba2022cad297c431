"""One symbol's long history on every core: consecutive parts, each scored exactly.

A backtest is a fold over time: a bar's signal depends on every event before it, so the
bars cannot simply be dealt out. But a signal's *build* (eight factors, the SMC summary,
the model, then the judge, the outcome measurement and the JSON line) is what costs; folding
an event into the engine's state costs about a tenth of that. So part k of the run is a forked
worker that folds every event before its start into a fresh engine without building a
signal (`ScoringEngine.emit = False`), then scores its own span as the sequential run
does. Its state at the start of its span is the sequential run's state there (what a build
reads is recomputed or cached by its inputs), so the parts' signals, laid end to end, are
the sequential run's, byte for byte (tests/unit/backtest/test_split.py holds that).

The cut points balance the work: a later part replays more before its span, so it gets a
shorter span (`cuts`). Each worker writes its part of signals.jsonl and its `SignalTable`;
the parent joins the files and the tables in order. Forked workers inherit the loaded
history, configuration and outcome paths (copy-on-write); where fork is not available the
run stays in one process.
"""

from __future__ import annotations

import itertools
import math
import multiprocessing
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from perpsignal_cli.backtesting.columns import SIGNALS_FILE, SignalTable, SignalWriter
from perpsignal_cli.backtesting.pipeline import (
    DEFAULT_HORIZONS,
    History,
    OutcomeMeter,
    Progress,
    RunResult,
    _collector_paused_on_loaded_data,
    engine_config,
    rules_judge,
)
from perpsignal_domain.judging.judge import RuleJudge
from perpsignal_domain.outcomes.evaluate import NO_COSTS, Costs
from perpsignal_domain.scoring.config import EngineConfig
from perpsignal_domain.scoring.engine import ScoringEngine

# below this many scoring bars one process is as fast (a fork and a join cost ~0.1 s)
SPLIT_MIN_BARS = 5_000
# above this many, the default stays in one process: each part holds its own engine, columns
# and copy-on-write copies of the history it touches, so a symbol-year of 1m bars (540k)
# split in two peaks at ~740 MiB of the process tree's PSS against ~470 MiB in one process.
# An explicit --jobs splits any length.
SPLIT_AUTO_MAX_BARS = 250_000
# folding a bar into the engine's state without building its signal, as a share of a
# scored bar's whole cost (build, judge, outcome, JSON line): ~13 of ~120 us on the FTX 1m
# month (2026-12-07; at 0.17 the first of two parts finished ~0.25 s after the second)
WARM_COST = 0.10


def can_split() -> bool:
    """Return True where workers can be forked (they inherit the loaded history)."""
    return "fork" in multiprocessing.get_all_start_methods()


def parts_for(history: History, jobs: int, *, auto: bool = False) -> int:
    """Return how many parts to split `history`'s run into on `jobs` cores (1: no split).

    `auto` (jobs not given by the user): histories over SPLIT_AUTO_MAX_BARS stay in one
    process, where memory is flat.
    """
    bars = len(history.primary)
    if jobs <= 1 or not can_split() or bars < SPLIT_MIN_BARS:
        return 1
    if auto and bars > SPLIT_AUTO_MAX_BARS:
        return 1
    return min(jobs, bars // (SPLIT_MIN_BARS // 2))


def cuts(times_ms: Sequence[float], parts: int, warm: float = WARM_COST) -> list[float]:
    """Return the start time of each part after the first (`parts - 1` times, ascending).

    Part k scores bars [s_k, s_k+1) after folding the s_k bars before it, a cost of
    s_k * warm + (s_k+1 - s_k) in scored bars: every part is given the same cost T, found by
    bisection so that the last part ends at the last bar.
    """
    n = len(times_ms)
    if parts <= 1 or n < parts:
        return []

    def ends(total: float) -> list[float]:
        starts = [0.0]
        for _ in range(parts):
            s = starts[-1]
            starts.append(s + total - warm * s)
        return starts

    lo, hi = n / parts, float(n)
    for _ in range(60):
        mid = (lo + hi) / 2
        if ends(mid)[-1] < n:
            lo = mid
        else:
            hi = mid
    starts = ends(hi)[1:-1]
    out: list[float] = []
    for s in starts:
        i = min(n - 1, max(1, round(s)))
        if not out or times_ms[i] > out[-1]:
            out.append(times_ms[i])
    return out


@dataclass
class _Context:
    """What every forked worker reads (set in the parent just before the pool forks)."""

    history: History
    cfg: EngineConfig
    judge: RuleJudge
    meter: OutcomeMeter
    horizons: list[str]
    lo_ms: float
    hi_ms: float
    bounds: list[tuple[float, float]]
    parts_dir: Path
    counters: Any  # multiprocessing Array of events done per part (progress)


_CTX: _Context | None = None


@dataclass
class _Part:
    """One worker's result: its table, how many events it scored, and whether it stopped."""

    index: int
    table: SignalTable
    events_done: int
    interrupted: bool


def _run_part(k: int) -> _Part:
    ctx = _CTX
    assert ctx is not None, "forked without the split context"
    start_ms, end_ms = ctx.bounds[k]
    engine = ScoringEngine(ctx.cfg, atomic=False)
    engine.emit = False
    judge, meter = ctx.judge, ctx.meter
    table = SignalTable(ctx.horizons)
    done = 0
    interrupted = False
    counters = ctx.counters
    with (
        _collector_paused_on_loaded_data(),
        SignalWriter(ctx.parts_dir / str(k), table, ctx.lo_ms, ctx.hi_ms) as sink,
    ):
        try:
            for ev in ctx.history.events:
                t = ev.observed_at.timestamp() * 1000
                if t < start_ms:
                    engine.apply(ev)  # state only: no signal is built
                    continue
                if t >= end_ms:
                    break
                engine.emit = True
                for sig in engine.apply(ev):
                    sink(meter.record(judge.judge_rules(sig)))
                done += 1
                if not done & 511:
                    counters[k] = done
        except KeyboardInterrupt:
            interrupted = True
    counters[k] = done
    return _Part(k, table, done, interrupted)


def run_split(
    history: History,
    out: Path,
    table: SignalTable,
    *,
    parts: int,
    lo_ms: float = -math.inf,
    hi_ms: float = math.inf,
    cfg: EngineConfig | None = None,
    judge: RuleJudge | None = None,
    horizons: Sequence[str] = DEFAULT_HORIZONS,
    band_pct: float = 0.1,
    costs: Costs = NO_COSTS,
    progress: bool | None = None,
) -> RunResult:
    """Run `history` in `parts` forked workers; write `out`/signals.jsonl and fill `table`.

    What `run_in_process` with a `SignalWriter(out, table, lo_ms, hi_ms)` sink gives, in the
    same order. Ctrl-C stops every part: the report keeps the parts before the first one
    that did not finish, and that one's signals so far (a prefix of the history, as a
    sequential run keeps).
    """
    global _CTX
    started = time.perf_counter()
    cfg = cfg or engine_config(history.primary.timeframe)
    judge = judge or rules_judge()
    step = history.primary.step_ms
    closes = [t + step for t in history.primary.open_ms]
    starts = cuts(closes, parts)
    edges = [-math.inf, *starts, math.inf]
    bounds = list(itertools.pairwise(edges))
    mp = multiprocessing.get_context("fork")
    counters = mp.RawArray("q", len(bounds))
    out.mkdir(parents=True, exist_ok=True)
    total = len(history.events)
    desc = f"backtest {history.symbol} ({len(bounds)} parts)"
    with tempfile.TemporaryDirectory(prefix=".parts-", dir=out) as tmp:
        _CTX = _Context(
            history,
            cfg,
            judge,
            OutcomeMeter(history, horizons, band_pct, costs),  # its paths, built once here
            list(horizons),
            lo_ms,
            hi_ms,
            bounds,
            Path(tmp),
            counters,
        )
        try:
            results = _gather(mp, len(bounds), counters, lambda: Progress(total, desc, progress))
        finally:
            _CTX = None
        kept = _prefix(results)
        with (out / SIGNALS_FILE).open("wb") as dst:
            for part in kept:
                table.extend(part.table, dst.tell())
                with (Path(tmp) / str(part.index) / SIGNALS_FILE).open("rb") as src:
                    shutil.copyfileobj(src, dst, 1 << 20)
    interrupted = len(kept) < len(bounds) or any(p.interrupted for p in kept)
    done = sum(p.events_done for p in kept)
    return RunResult([], total, done, interrupted, time.perf_counter() - started)


def _gather(mp: Any, n: int, counters: Any, make_bar: Callable[[], Progress]) -> list[_Part | None]:
    """Run the parts; on Ctrl-C let each worker stop and report what it has.

    The progress bar is made once the workers are forked: tqdm's monitor thread must not
    exist at the fork (a lock it held would stay held in the child).
    """
    results: list[_Part | None] = [None] * n
    stopped = False
    pool = ProcessPoolExecutor(max_workers=n, mp_context=mp)
    bar: Progress | None = None
    try:
        futures = [pool.submit(_run_part, k) for k in range(n)]  # forks every worker now
        bar = make_bar()
        shown = 0
        try:
            pending: set[Future[_Part]] = set(futures)
            while pending:
                # returns as soon as the last part is done (a sleep cost up to 50 ms a run)
                _, pending = wait(pending, timeout=0.05)
                now = sum(counters)
                bar.tick(now - shown)
                shown = now
        except KeyboardInterrupt:
            # the workers got the same signal: wait for what each of them has
            stopped = True
            previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
            try:
                for f in futures:
                    f.exception()
            finally:
                signal.signal(signal.SIGINT, previous)
        for k, f in enumerate(futures):
            if f.exception() is None:
                results[k] = f.result()
            elif not stopped:
                raise RuntimeError(f"backtest part {k} failed: {f.exception()}") from (
                    f.exception()
                )
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        if bar is not None:
            bar.close()
    return results


def _prefix(results: Sequence[_Part | None]) -> list[_Part]:
    """Return the parts that make a prefix of the history: up to the first unfinished."""
    kept: list[_Part] = []
    for part in results:
        if part is None:
            break
        kept.append(part)
        if part.interrupted:
            break
    return kept


def default_jobs() -> int:
    """Return the cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
