"""The scoring engine: market events in, explained signals out (pure, in-process).

`ScoringEngine.apply(event)` updates state and returns the signals the event triggers: one
per closed candle of the primary timeframe, one for a track command when state exists.
The Kafka service and the backtest both drive this same object.

Composite (every number is recomputable from the signal itself):

* contribution_i = weight_i / 100 x (sub-score_i - 50); score = 50 + sum(contribution_i),
  so with weights summing to 100 the score stays in [0, 100]. A missing or stale factor has
  sub-score 50 and contributes 0.
* direction: LONG when score >= long_threshold, SHORT when <= short_threshold, else NEUTRAL.
* confidence = 100 x completeness x (0.4 + 0.6 agreement) x (0.8 + 0.2 freshness), where
  completeness = weight share of factors with status ok, agreement = |sum c_i| / sum |c_i|
  (1 when every factor pulls the same way, 0 when they cancel or nothing pulls) and
  freshness = mean over ok factors of 1 - age / staleness limit.
* top_factors: the (up to) 3 factors with the largest non-zero |contribution| (ties in
  FACTOR_NAMES order); a factor that pulls nothing (missing, stale, at 50) is never one.

Venues: a symbol's price series comes from one venue, never a mix (`PrimaryVenues`). The
symbol's primary venue drives it as soon as it sends a candle. Before that, another venue
may stand in, once it has sent `candle_stale_bars` primary candles without the primary
sending any (a coin the primary venue does not list); its waiting candles are replayed into
the series, and the primary takes the series over (a fresh one; the other inputs are kept)
when it starts sending. Every other venue's candle is ignored. With no primary configured,
the first venue to send a candle drives the symbol. The signal's `venue` names the driver.
"""

from __future__ import annotations

import logging
import math
import time
from bisect import bisect_left, insort
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from operator import attrgetter
from statistics import median
from typing import Any, Literal

from mypy_extensions import mypyc_attr

from perpsignal_common.errors import PoisonMessage
from perpsignal_common.events.base import Event, deterministic_id, utcnow
from perpsignal_common.events.market import (
    TIMEFRAME_SECONDS,
    CandleClosedV1,
    FearGreedV1,
    FundingRateV1,
    LiquidationBucketV1,
    LiquidationOrderV1,
    LongShortRatioV1,
    OpenInterestV1,
    SocialMetricsV1,
    TakerFlowV1,
    TrackCommandV1,
)
from perpsignal_common.events.signals import (
    FACTOR_NAMES,
    Direction,
    FactorScore,
    Ohlc,
    Scalar,
    SignalScoredV1,
    SmcSummary,
)
from perpsignal_domain.scoring.config import EngineConfig
from perpsignal_domain.scoring.factors import FACTORS, EvalContext, FactorResult
from perpsignal_domain.scoring.factors.base import fround
from perpsignal_domain.scoring.mss import MssScanner
from perpsignal_domain.scoring.smc import SmcAnalyzer, bias_label
from perpsignal_domain.scoring.state import (
    FUNDING_MIN_GAP_S,
    Aggregator,
    Bar,
    Ema,
    Point,
    SymbolState,
    append_point,
    day_over_day_pct,
    indicator_mark,
    restore_indicators,
    tail_mark,
    undo_tail,
)
from perpsignal_domain.trusted import trusted as _trusted

log = logging.getLogger(__name__)

SOURCE = "scorer"
Trigger = Literal["candle", "on_demand", "backtest", "request"]


@dataclass(slots=True)
class Evaluation:
    """One evaluation of a symbol, before it becomes an event."""

    now: float
    results: dict[str, FactorResult]
    contributions: dict[str, float]
    score: float
    direction: Direction
    confidence: float
    top_factors: tuple[str, ...]
    missing: tuple[str, ...]
    stale: tuple[str, ...]


_POSITIONS = range(len(FACTOR_NAMES))


def composite(results: dict[str, FactorResult], cfg: EngineConfig) -> Evaluation:
    """Combine factor results into score, direction, confidence and top factors (pure)."""
    contributions: dict[str, float] = {}
    pulls: list[float] = []  # |contribution| per factor
    ok_weight = 0.0
    fresh: list[float] = []
    missing: list[str] = []
    stale: list[str] = []
    # the 3 largest |contribution| so far, kept while looping (cheaper than sorting all 8):
    # an equal pull never displaces an earlier factor, which is the order a stable
    # descending sort gives (ties in FACTOR_NAMES order). A factor that pulls nothing (a
    # missing or stale one, or one exactly at 50) explains nothing: never a top factor
    p1 = p2 = p3 = 0.0
    n1 = n2 = n3 = ""
    for name, w, share, limit in cfg.factor_table:
        r = results[name]
        contributions[name] = c = share * (r.score - 50.0)
        # |c| without the builtin call (a -0.0 contribution gives a -0.0 pull: equal to 0.0
        # in every comparison and sum below)
        pulls.append(p := c if c >= 0.0 else -c)
        if p > p3:
            if p <= p2:
                p3, n3 = p, name
            elif p <= p1:
                p3, n3, p2, n2 = p2, n2, p, name
            else:
                p3, n3, p2, n2, p1, n1 = p2, n2, p1, n1, p, name
        status = r.status
        if status == "ok":
            ok_weight += w
            f = 1.0 - (r.age_s or 0.0) / (r.limit_s or limit)
            fresh.append(f if f > 0.0 else 0.0)  # max(0.0, f)
        elif status == "missing":
            missing.append(name)
        elif status == "stale":
            stale.append(name)
    net = sum(contributions.values())  # in FACTOR_NAMES order
    gross = sum(pulls)
    if net != net:  # a NaN sub-score: no order among pulls, take what sorting gives
        n1, n2, n3 = (
            FACTOR_NAMES[k] for k in sorted(_POSITIONS, key=pulls.__getitem__, reverse=True)[:3]
        )
    score = 50.0 + net
    score = score if score > 0.0 else 0.0  # max(0.0, score)
    score = score if score < 100.0 else 100.0  # min(100.0, score)
    agreement = abs(net) / gross if gross > 1e-12 else 0.0
    freshness = sum(fresh) / len(fresh) if fresh else 0.0
    completeness = ok_weight / 100.0
    confidence = 100.0 * completeness * (0.4 + 0.6 * agreement) * (0.8 + 0.2 * freshness)
    confidence = confidence if confidence > 0.0 else 0.0
    confidence = confidence if confidence < 100.0 else 100.0
    direction: Direction = (
        "LONG"
        if score >= cfg.long_threshold
        else "SHORT"
        if score <= cfg.short_threshold
        else "NEUTRAL"
    )
    return Evaluation(
        0.0,
        results,
        contributions,
        score,
        direction,
        confidence,
        (n1, n2, n3) if n3 else tuple(n for n in (n1, n2) if n),
        tuple(missing),
        tuple(stale),
    )


