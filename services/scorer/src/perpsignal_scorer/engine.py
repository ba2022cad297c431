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
* top_factors: the 3 factors with the largest |contribution| (ties in FACTOR_NAMES order).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from perpsignal_common.events.base import Event, deterministic_id
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
    TrackCommandV1,
)
from perpsignal_common.events.signals import (
    FACTOR_NAMES,
    Direction,
    FactorScore,
    Ohlc,
    SignalScoredV1,
    SmcSummary,
)
from perpsignal_scorer.config import EngineConfig
from perpsignal_scorer.factors import FACTORS, EvalContext, FactorResult
from perpsignal_scorer.mss import MssScanner
from perpsignal_scorer.smc import SmcAnalyzer, bias_label
from perpsignal_scorer.state import Aggregator, Bar, Ema, SymbolState, append_point

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


def composite(results: dict[str, FactorResult], cfg: EngineConfig) -> Evaluation:
    """Combine factor results into score, direction, confidence and top factors (pure)."""
    contributions: dict[str, float] = {}
    ok_weight = 0.0
    fresh: list[float] = []
    for name in FACTOR_NAMES:
        r = results[name]
        w = cfg.weights.get(name, 0.0)
        contributions[name] = w / 100.0 * (r.score - 50.0)
        if r.status == "ok":
            ok_weight += w
            age = r.age_s or 0.0
            fresh.append(max(0.0, 1.0 - age / cfg.stale_limit(name)))
    net = sum(contributions.values())
    score = min(100.0, max(0.0, 50.0 + net))
    gross = sum(abs(c) for c in contributions.values())
    agreement = abs(net) / gross if gross > 1e-12 else 0.0
    freshness = sum(fresh) / len(fresh) if fresh else 0.0
    completeness = ok_weight / 100.0
    confidence = 100.0 * completeness * (0.4 + 0.6 * agreement) * (0.8 + 0.2 * freshness)
    direction: Direction = (
        "LONG"
        if score >= cfg.long_threshold
        else "SHORT"
        if score <= cfg.short_threshold
        else "NEUTRAL"
    )
    order = {n: i for i, n in enumerate(FACTOR_NAMES)}
    top = tuple(sorted(FACTOR_NAMES, key=lambda n: (-abs(contributions[n]), order[n]))[:3])
    return Evaluation(
        now=0.0,
        results=results,
        contributions=contributions,
        score=score,
        direction=direction,
        confidence=min(100.0, max(0.0, confidence)),
        top_factors=top,
        missing=tuple(n for n in FACTOR_NAMES if results[n].status == "missing"),
        stale=tuple(n for n in FACTOR_NAMES if results[n].status == "stale"),
    )


def _ts(dt: datetime) -> float:
    return dt.timestamp()


