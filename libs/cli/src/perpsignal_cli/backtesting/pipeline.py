"""The in-process backtest: history through the live scorer, judge and outcome code.

Order of work, strictly causal: every event is applied in observation order (a candle at its
close time; a point series at its own time; ties put point values first, since a value
observed at T is known when the candle closing at T is scored). The scorer therefore sees at
each step only what had been observed by then. Outcomes use the candles *after* each signal,
exactly as the outcomes service does: what its `signal_row`/`outcome_rows` track (entry at the
signal's close time and price, due after each horizon, the judge's stop and target; the tests
hold `tracked_rows` equal to them) is measured by its `evaluate` over the `path_window`
candles (`window_sorted`: the series are sorted), on the finest candles first, then the
primary ones. The outcomes' repository module is not imported here: it pulls SQLAlchemy,
asyncpg and the DB models (seconds of start-up).
"""

from __future__ import annotations

import bisect
import dataclasses
import gc
import heapq
import itertools
import json
import logging
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any, overload

from perpsignal_cli.backtesting import importers as imp
from perpsignal_cli.backtesting.importers import CandleSeries, candle_events, ms_to_dt
from perpsignal_common.events.base import Event, utcnow
from perpsignal_common.events.market import (
    TIMEFRAME_SECONDS,
    CandleClosedV1,
    FundingRateV1,
    LiquidationOrderV1,
)
from perpsignal_common.events.signals import Ohlc, SignalJudgedV1
from perpsignal_domain.judging.judge import JudgeConfig, RuleJudge, judge_config_from_json
from perpsignal_domain.judging.volatility import true_range, true_ranges
from perpsignal_domain.outcomes.evaluate import (
    HORIZON_SECONDS,
    NO_COSTS,
    Candle,
    Costs,
    Evaluation,
    evaluate,
    settled_between,
    settlement_time,
    window_sorted,
)
from perpsignal_domain.scoring.config import EngineConfig, config_from_json
from perpsignal_domain.scoring.engine import LIQUIDATION_PRICE_RATIO, ScoringEngine

log = logging.getLogger(__name__)

DEFAULT_TIMEFRAME = "15m"  # the live scorer's default primary timeframe
DEFAULT_HORIZONS = ("1h", "4h", "24h")
# inputs whose levels the scorer ranks in their own history (scoring.history): rows before
# the candles are that history, not stale noise
RANKED_INPUTS = frozenset({"funding", "long_short", "social", "taker_flow"})
# inputs whose file must cover the candles' period (`_check_coverage`)
COVERING_INPUTS = frozenset({"funding", "open_interest", "long_short", "taker_flow"})
# those refused with no row in the candles' period: they feed their factor only. Funding is
# warned of: its files often start after the candles (the bundled XRP week's by three days)
REFUSED_OUTSIDE = frozenset({"open_interest", "long_short", "taker_flow"})
LEAD_IN_S = 2 * 86400  # the longest staleness limit (fear & greed, daily)
CANDLE_CHUNK = 512  # candle events made at a time by an EventStream (flat memory)
SOURCE_NAMES = ("candles", "funding", "open_interest", "long_short", "fear_greed")


@dataclass
class SourceInfo:
    """What one input file contributed: rows read and first/last observation."""

    name: str
    path: str | None
    events: int = 0
    first: str | None = None
    last: str | None = None