# the events that keep a symbol in memory (`ScoringEngine.idle_s`): those with its state
_SYMBOL_EVENTS = frozenset(
    {
        CandleClosedV1,
        FundingRateV1,
        OpenInterestV1,
        LongShortRatioV1,
        LiquidationBucketV1,
        LiquidationOrderV1,
        SocialMetricsV1,
        TakerFlowV1,
    }
)

# a liquidation order priced more than this many times (or this fraction of) its symbol's
# last close is of another market: its notional would count thousands of times too much
LIQUIDATION_PRICE_RATIO = 2.0

# the settlement intervals a funding rate may name (venues settle every 1, 2, 4 or 8 h;
# 0 or none: unknown, learnt from the rates)
FUNDING_INTERVAL_H = (0.25, 24.0)

# how far a candle's observed_at may be from its close time (every producer sets it to that
# instant; Binance's close is the last millisecond, parsed as the next one)
CANDLE_CLOSE_SLACK_S = 1.0


def candle_mismatch(ev: CandleClosedV1) -> str | None:
    """Return why `ev` is no candle of a live venue's series, or None.

    Every venue the live scorer reads opens candles on their timeframe's UTC grid and
    stamps `observed_at` at the close (Binance's last millisecond parsed as the next). A
    5m candle opening at 00:06 would be one more bar, shifting every bar-counted horizon;
    one observed an hour after its close would be scored as news at that time. The live
    scorer dead-letters such a candle; the engine itself takes any series it is given (a
    backtest file may follow another grid).
    """
    tf_s = TIMEFRAME_SECONDS[ev.timeframe]
    opened = ev.open_time.timestamp()
    if round(opened * 1000) % (tf_s * 1000):
        return (
            f"candle {ev.symbol} {ev.timeframe} opens at {ev.open_time.isoformat()}, off the "
            f"{ev.timeframe} grid"
        )
    late = ev.observed_at.timestamp() - (opened + tf_s)
    if not -CANDLE_CLOSE_SLACK_S <= late <= CANDLE_CLOSE_SLACK_S:
        return (
            f"candle {ev.symbol} {ev.timeframe} observed at {ev.observed_at.isoformat()}, "
            f"{late:+g} s from its close: observed_at is the close time"
        )
    return None


def _check_prices(ev: CandleClosedV1) -> None:
    """Refuse a candle with a price that is not a positive finite number, or low > high:
    every return and ratio the factors compute divides by past closes."""
    if not (
        0.0 < ev.low <= ev.high < math.inf
        and 0.0 < ev.open < math.inf
        and 0.0 < ev.close < math.inf
        and ev.volume >= 0.0
    ):
        raise PoisonMessage(
            f"unusable candle {ev.symbol} {ev.timeframe} @ {ev.open_time.isoformat()}: "
            f"o={ev.open} h={ev.high} l={ev.low} c={ev.close} v={ev.volume}"
        )


def round_level(x: float) -> float:
    """Return a price level as the signal carries it: to 10 decimal places, or to 8
    significant digits below 0.001, where 10 places keep fewer (a coin quoted at 1e-7 kept
    3, one under 5e-11 read 0.0; the contract takes prices down to 1e-12)."""
    if not 0.0 < x < 1e-3:
        return fround(x, 10)
    ndigits = 7 - math.floor(math.log10(x))
    return fround(x, ndigits) if ndigits <= 15 else round(x, ndigits)


def _ts(dt: datetime) -> float:
    return dt.timestamp()


_OPEN = attrgetter("open_s")


@dataclass(frozen=True, slots=True)
class PrimaryVenues:
    """Which venue's candles drive each symbol's signals (None: the first venue to send)."""

    default: str | None = None
    overrides: Mapping[str, str] = field(default_factory=dict)

    def of(self, symbol: str) -> str | None:
        """Return the primary venue of `symbol`."""
        return self.overrides.get(symbol, self.default)