class ScoringEngine:
    """Per-symbol state, SMC and factor evaluation for every symbol it is fed."""

    def __init__(self, cfg: EngineConfig | None = None, *, source: str = SOURCE) -> None:
        self.cfg = cfg or EngineConfig()
        self.source = source
        self.states: dict[str, SymbolState] = {}
        self.smc: dict[str, dict[str, SmcAnalyzer]] = {}
        self._aggs: dict[str, dict[str, Aggregator]] = {}
        self.fear_greed: tuple[float, float] | None = None
        self.mss = MssScanner()
        self._smc_tfs = sorted(set(self.cfg.smc_timeframes), key=TIMEFRAME_SECONDS.__getitem__)
        self._handlers: dict[type[Event], Callable[[Any], list[SignalScoredV1]]] = {
            CandleClosedV1: self._candle,
            FundingRateV1: self._funding,
            OpenInterestV1: self._open_interest,
            LongShortRatioV1: self._long_short,
            LiquidationBucketV1: self._liq_bucket,
            LiquidationOrderV1: self._liq_order,
            SocialMetricsV1: self._social,
            FearGreedV1: self._fear_greed,
            TrackCommandV1: self._track,
        }

    # ---- input -------------------------------------------------------------------------
    def apply(self, event: Event) -> list[SignalScoredV1]:
        """Fold one event into state; return the signals it triggers (usually none)."""
        self.mss.observe(event)
        handler = self._handlers.get(type(event))
        return handler(event) if handler is not None else []

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
        return st

    def _candle(self, ev: CandleClosedV1) -> list[SignalScoredV1]:
        st = self.state(ev.symbol)
        tf = ev.timeframe
        open_s = _ts(ev.open_time)
        # bar times are normalised to the grid: Binance closes at ...59.999
        bar = Bar(
            open_s, open_s + TIMEFRAME_SECONDS[tf], ev.open, ev.high, ev.low, ev.close, ev.volume
        )
        if tf == self.cfg.primary_timeframe:
            if not st.add_bar(tf, bar):
                return []  # duplicate or out-of-order candle: no state change, no signal
            analyzers = self.smc[ev.symbol]
            if tf in analyzers:
                analyzers[tf].update(bar)
            for htf, agg in self._aggs[ev.symbol].items():
                for hbar in agg.update(bar):
                    if st.add_bar(htf, hbar):
                        analyzers[htf].update(hbar)
            return [self.signal(ev.symbol, ev, "candle")]
        if tf in self.smc[ev.symbol]:
            if tf not in st.native_tfs:
                st.native_tfs.add(tf)
                self._aggs[ev.symbol].pop(tf, None)  # the venue sends it: stop aggregating
            if st.add_bar(tf, bar):
                self.smc[ev.symbol][tf].update(bar)
        else:
            st.add_bar(tf, bar)
        return []

    def _funding(self, ev: FundingRateV1) -> list[SignalScoredV1]:
        rate = ev.rate * 8.0 / ev.interval_h if ev.interval_h else ev.rate
        append_point(self.state(ev.symbol).funding, _ts(ev.observed_at), rate, 60.0)
        return []

    def _open_interest(self, ev: OpenInterestV1) -> list[SignalScoredV1]:
        value = ev.open_interest if ev.open_interest is not None else ev.open_interest_usd
        if value is not None:
            append_point(self.state(ev.symbol).open_interest, _ts(ev.observed_at), value, 60.0)
        return []

    def _long_short(self, ev: LongShortRatioV1) -> list[SignalScoredV1]:
        append_point(self.state(ev.symbol).ls(ev.kind), _ts(ev.observed_at), ev.long_share, 60.0)
        return []

    def _liq(self, symbol: str, t: float, long_usd: float, short_usd: float) -> None:
        st = self.state(symbol)
        st.liquidations.append((t, long_usd, short_usd))
        if st.liquidations_seen_at is None or t > st.liquidations_seen_at:
            st.liquidations_seen_at = t

    def _liq_bucket(self, ev: LiquidationBucketV1) -> list[SignalScoredV1]:
        t = _ts(ev.observed_at)
        self._liq(ev.symbol, t, ev.long_liquidations_usd, ev.short_liquidations_usd)
        return []

    def _liq_order(self, ev: LiquidationOrderV1) -> list[SignalScoredV1]:
        long_usd = ev.notional_usd if ev.liquidated_side == "LONG" else 0.0
        self._liq(ev.symbol, _ts(ev.observed_at), long_usd, ev.notional_usd - long_usd)
        return []

    def _social(self, ev: SocialMetricsV1) -> list[SignalScoredV1]:
        symbol = ev.symbol if ev.symbol.endswith("USDT") else ev.symbol + "USDT"
        st = self.state(symbol)
        t = _ts(ev.observed_at)
        if st.social_at is not None and t < st.social_at:
            return []
        st.social_at = t
        st.social = {
            "sentiment": ev.sentiment,
            "galaxy_score": ev.galaxy_score,
            "social_volume_change_pct": ev.social_volume_change_pct,
        }
        return []

    def _fear_greed(self, ev: FearGreedV1) -> list[SignalScoredV1]:
        t = _ts(ev.observed_at)
        if self.fear_greed is None or t >= self.fear_greed[0]:
            self.fear_greed = (t, float(ev.value))
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
        for w, tf in enumerate(self._smc_tfs, start=1):
            a = analyzers.get(tf)
            if a is None or a.index < 2 * a.n:
                continue  # too few bars to have confirmed anything yet
            by_tf[tf] = a.trend
            num += w * a.trend
            den += w
        return (num / den if den else None), by_tf

    def evaluate(self, symbol: str, now: float) -> Evaluation:
        """Score every factor of `symbol` at time `now` (epoch seconds) and combine them."""
        st = self.state(symbol)
        bias, by_tf = self.smc_bias(symbol)
        ctx = EvalContext(now, self.fear_greed, bias, by_tf)
        cfg = self.cfg
        results = {name: fn(st, ctx, cfg) for name, fn in FACTORS.items()}
        ev = composite(results, cfg)
        ev.now = now
        return ev

    def smc_summary(self, symbol: str) -> SmcSummary:
        """Return the SMC view of `symbol` for the signal."""
        bias, by_tf = self.smc_bias(symbol)
        details: dict[str, float | int | str | bool | None] = {
            "combined_bias": None if bias is None else round(bias, 4)
        }
        last = None
        for tf, a in self.smc.get(symbol, {}).items():
            details[f"{tf}.open_fvgs"] = a.open_fvgs
            for kind, e in a.last_by_kind.items():
                details[f"{tf}.{kind}"] = round(e.level, 10)
            s = a.last_structure
            if s is not None and (last is None or s.known_at >= last[0].known_at):
                last = (s, tf)
        trend = 0 if bias is None else 1 if bias > 1 / 3 else -1 if bias < -1 / 3 else 0
        label = bias_label(trend)
        return SmcSummary(
            bias=label,
            by_timeframe={tf: bias_label(t) for tf, t in by_tf.items()},
            last_event=None if last is None else last[0].label(last[1]),
            details=details,
        )

    def signal(self, symbol: str, trigger: Event, kind: Trigger) -> SignalScoredV1:
        """Evaluate `symbol` at the trigger's time and build the signal event."""
        cfg = self.cfg
        evaluation = self.evaluate(symbol, _ts(trigger.observed_at))
        bars = self.state(symbol).bars(cfg.primary_timeframe)
        # built without re-validation: every value comes from the bounded formulas above
        factors = tuple(
            FactorScore.model_construct(
                name=name,
                score=round(r.score, 4),
                weight=cfg.weights.get(name, 0.0),
                contribution=round(evaluation.contributions[name], 4),
                status=r.status,
                age_s=r.age_s,
                inputs=r.inputs,
                reason=r.reason,
            )
            for name, r in evaluation.results.items()
        )
        recent = list(bars)[-cfg.signal_candles :]
        for b in recent:
            if b.ohlc is None:
                b.ohlc = Ohlc(
                    open_time=datetime.fromtimestamp(b.open_s, UTC),
                    open=b.open,
                    high=b.high,
                    low=b.low,
                    close=b.close,
                    volume=b.volume,
                )
        sid = deterministic_id(trigger.event_id, self.source)
        return SignalScoredV1(
            event_id=sid,
            signal_id=sid,
            source=self.source,
            symbol=symbol,
            observed_at=trigger.observed_at,
            correlation_id=trigger.correlation_id or trigger.event_id,
            causation_id=trigger.event_id,
            timeframe=cfg.primary_timeframe,
            direction=evaluation.direction,
            score=round(evaluation.score, 4),
            confidence=round(evaluation.confidence, 2),
            price=bars[-1].close,
            factors=factors,
            top_factors=evaluation.top_factors,
            missing_factors=evaluation.missing,
            stale_factors=evaluation.stale,
            smc=self.smc_summary(symbol),
            candles=tuple(b.ohlc for b in recent),
            trigger=kind,
        )