class EventStream(Sequence[Event]):
    """The scorer's input in observation order, built while it is read (constant memory).

    The candle events are made from the primary series bar by bar as the run reaches them:
    a symbol-year of 1m `CandleClosedV1` models would take more memory than the whole run
    otherwise needs. The point values (funding, open interest, ...) are few and kept sorted.
    Ties put a point value before the candle closing at the same time, as `merge` does.
    Indexing materialises the list (tests, small histories); iterating never does.
    """

    def __init__(
        self, candles: CandleSeries, symbol: str, venue: str, points: Sequence[Event]
    ) -> None:
        self.candles = candles
        self.symbol = symbol
        self.venue = venue
        self.points = merge(points)

    def __len__(self) -> int:
        return len(self.candles) + len(self.points)

    def __iter__(self) -> Iterator[Event]:
        points = self.points
        times = [e.observed_at.timestamp() for e in points]
        p, n = 0, len(points)
        series = self.candles
        for start in range(0, len(series), CANDLE_CHUNK):
            for candle in candle_events(
                series.slice(start, start + CANDLE_CHUNK), self.symbol, self.venue
            ):
                if p < n:  # points left to merge before this candle
                    t = candle.observed_at.timestamp()
                    while p < n and times[p] <= t:
                        yield points[p]
                        p += 1
                yield candle
        yield from points[p:]

    def __getitem__(self, i: Any) -> Any:
        return list(self)[i]

    def between(self, lo_ms: float, hi_ms: float) -> EventStream:
        """Return the events observed in [lo_ms, hi_ms] (a candle at its close time)."""
        step = self.candles.step_ms
        first = bisect.bisect_left(self.candles.open_ms, lo_ms - step)
        last = bisect.bisect_right(self.candles.open_ms, hi_ms - step)
        points = [e for e in self.points if lo_ms <= e.observed_at.timestamp() * 1000 <= hi_ms]
        return EventStream(self.candles.slice(first, last), self.symbol, self.venue, points)


@dataclass
class History:
    """Everything a backtest replays for one symbol."""

    symbol: str
    base: CandleSeries  # the candles as given: the finest outcome path
    primary: CandleSeries  # the scorer's timeframe (aggregated when coarser than the input)
    events: Sequence[Event]  # what the scorer sees, in observation order (an EventStream)
    sources: list[SourceInfo] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    _paths: dict[str, PathIndex] = field(default_factory=dict, repr=False, compare=False)

    def path_index(self, series: CandleSeries) -> PathIndex:
        """Return the outcome path of `series` (base or primary), built once per history."""
        index = self._paths.get(series.timeframe)
        if index is None or index.open_ms is not series.open_ms:
            index = self._paths[series.timeframe] = PathIndex(series)
        return index


def _order_key(ev: Event) -> tuple[float, int, str]:
    return (ev.observed_at.timestamp(), 1 if isinstance(ev, CandleClosedV1) else 0, ev.event_id)


def merge(events: Sequence[Event]) -> list[Event]:
    """Return events in observation order (point values before a candle closing then)."""
    return sorted(events, key=_order_key)


def primary_timeframe(base_tf: str, wanted: str | None) -> str:
    """Return the scoring timeframe: `wanted`, else 15m, never finer than the candles given."""
    tf = wanted or DEFAULT_TIMEFRAME
    if TIMEFRAME_SECONDS[tf] < TIMEFRAME_SECONDS[base_tf]:
        if wanted:
            raise imp.HistoryFormatError(
                f"--timeframe {wanted} is finer than the {base_tf} candles"
            )
        tf = base_tf
    return tf