# tests and embedders may subclass it (to observe or inject failures) though it is compiled
@mypyc_attr(allow_interpreted_subclasses=True)
class ScoringEngine:
    """Per-symbol state, SMC and factor evaluation for every symbol it is fed."""

    def __init__(
        self,
        cfg: EngineConfig | None = None,
        *,
        source: str = SOURCE,
        venues: PrimaryVenues | None = None,
        clock: Callable[[], datetime] = utcnow,
        atomic: bool = True,
        idle_s: float = 0.0,
        wall: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cfg = cfg or EngineConfig()
        # a symbol without an event for this long is forgotten (0: never): the live scorer's
        # memory follows the symbols still sent, not every symbol ever sent
        self.idle_s = idle_s
        self._wall = wall
        # symbol -> (its newest event's time, when it was handled by `wall`) (idle_s only)
        self._seen: dict[str, tuple[float, float]] = {}
        self._newest_s = -math.inf  # the newest event time seen, for the sweep
        self._sweep_at = -math.inf
        self.source = source
        # False: no per-candle checkpoint. For a replay that stops at its first error and
        # discards the engine (the backtest): nothing is retried, so there is nothing to
        # undo, and the checkpoint was ~6 % of a 1m backtest. The live scorer keeps True.
        self.atomic = atomic
        # False: candles change state but build no signal. A backtest split over cores
        # replays the history before its part this way (what a signal build reads is
        # recomputed or cached by its inputs, so skipping builds changes no later signal)
        self.emit = True
        self._clock = clock  # only for produced_at: scoring itself runs on observed time
        # the state of each symbol's price series; venue_of[symbol] is its venue
        self.states: dict[str, SymbolState] = {}
        self.venues = venues or PrimaryVenues()
        self.venue_of: dict[str, str] = {}
        # candles of venues that may stand in for a silent primary: symbol -> venue -> key
        self._waiting: dict[str, dict[str, dict[tuple[str, float], CandleClosedV1]]] = {}
        self.smc: dict[str, dict[str, SmcAnalyzer]] = {}
        self._aggs: dict[str, dict[str, Aggregator]] = {}
        self.fear_greed: tuple[float, float] | None = None
        # the readings before the newest, oldest first (at most fear_greed_neutral_readings),
        # and their median: the index's own recent neutral (factors/fear_greed.py)
        self._fg_earlier: list[tuple[float, float]] = []
        self.fear_greed_neutral: float | None = None
        self.mss = MssScanner()
        self._smc_tfs = sorted(set(self.cfg.smc_timeframes), key=TIMEFRAME_SECONDS.__getitem__)
        self._smc_weights = list(enumerate(self._smc_tfs, start=1))
        self._details: dict[int, tuple[SmcAnalyzer, int, dict[str, Scalar]]] = {}
        self._levels: dict[int, dict[str, tuple[object, str, float]]] = {}
        # bumped whenever one of a symbol's analyzers changes what the signal reads from it
        self._smc_rev: dict[str, int] = {}
        # smc_bias() per symbol, recomputed when a trend or warm-up changes (rarely: a few %
        # of bars), so that an evaluation only reads it
        self._biases: dict[str, tuple[float | None, dict[str, int]]] = {}
        self._summaries: dict[str, tuple[int, SmcSummary]] = {}
        self._last_label: tuple[object, str, str] | None = None  # (event, timeframe, label)
        self._labels: dict[str, tuple[dict[str, int], dict[str, str]]] = {}
        # per symbol: the newest primary bar of the last signal and that signal's candles
        self._windows: dict[str, tuple[Bar, tuple[Ohlc, ...]]] = {}
        # per factor, the last result turned into a FactorScore and that FactorScore: a
        # result that comes back (a missing input's shared result, a memoised one) is the
        # same frozen object in the next signal
        self._scores: dict[str, tuple[FactorResult, FactorScore]] = {}
        self._handlers: dict[type[Event], Callable[[Any], list[SignalScoredV1]]] = {
            CandleClosedV1: self._candle,
            FundingRateV1: self._funding,
            OpenInterestV1: self._open_interest,
            LongShortRatioV1: self._long_short,
            LiquidationBucketV1: self._liq_bucket,
            LiquidationOrderV1: self._liq_order,
            SocialMetricsV1: self._social,
            TakerFlowV1: self._taker_flow,
            FearGreedV1: self._fear_greed,
            TrackCommandV1: self._track,
        }

    # ---- input -------------------------------------------------------------------------
    def apply(self, event: Event) -> list[SignalScoredV1]:
        """Fold one event into state; return the signals it triggers (usually none).

        Atomic: an event whose handling raises leaves the engine as it was, so a retry is
        not taken for a duplicate and the next event scores as if the bad one never came.
        A candle is the one event that changes state and then computes (SMC, the signal):
        its changes are checkpointed and undone on failure; the other handlers change state
        once, after every check. The MSS scanner sees an event only once it was applied.

        With `idle_s`, a symbol's event after more than `idle_s` without one finds the
        symbol forgotten (`_apply_aging`): it is applied to a fresh state, as after a
        restart whose rewind does not reach back to the symbol's last events.
        """
        if self.idle_s and type(event) in _SYMBOL_EVENTS:
            return self._apply_aging(event)
        return self._apply(event)

    def _apply_aging(self, event: Event) -> list[SignalScoredV1]:
        """`_apply` with the symbol's idle time kept: forgotten first when its own events
        are more than `idle_s` apart (put back if the event fails: atomic); once per
        `idle_s / 8` of event time, every symbol idle that long both in event time (behind
        the newest event) and in processing time (`wall`) is forgotten. The second clock
        keeps a symbol that is still being handled: a partition replayed from further back
        than the others, or lagging behind them, is days behind in event time only."""
        symbol = event.symbol
        if type(event) is SocialMetricsV1 and not symbol.endswith("USDT"):
            symbol += "USDT"  # the state `_social` updates
        t = _ts(event.observed_at)
        seen = self._seen.get(symbol)
        last = None if seen is None else seen[0]
        held = None
        if last is not None and t - last > self.idle_s:
            held = self._detach(symbol, t - last)
        try:
            out = self._apply(event)
        except BaseException:
            if held is not None:
                self._detach(symbol, None)  # what the failed event left of a fresh state
                for d, key, value in held:
                    d[key] = value
            raise
        now = self._wall()
        self._seen[symbol] = (t if last is None or t > last else last, now)
        if t > self._newest_s:
            self._newest_s = t
        if self._newest_s >= self._sweep_at:
            self._sweep_at = self._newest_s + self.idle_s / 8
            idle, newest = self.idle_s, self._newest_s
            for other, (at, handled) in list(self._seen.items()):
                if newest - at > idle and now - handled > idle:
                    self._detach(other, newest - at)
        return out

    def _detach(self, symbol: str, idle: float | None) -> list[tuple[dict[Any, Any], Any, Any]]:
        """Remove the symbol's entries from every per-symbol map; return them (map, key,
        value) so that a failed event can put them back."""
        keys: list[tuple[dict[Any, Any], Any]] = [
            (cache, id(a))
            for a in self.smc.get(symbol, {}).values()
            for cache in (self._details, self._levels)
        ]
        maps: tuple[dict[str, Any], ...] = (
            self.states,
            self.smc,
            self._aggs,
            self._biases,
            self._windows,
            self._summaries,
            self._labels,
            self._smc_rev,
            self.venue_of,
            self._waiting,
            self._seen,
        )
        keys += [(d, symbol) for d in maps]
        held = [(d, key, d.pop(key)) for d, key in keys if key in d]
        if idle is not None and held:
            log.info(
                "%s forgotten after %.1f days without an event: its next events start it "
                "afresh (SCORER_SYMBOL_IDLE_S)",
                symbol,
                idle / 86_400.0,
            )
        return held

    def _apply(self, event: Event) -> list[SignalScoredV1]:
        handler = self._handlers.get(type(event))
        if handler is None:
            out: list[SignalScoredV1] = []
        elif type(event) is CandleClosedV1:
            _check_prices(event)  # refused before it touches any state
            if not self.atomic:
                out = handler(event)
                self.mss.observe(event)
                return out
            undo = self._checkpoint(event)
            try:
                out = handler(event)
            except BaseException:
                undo()
                raise
        else:
            out = handler(event)
        self.mss.observe(event)
        return out

    def _checkpoint(self, ev: CandleClosedV1) -> Callable[[], None]:
        """Return an undo of what the candle `ev` may change in the engine.

        A primary candle (the hot path) is undone from O(1) marks: the tails (and heads a
        full series would push out) of the series it appends to, copies of the three
        indicators and of the analyzers it feeds, the open higher-timeframe buckets. Any
        other candle takes a full copy of the symbol's series and analyzers (rare).
        """
        symbol = ev.symbol
        st = self.states.get(symbol)
        if st is None:
            return partial(self._forget, symbol)
        analyzers, aggs = self.smc[symbol], self._aggs[symbol]
        bias = self._biases.get(symbol)
        if ev.timeframe != self.cfg.primary_timeframe:
            undo_state = st.checkpoint()
            mementos = [a.memento() for a in analyzers.values()]
            saved_aggs = dict(aggs)  # (a native timeframe stops its aggregation)
            buckets = [(agg, agg.mark(0.0, 0.0)[0]) for agg in aggs.values()]

            def undo_any() -> None:
                undo_state()
                for memento in mementos:
                    memento.analyzer.restore(memento)
                self._aggs[symbol] = saved_aggs
                for agg, bucket in buckets:
                    agg.restore(bucket)
                self._after_undo(symbol, bias)

            return undo_any
        primary: str = ev.timeframe
        open_s = ev.open_time.timestamp()
        close_s = open_s + TIMEFRAME_SECONDS[primary]
        dq = st.candles.get(primary)
        marks = [(primary, dq, tail_mark(dq))]
        saved = [analyzers[primary].memento()] if primary in analyzers else []
        open_buckets = []
        for htf, agg in aggs.items():
            bucket, completes = agg.mark(open_s, close_s)
            open_buckets.append(bucket)
            if completes:  # only then a bar goes to the htf series and analyzer
                dq = st.candles.get(htf)
                marks.append((htf, dq, tail_mark(dq)))
                if htf in analyzers:
                    saved.append(analyzers[htf].memento())
        indicators = indicator_mark(st)

        def undo() -> None:
            for tf, series, mark in marks:
                if series is None:
                    st.candles.pop(tf, None)
                else:
                    undo_tail(series, mark)
            restore_indicators(st, indicators)
            for agg, bucket in zip(aggs.values(), open_buckets, strict=True):
                agg.restore(bucket)
            for memento in saved:
                memento.analyzer.restore(memento)
            self._after_undo(symbol, bias)

        return undo

    def _after_undo(self, symbol: str, bias: tuple[float | None, dict[str, int]] | None) -> None:
        if bias is not None:
            self._biases[symbol] = bias
        self._windows.pop(symbol, None)
        self._smc_rev[symbol] += 1  # caches keyed by the analyzers' revision are stale

    def _forget(self, symbol: str) -> None:
        """Undo of a symbol's first candle: as if the symbol had never been seen."""
        for d in (self.states, self.smc, self._aggs, self._biases, self._windows):
            d.pop(symbol, None)
        self._summaries.pop(symbol, None)
        self._labels.pop(symbol, None)
        self._smc_rev[symbol] = self._smc_rev.get(symbol, 0) + 1

    def state(self, symbol: str) -> SymbolState:
        """Return (creating) the state of `symbol`."""
        st = self.states.get(symbol)
        if st is None:
            cfg = self.cfg
            st = SymbolState(symbol, cfg.primary_s, max(cfg.candle_history, cfg.signal_candles))
            st.ema_fast, st.ema_slow = Ema(cfg.ema_fast), Ema(cfg.ema_slow)
            st.rsi.period = cfg.rsi_period
            self.states[symbol] = st
            self.smc[symbol] = {
                tf: SmcAnalyzer(cfg.swing_length, cfg.equal_level_tolerance) for tf in self._smc_tfs
            }
            self._aggs[symbol] = {
                tf: Aggregator(TIMEFRAME_SECONDS[tf])
                for tf in self._smc_tfs
                if TIMEFRAME_SECONDS[tf] > cfg.primary_s
            }
            # new analyzers
            self._smc_rev[symbol] = self._smc_rev.get(symbol, 0) + 1
            self._biases[symbol] = self.smc_bias(symbol)
        return st

    def _smc_update(self, symbol: str, a: SmcAnalyzer, bar: Bar) -> None:
        """Feed one bar to an analyzer; count a change of what the signal reads from it:
        its trend or warm-up (the bias), or any event or open FVG count (the summary)."""
        version, trend = a.version, a.trend
        a.update(bar)
        if a.version != version:
            self._smc_rev[symbol] += 1
        if a.trend != trend or a.index == 2 * a.n:  # a new trend, or warmed up: in the bias
            self._smc_rev[symbol] += 1
            self._biases[symbol] = self.smc_bias(symbol)

    def _candle(self, ev: CandleClosedV1) -> list[SignalScoredV1]:
        symbol = ev.symbol
        if self.venue_of.get(symbol) != ev.venue and not self._takes_series(ev):
            return []  # another venue's candle: never mixed into the symbol's series
        st = self.states.get(symbol) or self.state(symbol)
        tf = ev.timeframe
        open_s = ev.open_time.timestamp()
        # bar times are normalised to the grid: Binance closes at ...59.999
        bar = Bar(
            open_s, open_s + TIMEFRAME_SECONDS[tf], ev.open, ev.high, ev.low, ev.close, ev.volume
        )
        analyzers = self.smc[symbol]
        if tf == self.cfg.primary_timeframe:
            if not st.add_bar(tf, bar):
                return []  # duplicate or out-of-order candle: no state change, no signal
            a = analyzers.get(tf)
            if a is not None:
                self._smc_update(symbol, a, bar)
            for htf, agg in self._aggs[symbol].items():
                for hbar in agg.update(bar):
                    if st.add_bar(htf, hbar):
                        self._smc_update(symbol, analyzers[htf], hbar)
            return [self.signal(symbol, ev, "candle")] if self.emit else []
        if tf in analyzers:
            if tf not in st.native_tfs:
                st.native_tfs.add(tf)
                self._aggs[symbol].pop(tf, None)  # the venue sends it: stop aggregating
            if st.add_bar(tf, bar):
                self._smc_update(symbol, analyzers[tf], bar)
        else:
            st.add_bar(tf, bar)
        return []

    def _takes_series(self, ev: CandleClosedV1) -> bool:
        """Return True when `ev`'s venue drives its symbol from now on (module docstring)."""
        symbol, venue = ev.symbol, ev.venue
        primary = self.venues.of(symbol)
        driver = self.venue_of.get(symbol)
        if venue == primary or (driver is None and primary is None):
            self._drive(symbol, venue, ())
            return True
        if driver is not None:
            return False
        waiting = self._waiting.setdefault(symbol, {}).setdefault(venue, {})
        waiting[(ev.timeframe, _ts(ev.open_time))] = ev
        tf = self.cfg.primary_timeframe
        if sum(k[0] == tf for k in waiting) < max(1, self.cfg.candle_stale_bars):
            if len(waiting) > 4 * self.cfg.candle_history:
                del waiting[min(waiting, key=lambda k: k[1])]
            return False
        del waiting[(ev.timeframe, _ts(ev.open_time))]
        order = sorted(waiting.values(), key=lambda e: (e.observed_at, e.open_time))
        self._drive(symbol, venue, order)
        return True

    def _drive(self, symbol: str, venue: str, replay: Sequence[CandleClosedV1]) -> None:
        """Make `venue` the driver of `symbol`: a fresh series with the symbol's other
        inputs, fed `replay` (its waiting candles) without emitting signals."""
        old = self.states.pop(symbol, None)
        self.venue_of[symbol] = venue
        self._waiting.pop(symbol, None)
        st = self.state(symbol)
        if old is not None:
            st.take_inputs(old)
        for ev in replay:
            self._candle(ev)

    def _from(self, st: SymbolState, kind: str, venue: str) -> bool:
        """Return True when `venue`'s `kind` input of the symbol is used (one venue each)."""
        preferred = self.venue_of.get(st.symbol) or self.venues.of(st.symbol)
        return st.input_from(kind, venue, preferred)

    def _funding(self, ev: FundingRateV1) -> list[SignalScoredV1]:
        """Append the rate per 8 h: per the event's `interval_h`, else the interval learnt
        from the symbol's settlements (`FundingClock`), else 8 h. When the interval is first
        learnt, the rates kept so far (read per 8 h) are rescaled by it, so that the series
        does not step (a step would rank the next rate above every earlier one)."""
        hours = ev.interval_h
        if hours and not FUNDING_INTERVAL_H[0] <= hours <= FUNDING_INTERVAL_H[1]:
            # refused before any state changes: per 8 h, a rate over 5e-324 h is infinite
            # and would poison the symbol's funding history (NaN sub-scores) for days
            raise PoisonMessage(
                f"funding {ev.symbol} interval_h {hours:g} is no settlement interval "
                f"({FUNDING_INTERVAL_H[0]:g}-{FUNDING_INTERVAL_H[1]:g} h)"
            )
        st = self.state(ev.symbol)
        if not self._from(st, "funding", ev.venue):
            return []
        t = _ts(ev.observed_at)
        clock = st.funding_clock
        known = clock.interval_h
        nxt = ev.next_funding_at
        clock.observe(ev.settled, t, None if nxt is None else _ts(nxt))
        learnt = clock.interval_h
        if known is None and learnt is not None and clock.assumed:
            clock.assumed = False
            if learnt != 8.0:
                scale = 8.0 / learnt
                st.funding = deque(
                    (Point(p.t, p.value * scale) for p in st.funding), maxlen=st.funding.maxlen
                )
        interval = ev.interval_h or learnt
        if not interval:
            clock.assumed = True
        rate = ev.rate * 8.0 / interval if interval else ev.rate
        append_point(st.funding, t, rate, FUNDING_MIN_GAP_S)
        return []

    def _open_interest(self, ev: OpenInterestV1) -> list[SignalScoredV1]:
        value = ev.open_interest if ev.open_interest is not None else ev.open_interest_usd
        st = self.state(ev.symbol)
        if value is not None and self._from(st, "open_interest", ev.venue):
            append_point(st.open_interest, _ts(ev.observed_at), value, 60.0)
        return []

    def _long_short(self, ev: LongShortRatioV1) -> list[SignalScoredV1]:
        st = self.state(ev.symbol)
        if self._from(st, ev.kind, ev.venue):
            append_point(st.ls(ev.kind), _ts(ev.observed_at), ev.long_share, 60.0)
        return []

    def _taker_flow(self, ev: TakerFlowV1) -> list[SignalScoredV1]:
        # the imbalance is scale-free: base units (Binance) and USD (Coinglass) alike
        total = ev.buy_volume + ev.sell_volume
        st = self.state(ev.symbol)
        if total > 0.0 and self._from(st, "taker_flow", ev.venue):
            imbalance = (ev.buy_volume - ev.sell_volume) / total
            append_point(st.taker_flow, _ts(ev.observed_at), imbalance, 60.0)
        return []

    def _liq_seen(self, st: SymbolState, t: float) -> None:
        if st.liquidations_seen_at is None or t > st.liquidations_seen_at:
            st.liquidations_seen_at = t

    def _liq_bucket(self, ev: LiquidationBucketV1) -> list[SignalScoredV1]:
        st = self.state(ev.symbol)
        end = _ts(ev.observed_at)
        key = ("bucket", ev.venue, ev.source, end, ev.window_s)
        long_usd, short_usd = ev.long_liquidations_usd, ev.short_liquidations_usd
        if st.liquidations.add_bucket(
            key, ev.venue, ev.source, end - ev.window_s, end, long_usd, short_usd
        ):
            self._liq_seen(st, end)
        return []

    def liquidation_mismatch(self, ev: LiquidationOrderV1) -> str | None:
        """Return why `ev` is no order of its symbol's market (priced over 2x or under 0.5x
        the symbol's last primary close), or None (also before the symbol's first candle).

        The live scorer dead-letters such an order: its notional would count many times
        over. The engine itself counts what it is given (a backtest's files are checked at
        import)."""
        known = self.states.get(ev.symbol)
        bars = known.candles.get(self.cfg.primary_timeframe) if known is not None else None
        if not bars:
            return None
        ratio = ev.price / bars[-1].close
        if 1.0 / LIQUIDATION_PRICE_RATIO <= ratio <= LIQUIDATION_PRICE_RATIO:
            return None
        return (
            f"liquidation of {ev.symbol} at {ev.price:g} is {ratio:.3g}x its last close "
            f"{bars[-1].close:g}: an order of another market (notional "
            f"{ev.notional_usd:g} USD not counted)"
        )

    def candle_behind(self, ev: CandleClosedV1) -> str | None:
        """Return why the primary candle `ev` comes too late to be scored, or None.

        A symbol's series only grows (indicators, SMC and bar horizons are incremental), so
        a candle opening before its newest bar is not taken. One the series holds (same
        open time: a redelivery, an ingestor's restart backfill) changes nothing and is not
        named. One it never held (a gap's backfill that came after newer candles, a stray
        from the past) is: the live scorer dead-letters it, so a hole in the series shows
        in the DLQ instead of vanishing. Another venue's candle or another timeframe's is
        not named (ignored, or aggregated, as documented).
        """
        symbol = ev.symbol
        if ev.timeframe != self.cfg.primary_timeframe or self.venue_of.get(symbol) != ev.venue:
            return None
        st = self.states.get(symbol)
        bars = st.candles.get(ev.timeframe) if st is not None else None
        open_s = ev.open_time.timestamp()
        if not bars or open_s > bars[-1].open_s:
            return None
        i = bisect_left(bars, open_s, key=_OPEN)
        if i < len(bars) and bars[i].open_s == open_s:
            return None  # a bar the series holds, delivered again
        head = f"candle {symbol} {ev.timeframe} @ {ev.open_time.isoformat()}"
        newest = datetime.fromtimestamp(bars[-1].open_s, UTC).isoformat()
        if i == 0 and len(bars) == bars.maxlen:
            return (
                f"{head} opens before the {len(bars)} bars the scorer keeps (newest "
                f"{newest}): an old bar delivered again, or one that came too late; not scored"
            )
        return (
            f"{head} came after the newer bar @ {newest}: a symbol's series only grows, "
            "so it is not scored (a hole in the series)"
        )

    def _liq_order(self, ev: LiquidationOrderV1) -> list[SignalScoredV1]:
        st = self.state(ev.symbol)
        t = _ts(ev.observed_at)
        long_usd = ev.notional_usd if ev.liquidated_side == "LONG" else 0.0
        short_usd = ev.notional_usd - long_usd
        if st.liquidations.add_order(
            order_identity(ev), ev.venue, ev.source, t, long_usd, short_usd
        ):
            self._liq_seen(st, t)
        return []

    def _social(self, ev: SocialMetricsV1) -> list[SignalScoredV1]:
        symbol = ev.symbol if ev.symbol.endswith("USDT") else ev.symbol + "USDT"
        st = self.state(symbol)
        t = _ts(ev.observed_at)
        if st.social_at is not None and t < st.social_at:
            return []
        st.social_at = t
        for key, value in (
            ("sentiment", ev.sentiment),
            ("galaxy_score", ev.galaxy_score),
            ("social_volume_24h", ev.social_volume_24h),
        ):
            if value is not None:
                series = st.social_history.get(key)
                if series is None:
                    series = st.social_history[key] = deque(maxlen=512)
                append_point(series, t, float(value), 60.0)
        change = ev.social_volume_change_pct
        if change is None and ev.social_volume_24h is not None:
            change = day_over_day_pct(st.social_history["social_volume_24h"], t)
        st.social = {
            "sentiment": ev.sentiment,
            "galaxy_score": ev.galaxy_score,
            "social_volume_change_pct": change,
        }
        return []

    def _fear_greed(self, ev: FearGreedV1) -> list[SignalScoredV1]:
        t, value = _ts(ev.observed_at), float(ev.value)
        newest, earlier = self.fear_greed, self._fg_earlier
        if newest is None or t >= newest[0]:
            if newest is not None and t > newest[0]:
                earlier.append(newest)
            self.fear_greed = (t, value)
        elif all(t != at for at, _ in earlier):  # a late reading of an earlier day
            insort(earlier, (t, value))
        del earlier[: -self.cfg.fear_greed_neutral_readings]
        self.fear_greed_neutral = median([v for _, v in earlier]) if earlier else None
        return []

    def _track(self, ev: TrackCommandV1) -> list[SignalScoredV1]:
        st = self.states.get(ev.symbol)
        if ev.action != "track" or st is None or not st.bars(self.cfg.primary_timeframe):
            return []
        return [self.signal(ev.symbol, ev, "on_demand")]

    # ---- evaluation --------------------------------------------------------------------
    def smc_bias(self, symbol: str) -> tuple[float | None, dict[str, int]]:
        """Return the combined structure bias in [-1, 1] and the trend per timeframe."""
        analyzers = self.smc.get(symbol, {})
        num = den = 0.0
        by_tf: dict[str, int] = {}
        for w, tf in self._smc_weights:
            a = analyzers.get(tf)
            if a is None or a.index < 2 * a.n:
                continue  # too few bars to have confirmed anything yet
            trend = a.trend
            by_tf[tf] = trend
            num += w * trend
            den += w
        return (num / den if den else None), by_tf

    def faded_smc_bias(self, symbol: str, now: float) -> float | None:
        """Return the structure bias with each timeframe's trend weighted by
        0.5 ** (age of its last BOS/CHoCH / (smc_half_life_bars x the timeframe)): a break
        is news that ages, so a trend state held for days stops pulling fully (weights and
        warm-up as in `smc_bias`)."""
        analyzers = self.smc.get(symbol, {})
        hl = self.cfg.smc_half_life_bars
        num = den = 0.0
        for w, tf in self._smc_weights:
            a = analyzers.get(tf)
            if a is None or a.index < 2 * a.n:
                continue
            den += w
            s = a.last_structure
            if a.trend and s is not None:
                age = now - s.known_at
                fade = (
                    0.5 ** ((age if age > 0.0 else 0.0) / (hl * TIMEFRAME_SECONDS[tf]))
                    if hl
                    else 1.0
                )
                num += w * a.trend * fade
        return num / den if den else None

    def _bias(self, symbol: str) -> tuple[float | None, dict[str, int]]:
        """Return `smc_bias(symbol)` as last recomputed (after a trend or warm-up change)."""
        cached = self._biases.get(symbol)
        return cached if cached is not None else self.smc_bias(symbol)

    def evaluate(self, symbol: str, now: float) -> Evaluation:
        """Score every factor of `symbol` at time `now` (epoch seconds) and combine them."""
        st = self.states.get(symbol) or self.state(symbol)
        bias, by_tf = self._biases[symbol]  # set with the state, kept current by _smc_update
        faded = None if bias is None else self.faded_smc_bias(symbol, now)
        ctx = EvalContext(now, self.fear_greed, bias, by_tf, faded, self.fear_greed_neutral)
        cfg = self.cfg
        results: dict[str, FactorResult] = {}
        for name, fn in FACTORS.items():  # a loop, not a comprehension: no extra frame
            results[name] = fn(st, ctx, cfg)
        ev = composite(results, cfg)
        ev.now = now
        return ev

    def _smc_details(self, tf: str, a: SmcAnalyzer) -> dict[str, Scalar]:
        """Return one analyzer's `details` entries (cached until its events or FVGs change;
        a dict, so that the summary merges it with one update())."""
        cached = self._details.get(id(a))
        if cached is not None and cached[0] is a and cached[1] == a.version:
            return cached[2]
        levels = self._levels.setdefault(id(a), {})
        items: dict[str, Scalar] = {f"{tf}.open_fvgs": a.open_fvgs}
        for kind, e in a.last_by_kind.items():
            seen = levels.get(kind)
            if seen is None or seen[0] is not e:  # each event's level is rounded once
                seen = levels[kind] = (e, f"{tf}.{kind}", round_level(e.level))
            items[seen[1]] = seen[2]
        self._details[id(a)] = (a, a.version, items)
        return items

    def smc_summary(self, symbol: str) -> SmcSummary:
        """Return the SMC view of `symbol` for the signal.

        Reused (it is frozen) while no analyzer of the symbol revealed an event, changed its
        open FVGs or finished warming up: consecutive signals then share one object.
        """
        rev = self._smc_rev.get(symbol, 0)
        cached = self._summaries.get(symbol)
        if cached is not None and cached[0] == rev:
            return cached[1]
        summary = self._smc_summary(symbol)
        self._summaries[symbol] = (rev, summary)
        return summary

    def _smc_summary(self, symbol: str) -> SmcSummary:
        bias, by_tf = self._bias(symbol)
        details: dict[str, Scalar] = {"combined_bias": None if bias is None else fround(bias, 4)}
        last = None
        cache = self._details
        for tf, a in self.smc.get(symbol, {}).items():
            cached = cache.get(id(a))  # `_smc_details`' cache, read here: most analyzers hit
            if cached is not None and cached[0] is a and cached[1] == a.version:
                details |= cached[2]
            else:
                details |= self._smc_details(tf, a)
            s = a.last_structure
            if s is not None and (last is None or s.known_at >= last[0].known_at):
                last = (s, tf)
        trend = 0 if bias is None else 1 if bias > 1 / 3 else -1 if bias < -1 / 3 else 0
        if last is None:
            label = None
        else:  # the label of the newest event, made once per event
            known = self._last_label
            if known is None or known[0] is not last[0] or known[1] != last[1]:
                known = self._last_label = (last[0], last[1], last[0].label(last[1]))
            label = known[2]
        # built without re-validation: labels, our own levels and counts
        return _trusted(
            SmcSummary,
            {
                "bias": bias_label(trend),
                "by_timeframe": self._tf_labels(symbol, by_tf),
                "last_event": label,
                "details": details,
            },
            _SMC_SET,
        )

    def _tf_labels(self, symbol: str, by_tf: dict[str, int]) -> dict[str, str]:
        """Return the label per timeframe of the symbol's trend-per-timeframe dict, built
        once per dict (a new one replaces it when a trend changes; it is never changed)."""
        cached = self._labels.get(symbol)
        if cached is not None and cached[0] is by_tf:
            return cached[1]
        labels: dict[str, str] = {tf: bias_label(t) for tf, t in by_tf.items()}
        self._labels[symbol] = (by_tf, labels)
        return labels

    def _candles(self, symbol: str, bars: deque[Bar]) -> tuple[Ohlc, ...]:
        """Return the Ohlc copies of the last `signal_candles` bars, oldest first.

        The symbol's previous answer is reused: the same tuple while no bar was added, and
        one bar shifted in (a tuple slice, not a pass over the window) when exactly one was.
        """
        last = bars[-1]
        cached = self._windows.get(symbol)
        if cached is not None:
            if cached[0] is last:
                return cached[1]
            if len(bars) > 1 and cached[0] is bars[-2]:  # bars only grow at the end
                prev = cached[1]
                window = (prev[1:] if len(prev) >= self.cfg.signal_candles else prev) + (
                    _ohlc(last),
                )
                self._windows[symbol] = (last, window)
                return window
        n = len(bars)
        window = tuple([_ohlc(bars[i]) for i in range(max(0, n - self.cfg.signal_candles), n)])
        self._windows[symbol] = (last, window)
        return window

    def _factor(
        self, name: str, r: FactorResult, weight: float, contribution: float
    ) -> FactorScore:
        """Return the signal's FactorScore of one result (built without re-validation: every
        value comes from the bounded formulas above; weight and contribution follow from the
        result and the engine's config, so the same result gives the same FactorScore)."""
        cached = self._scores.get(name)
        if cached is not None and cached[0] is r:
            return cached[1]
        fs = _trusted(
            FactorScore,
            {
                "name": name,
                "score": fround(r.score, 4),
                "weight": weight,
                "contribution": fround(contribution, 4),
                "status": r.status,
                "age_s": r.age_s,
                "inputs": r.inputs,
                "reason": r.reason,
            },
            _FACTOR_SET,
        )
        self._scores[name] = (r, fs)
        return fs

    def signal(self, symbol: str, trigger: Event, kind: Trigger) -> SignalScoredV1:
        """Evaluate `symbol` at the trigger's time and build the signal event."""
        cfg = self.cfg
        evaluation = self.evaluate(symbol, _ts(trigger.observed_at))
        bars = self.state(symbol).bars(cfg.primary_timeframe)
        weights = cfg.weights
        contributions = evaluation.contributions
        scores = self._scores
        built: list[FactorScore] = []
        for name, r in evaluation.results.items():
            cached = scores.get(name)  # `_factor`'s cache, read here: most results repeat
            if cached is not None and cached[0] is r:
                built.append(cached[1])
            else:
                built.append(self._factor(name, r, weights.get(name, 0.0), contributions[name]))
        factors = tuple(built)
        sid = deterministic_id(trigger.event_id, self.source)
        # the envelope comes from a validated trigger; the rest from the bounded code above
        # (score and confidence are clamped to [0, 100] by `composite`)
        return _trusted(
            SignalScoredV1,
            {
                "event_id": sid,
                "type": "signal.scored",
                "schema_version": 1,
                "source": self.source,
                "symbol": symbol,
                "observed_at": trigger.observed_at,
                "produced_at": self._clock(),
                "correlation_id": trigger.correlation_id or trigger.event_id,
                "causation_id": trigger.event_id,
                "signal_id": sid,
                "timeframe": cfg.primary_timeframe,
                "direction": evaluation.direction,
                "score": fround(evaluation.score, 4),
                "confidence": fround(evaluation.confidence, 2),
                "price": bars[-1].close,
                "factors": factors,
                "top_factors": evaluation.top_factors,
                "missing_factors": evaluation.missing,
                "stale_factors": evaluation.stale,
                "smc": self.smc_summary(symbol),
                "candles": self._candles(symbol, bars),
                "trigger": kind,
                "venue": self.venue_of.get(symbol),
            },
            _SIGNAL_SET,
        )


def order_identity(ev: LiquidationOrderV1) -> tuple[object, ...]:
    """Return what identifies a liquidation order: venue, symbol, side, price, quantity and
    trade time (no venue we read gives liquidations an id), whichever source relayed it."""
    return (ev.venue, ev.symbol, ev.liquidated_side, ev.price, ev.quantity, _ts(ev.observed_at))


def _ohlc(b: Bar) -> Ohlc:
    """Return the signal's copy of a bar (built once per bar, without re-validation)."""
    if b.ohlc is None:
        b.ohlc = _trusted(
            Ohlc,
            {
                "open_time": datetime.fromtimestamp(b.open_s, UTC),
                "open": b.open,
                "high": b.high,
                "low": b.low,
                "close": b.close,
                "volume": b.volume,
            },
            _OHLC_SET,
        )
    ohlc: Ohlc = b.ohlc  # type: ignore[assignment]
    return ohlc


# the fields the validated constructors were given explicitly (the rest were defaults)
_FACTOR_SET = frozenset(FactorScore.__pydantic_fields__)
_SMC_SET = frozenset(SmcSummary.__pydantic_fields__)
_OHLC_SET = frozenset(Ohlc.__pydantic_fields__)
_DEFAULTED = {"type", "schema_version", "produced_at"}
_SIGNAL_SET = frozenset(SignalScoredV1.__pydantic_fields__) - _DEFAULTED