def load_history(
    symbol: str,
    candles: Path,
    *,
    funding: Path | None = None,
    open_interest: Path | None = None,
    long_short: Path | None = None,
    fear_greed: Path | None = None,
    liquidations: Path | None = None,
    social: Path | None = None,
    taker_flow: Path | None = None,
    timeframe: str | None = None,
    venue: str = imp.SOURCE,
) -> History:
    """Import every given file and build the ordered event stream of one symbol."""
    base = imp.read_candles(candles, symbol)
    tf = primary_timeframe(base.timeframe, timeframe)
    primary = imp.aggregate(base, tf)
    sources = [_info_candles(candles, primary)]
    events: list[Event] = []
    notes: list[str] = []
    if base.gaps():
        notes.append(f"{base.gaps()} {base.timeframe} candles absent between first and last")
    if base.volume_missing:
        notes.append(
            "the candles have no volume column: every bar's volume is 0, unknown, not zero "
            "(no factor, judge rule or report figure reads candle volume; --events-out writes 0)"
        )
    if primary.partial_buckets:
        notes.append(
            f"{primary.partial_buckets} {tf} candles built from fewer {base.timeframe} bars "
            "than the bucket holds (absent bars = no trades)"
        )
    # point values older than the lead-in are stale for every factor; later ones are unused
    lo = primary.open_ms[0] / 1000 - LEAD_IN_S
    hi = (primary.open_ms[-1] + primary.step_ms) / 1000
    readers: list[tuple[str, Path | None, Callable[[], Sequence[Event]]]] = [
        ("funding", funding, lambda: imp.read_funding(funding, symbol, venue)),  # type: ignore[arg-type]
        (
            "open_interest",
            open_interest,
            lambda: imp.read_open_interest(open_interest, symbol, venue),  # type: ignore[arg-type]
        ),
        ("long_short", long_short, lambda: imp.read_long_short(long_short, symbol, venue)),  # type: ignore[arg-type]
        ("fear_greed", fear_greed, lambda: imp.read_fear_greed(fear_greed)),  # type: ignore[arg-type]
        (
            "liquidations",
            liquidations,
            lambda: imp.read_liquidations(liquidations, symbol, venue),  # type: ignore[arg-type]
        ),
        ("social", social, lambda: imp.read_social(social, symbol)),  # type: ignore[arg-type]
        ("taker_flow", taker_flow, lambda: imp.read_taker_flow(taker_flow, symbol, venue)),  # type: ignore[arg-type]
    ]
    for name, path, read in readers:
        if path is None and name == "taker_flow":  # a part of momentum, not a factor
            notes.append("no taker flow history given: momentum scores price alone")
            sources.append(SourceInfo(name, None))
            continue
        if path is None:
            msg = f"no {name.replace('_', ' ')} history given: that factor is neutral (missing)"
            if name == "funding":  # the unknown rates are not charged: say so beside net P&L
                msg += "; net P&L charges no funding (unknown, not zero)"
            log.info(msg + " and confidence is lower")
            notes.append(msg)
            sources.append(SourceInfo(name, None))
            continue
        got = list(read())
        if name == "liquidations":
            got = _orders_of_this_market(got, base, notes)
        sources.append(_info(name, path, got))
        if name in COVERING_INPUTS:
            _check_coverage(name, path, got, primary, lo, notes)
        # inputs scored against their own history keep every earlier row (the history)
        first = -math.inf if name in RANKED_INPUTS else lo
        kept = [e for e in got if first <= e.observed_at.timestamp() <= hi]
        if len(kept) < len(got):
            notes.append(
                f"{name.replace('_', ' ')}: {len(kept)} of {len(got)} rows fall inside the "
                f"candles' span (from {LEAD_IN_S // 3600}h before the first candle"
                + (", or earlier as history" if name in RANKED_INPUTS else "")
                + ")"
            )
        events.extend(kept)
    stream = EventStream(primary, symbol, venue, events)
    return History(symbol, base, primary, stream, sources, notes)


def _iso(ms: float) -> str:
    return ms_to_dt(int(ms)).strftime("%Y-%m-%d %H:%M UTC")


def _check_coverage(
    name: str,
    path: Path,
    events: Sequence[Event],
    candles: CandleSeries,
    lo_s: float,
    notes: list[str],
) -> None:
    """Refuse an input with no row in the candles' span (lead-in included), and say how many
    candles close before its first row or more than one row interval after its last.

    A file of another period (2024's open interest beside 2021's candles) was accepted
    silently: every signal had that factor missing, or scored on a value days stale.
    """
    what = name.replace("_", " ")
    step = candles.step_ms
    first_close, last_close = candles.open_ms[0] + step, candles.open_ms[-1] + step
    times = sorted(e.observed_at.timestamp() * 1000 for e in events)
    span = f"candles close from {_iso(first_close)} to {_iso(last_close)}"
    rows = (
        f"its {len(times)} rows are from {_iso(times[0])} to {_iso(times[-1])}"
        if times
        else "it has no row with a value"
    )
    if not times or times[-1] < lo_s * 1000 or times[0] > last_close:
        said = (
            f"no {what} row falls in the candles' period: {rows}, the {span} (rows up to "
            f"{LEAD_IN_S // 3600}h before the first are used)"
        )
        if name in REFUSED_OUTSIDE:
            raise imp.HistoryFormatError(
                f"{path}: {said}; give the {what} history of the candles' period"
            )
        msg = f"{what}: {said}: that factor is missing throughout, and net P&L charges no {what}"
        log.warning("%s: %s", path.name, msg)
        notes.append(msg)
        return
    steps = sorted(b - a for a, b in itertools.pairwise(times) if b > a)
    cadence = max(steps[len(steps) // 2] if steps else 0, step)
    closes = [t + step for t in candles.open_ms]
    before = bisect.bisect_left(closes, times[0])
    after = len(closes) - bisect.bisect_right(closes, times[-1] + cadence)
    if before or after:
        msg = (
            f"{what}: {before + after} of {len(closes)} {candles.timeframe} candles have no "
            f"{what} value ({before} close before its first row, {after} over one row "
            f"interval after its last; {rows}, the {span}): that factor is missing for them"
        )
        log.info("%s: %s", path.name, msg)  # the summary's and report's notes say it
        notes.append(msg)


def _orders_of_this_market(
    events: list[Event], candles: CandleSeries, notes: list[str]
) -> list[Event]:
    """Return `events` without the liquidation orders priced over 2x or under 0.5x the
    close before them (the first bar's open before the candles start): orders of another
    market (a file of another coin, or of a contract quoted in other units) whose notional
    would count many times over. The live scorer dead-letters them (`liquidation_mismatch`)."""
    opens, closes, step = candles.open_ms, candles.close, candles.step_ms
    kept: list[Event] = []
    dropped = 0
    for ev in events:
        if isinstance(ev, LiquidationOrderV1):
            # the newest bar closed by the order's time, else the first bar's open
            k = bisect.bisect_right(opens, ev.observed_at.timestamp() * 1000 - step) - 1
            ref = closes[k] if k >= 0 else candles.open[0]
            ratio = ev.price / ref
            if not 1.0 / LIQUIDATION_PRICE_RATIO <= ratio <= LIQUIDATION_PRICE_RATIO:
                dropped += 1
                continue
        kept.append(ev)
    if dropped:
        msg = (
            f"liquidations: {dropped} of {len(events)} orders left out, priced over "
            f"{LIQUIDATION_PRICE_RATIO:g}x or under 1/{LIQUIDATION_PRICE_RATIO:g} of the candles "
            "(another market's orders: their notional would count many times over)"
        )
        log.warning(msg)
        notes.append(msg)
    return kept


def _info_candles(path: Path, series: CandleSeries) -> SourceInfo:
    """The candles' `_info` from the series itself (no event list: see EventStream)."""
    if not len(series):
        return SourceInfo("candles", path.name, 0)
    return SourceInfo(
        "candles",
        path.name,
        len(series),
        ms_to_dt(series.open_ms[0] + series.step_ms).isoformat(),
        ms_to_dt(series.open_ms[-1] + series.step_ms).isoformat(),
    )


def _info(name: str, path: Path, events: Sequence[Event]) -> SourceInfo:
    span = imp.describe(events)
    return SourceInfo(
        name,
        path.name,
        len(events),
        span[0].isoformat() if span else None,
        span[1].isoformat() if span else None,
    )


class ServiceConfigError(ValueError):
    """The scorer's or judge's settings in the environment are invalid."""


def _service_config(service: str, prefixes: tuple[str, ...]) -> dict[str, Any] | None:
    """Return the domain config the service's settings give (`python -m perpsignal_<service>
    --print-config`), or None when no variable of its settings is set (the defaults).

    The services own their settings (names, parsing, validation); the command line asks
    them instead of importing them, so a tuned SCORER_WEIGHTS is what the backtest scores.
    """
    env = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith(prefixes)))
    return _ask_service(service, env) if env else None


@cache
def _ask_service(service: str, env: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", f"perpsignal_{service}", "--print-config"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        raise ServiceConfigError(
            f"the {service}'s settings ({', '.join(k for k, _ in env)}) are invalid: "
            + (lines[-1] if lines else f"exit code {proc.returncode}")
        )
    data: dict[str, Any] = json.loads(proc.stdout)
    return data


def engine_config(primary: str, base: EngineConfig | None = None) -> EngineConfig:
    """Return the scorer's configured engine (SCORER_* env, via the scorer service's own
    settings) or `base`, on the backtest's timeframe."""
    if base is None:
        data = _service_config("scorer", ("SCORER_",))
        base = config_from_json(data) if data is not None else EngineConfig()
    cfg = base
    step = TIMEFRAME_SECONDS[primary]
    smc = tuple(
        tf
        for tf in cfg.smc_timeframes
        if TIMEFRAME_SECONDS[tf] >= step and TIMEFRAME_SECONDS[tf] % step == 0
    )
    if primary not in smc:
        smc = (primary, *smc)
    return dataclasses.replace(cfg, primary_timeframe=primary, smc_timeframes=smc)


def rules_judge(config: JudgeConfig | None = None) -> RuleJudge:
    """Return the domain's rule judge (deterministic, free; the judge service's LLM-off
    path) with the judge's configuration (JUDGE_* env via the judge service), or `config`."""
    if config is None:
        data = _service_config("judge", ("JUDGE_", "AUTO_SKIP_AVOID_SIGNALS"))
        config = judge_config_from_json(data) if data is not None else JudgeConfig()
    return RuleJudge(config, clock=utcnow, known_ranges=SlidingRanges())


class SlidingRanges:
    """The judge's `known_ranges` for in-process runs: each signal's candle window is the
    previous one slid by a bar (the engine reuses the Ohlc objects), so its true ranges are
    the previous ones plus one, as the judge service's codec keeps them; the judge's ATR
    then skips three passes over the window per signal. Any other window: computed anew."""

    def __init__(self) -> None:
        self._last: dict[tuple[str, str], tuple[Sequence[Ohlc], list[float]]] = {}

    def __call__(self, key: tuple[str, str], candles: Sequence[Ohlc]) -> list[float] | None:
        prev = self._last.get(key)
        ranges: list[float] | None = None
        if prev is not None and candles:
            old, old_ranges = prev
            if old is candles:
                return old_ranges
            n = len(candles)
            if len(old) and n >= 2 and old[-1] is candles[-2]:
                dropped = len(old) - (n - 1)
                if dropped in (0, 1) and old[dropped] is candles[0]:
                    ranges = [*old_ranges[dropped:], true_range(old[-1].close, candles[-1])]
        if ranges is None:
            ranges = true_ranges(candles)
        self._last[key] = (candles, ranges)
        return ranges


@dataclass
class Outcome:
    """One horizon's measured outcome of a signal and the candles it was measured on."""

    horizon: str
    evaluation: Evaluation
    path_timeframe: str


@dataclass
class SignalRecord:
    """A judged signal and its outcomes (None where the candles do not cover the horizon)."""

    judged: SignalJudgedV1
    outcomes: dict[str, Outcome | None] = field(default_factory=dict)


@dataclass
class RunResult:
    """What a run produced, and how far it got."""

    records: list[SignalRecord]
    events_total: int
    events_done: int
    interrupted: bool
    elapsed_s: float
    mode: str = "in-process"


class Progress:
    """A tqdm bar on stderr with rate and ETA, updated in chunks (cheap on the hot path)."""

    def __init__(self, total: int, desc: str, enabled: bool | None = None) -> None:
        on = sys.stderr.isatty() if enabled is None else enabled
        self._bar: Any = None  # no bar: tqdm is not even imported
        if on:
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=desc, unit="ev", file=sys.stderr, mininterval=0.25)
        self._pending = 0

    def tick(self, n: int = 1) -> None:
        self._pending += n
        if self._pending >= 512:
            if self._bar is not None:
                self._bar.update(self._pending)
            self._pending = 0

    def close(self) -> None:
        if self._bar is not None:
            self._bar.update(self._pending)
            self._bar.close()
        self._pending = 0


RecordSink = Callable[[SignalRecord], None]


def run_in_process(
    history: History,
    *,
    cfg: EngineConfig | None = None,
    judge: RuleJudge | None = None,
    horizons: Sequence[str] = DEFAULT_HORIZONS,
    band_pct: float = 0.1,
    progress: bool | None = None,
    costs: Costs = NO_COSTS,
    sink: RecordSink | None = None,
) -> RunResult:
    """Score, judge and evaluate `history` in this process; Ctrl-C stops and keeps what is done.

    With `sink`, each signal's record goes to it as soon as it is measured and none is kept
    (`records` stays empty): what a long history needs to run in constant memory.
    """
    return run_many(
        [history],
        cfg=cfg,
        judge=judge,
        horizons=horizons,
        band_pct=band_pct,
        progress=progress,
        costs=costs,
        sinks=None if sink is None else [sink],
    )[0]


def run_many(
    histories: Sequence[History],
    *,
    cfg: EngineConfig | None = None,
    judge: RuleJudge | None = None,
    horizons: Sequence[str] = DEFAULT_HORIZONS,
    band_pct: float = 0.1,
    progress: bool | None = None,
    costs: Costs = NO_COSTS,
    sinks: Sequence[RecordSink] | None = None,
) -> list[RunResult]:
    """Run several symbols' histories through one engine and judge, in observation order.

    One result per history (same order); each symbol's signals and outcomes are exactly what
    `run_in_process` gives for it alone (the engine keeps its state per symbol). Every
    result carries the whole run's elapsed time and event counts. Each signal is measured
    as soon as it is judged (the history holds the candles after it) and handed to its
    symbol's sink, or kept in its result's `records` without sinks.
    """
    if len({h.symbol for h in histories}) != len(histories):
        raise ValueError("one history per symbol")
    if len({h.primary.timeframe for h in histories}) > 1:
        raise ValueError("every history must be scored on the same timeframe")
    if sinks is not None and len(sinks) != len(histories):
        raise ValueError("one sink per history")
    started = time.perf_counter()
    # not atomic: an error ends the run and the engine with it, so no per-candle undo marks
    engine = ScoringEngine(cfg or engine_config(histories[0].primary.timeframe), atomic=False)
    judge = judge or rules_judge()
    events: Iterable[Event] = (
        histories[0].events
        if len(histories) == 1
        else heapq.merge(*(h.events for h in histories), key=_order_key)
    )
    total = sum(len(h.events) for h in histories)
    kept: dict[str, list[SignalRecord]] = {h.symbol: [] for h in histories}
    meters = {h.symbol: OutcomeMeter(h, horizons, band_pct, costs) for h in histories}
    to: dict[str, RecordSink] = (
        {h.symbol: kept[h.symbol].append for h in histories}
        if sinks is None
        else {h.symbol: s for h, s in zip(histories, sinks, strict=True)}
    )
    name = histories[0].symbol if len(histories) == 1 else f"{len(histories)} symbols"
    bar = Progress(total, f"backtest {name}", progress)
    done = 0
    interrupted = False
    with _collector_paused_on_loaded_data():
        try:
            for ev in events:
                for sig in engine.apply(ev):
                    to[sig.symbol](meters[sig.symbol].record(judge.judge_rules(sig)))
                done += 1
                bar.tick()
        except KeyboardInterrupt:
            interrupted = True
        finally:
            bar.close()
    elapsed = time.perf_counter() - started
    return [RunResult(kept[h.symbol], total, done, interrupted, elapsed) for h in histories]


@contextmanager
def _collector_paused_on_loaded_data() -> Iterator[None]:
    """Keep the garbage collector's full scans off the run's growing, long-lived data.

    A full collection re-scans every tracked object: the modules and histories loaded
    before the run, then the judged signals and scorer state the run keeps. With 50
    symbols that heap is 50 times larger while the work per bar is not, and the full
    collections took about a fifth of the run. So: what is loaded is frozen (out of the
    collector's sight; a caller that froze already, the CLI, keeps its freeze), and full
    collections wait for the end of the run; the young collections still free short-lived
    cycles. Settings are restored afterwards.
    """
    thresholds = gc.get_threshold()
    froze = not gc.get_freeze_count()
    if froze:
        gc.freeze()
    gc.set_threshold(RUN_GC_THRESHOLDS[0], RUN_GC_THRESHOLDS[1], RUN_GC_THRESHOLDS[2])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        if froze:
            gc.unfreeze()


# during a run: young collections as usual (700 net allocations, a gen-1 one every 10 of
# those), full ones (practically) never: the run's data lives until the report anyway
RUN_GC_THRESHOLDS = (700, 10, 1_000_000)


class PathIndex:
    """Candles of one series as outcome `Candle`s, sliceable by time in O(log n).

    Lazy: a 1m month holds 45,000 candles and a symbol-year 540,000, while a run measures
    the few directional signals' windows; each `Candle` (and each open time the binary
    searches compare) is made when a window first needs it, then kept.
    """

    def __init__(self, series: CandleSeries) -> None:
        self.timeframe = series.timeframe
        self.step_ms = series.step_ms
        self.step = timedelta(milliseconds=series.step_ms)
        self.open_ms = series.open_ms
        self.closes = series.close
        self._series = series
        self._candles: list[Candle | None] = [None] * len(series.open_ms)
        self.times = _OpenTimes(series.open_ms)
        self._measured: dict[tuple[Any, ...], Evaluation | None] = {}

    def __len__(self) -> int:
        return len(self._candles)

    def path(self, entry_ms: int, due_ms: int) -> list[Candle] | None:
        """Return the outcomes' `path_window` over [entry, due], or None when incomplete.

        The series is sorted by open time, so the outcomes' `window_sorted` (two binary
        searches) gives the same window; the tests hold it equal to `path_window`.
        """
        found = window_sorted(self.times, ms_to_dt(entry_ms), ms_to_dt(due_ms), self.step)
        if found is None:
            return None
        lo, hi = found
        candles, s = self._candles, self._series
        for i in range(lo, hi):
            if candles[i] is None:
                candles[i] = Candle(
                    ms_to_dt(s.open_ms[i]), s.open[i], s.high[i], s.low[i], s.close[i]
                )
        return candles[lo:hi]  # type: ignore[return-value]  # every slot in [lo, hi) is set

    def measure(
        self,
        direction: str,
        entry: float,
        entry_ms: int,
        due_ms: int,
        *,
        stop: float | None = None,
        target: float | None = None,
        band_pct: float = 0.1,
    ) -> Evaluation | None:
        """Return `evaluate` over `path(entry_ms, due_ms)` (memoised: the baselines and the
        equity curves measure the same trades again), or None without a complete path."""
        key = (direction, entry, entry_ms, due_ms, stop, target, band_pct)
        if key in self._measured:
            return self._measured[key]
        path = self.path(entry_ms, due_ms)
        ev = (
            evaluate(direction, entry, path, stop=stop, target=target, band_pct=band_pct)
            if path
            else None
        )
        self._measured[key] = ev
        return ev


class _OpenTimes(Sequence[datetime]):
    """A series' open times as datetimes, made on access (what `bisect` reads: ~17 of them
    per search, not one per candle)."""

    def __init__(self, open_ms: Sequence[int]) -> None:
        self._ms = open_ms

    def __len__(self) -> int:
        return len(self._ms)

    @overload
    def __getitem__(self, i: int) -> datetime: ...

    @overload
    def __getitem__(self, i: slice) -> Sequence[datetime]: ...

    def __getitem__(self, i: int | slice) -> datetime | Sequence[datetime]:
        if isinstance(i, slice):
            return [ms_to_dt(t) for t in self._ms[i]]
        return ms_to_dt(self._ms[i])


def tracked_rows(judged: SignalJudgedV1, horizons: dict[str, int]) -> list[dict[str, Any]]:
    """Return what the outcomes service tracks for a judged signal, one row per horizon.

    The fields of `perpsignal_outcomes.repository.outcome_rows(signal_row(judged), ...)` that
    the measurement uses (the tests hold them equal), without importing that module.
    """
    vol = judged.ai_verdict_layer.volatility_metrics
    at = judged.observed_at
    return [
        {
            "horizon": horizon,
            "direction": judged.direction,
            "entry_price": judged.price,
            "stop_loss_price": vol.stop_loss_price,
            "take_profit_price": vol.take_profit_price,
            "entry_at": at,
            "due_at": at + timedelta(seconds=seconds),
        }
        for horizon, seconds in horizons.items()
    ]


class OutcomeMeter:
    """Measures one history's judged signals, one at a time, with the outcomes' own code.

    Built once per history: the outcome paths (finest first) and the settled funding rates
    for net P&L. `record` is what `evaluate_outcomes` does for a single signal.
    """

    def __init__(
        self,
        history: History,
        horizons: Sequence[str] = DEFAULT_HORIZONS,
        band_pct: float = 0.1,
        costs: Costs = NO_COSTS,
    ) -> None:
        self.paths = [history.path_index(history.base)]
        if history.primary.timeframe != history.base.timeframe:
            self.paths.append(history.path_index(history.primary))
        self.secs = {h: HORIZON_SECONDS[h] for h in horizons}
        self.band_pct = band_pct
        self.costs = costs
        points = getattr(history.events, "points", history.events)
        funding = (
            sorted(
                (settlement_time(e.observed_at.timestamp()), float(e.rate))
                for e in points
                if isinstance(e, FundingRateV1) and e.settled
            )
            if costs.funding
            else []
        )
        self.funding = ([t for t, _ in funding], [r for _, r in funding])

    def record(self, judged: SignalJudgedV1) -> SignalRecord:
        """Return the signal with its outcome at every horizon (LONG/SHORT only)."""
        rec = SignalRecord(judged)
        if judged.direction in ("LONG", "SHORT"):
            for row in tracked_rows(judged, self.secs):
                rec.outcomes[row["horizon"]] = _measure(
                    row, self.paths, self.band_pct, self.costs, self.funding
                )
        return rec


def evaluate_outcomes(
    judged: Sequence[SignalJudgedV1],
    history: History,
    horizons: Sequence[str] = DEFAULT_HORIZONS,
    band_pct: float = 0.1,
    costs: Costs = NO_COSTS,
) -> list[SignalRecord]:
    """Measure every tracked signal at every horizon with the outcomes service's own code.

    Net P&L: `costs` plus the settled funding rates of the history over each holding window.
    """
    meter = OutcomeMeter(history, horizons, band_pct, costs)
    return [meter.record(j) for j in sorted(judged, key=lambda s: (s.observed_at, s.event_id))]


def _measure(
    row: dict[str, Any],
    paths: list[PathIndex],
    band_pct: float,
    costs: Costs = NO_COSTS,
    funding: tuple[list[float], list[float]] = ([], []),
) -> Outcome | None:
    entry_ms = round(row["entry_at"].timestamp() * 1000)
    due_ms = round(row["due_at"].timestamp() * 1000)
    rates = settled_between(*funding, entry_ms / 1000, due_ms / 1000)
    for index in paths:  # finest first: the most detailed path wins (as the tracker does)
        path = index.path(entry_ms, due_ms)
        if path:
            ev = evaluate(
                row["direction"],
                row["entry_price"],
                path,
                stop=row["stop_loss_price"],
                target=row["take_profit_price"],
                band_pct=band_pct,
                costs=costs,
                funding_rates=rates,
            )
            return Outcome(row["horizon"], ev, index.timeframe)
    return None
