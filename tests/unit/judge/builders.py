"""Judge test input made by the real producer: scored signals from the scorer's engine.

Nothing here writes a factor's inputs by hand. Signals come from `ScoringEngine` fed with
the recorded market data (../shared/data/market) or with a synthetic market path
(`Market`) where the recording lacks a regime: extreme funding, crowded accounts, a
liquidation cascade, a calm or a wild market. `signal(...)` (the rule table's builder)
starts from such a scorer signal, so its factor inputs are exactly what the scorer emits,
and only sets the decision's headline numbers (direction, score, confidence, SMC bias,
factor sub-scores) that the table varies.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from perpsignal_common.events.base import Event, deterministic_id, utcnow
from perpsignal_common.events.market import (
    TIMEFRAME_SECONDS,
    CandleClosedV1,
    FearGreedV1,
    FundingRateV1,
    LiquidationOrderV1,
    LongShortRatioV1,
    OpenInterestV1,
    SocialMetricsV1,
)
from perpsignal_common.events.signals import (
    FACTOR_NAMES,
    FactorScore,
    Ohlc,
    SignalScoredV1,
    SmcSummary,
)
from perpsignal_domain.scoring.config import EngineConfig
from perpsignal_domain.scoring.engine import ScoringEngine
from tests.unit.scorer import recorded

XRP_1H = "market/XRP_USDT_USDT-1h-futures.csv"
T0 = datetime(2021, 11, 21, 4, tzinfo=UTC)
CFG_1H = EngineConfig(primary_timeframe="1h", smc_timeframes=("1h",))


def load_candles(shared_data: Path, name: str = XRP_1H) -> list[Ohlc]:
    """Read a recorded candle CSV (`open_time` ms, OHLCV) into Ohlc, oldest first."""
    with (shared_data / name).open() as fh:
        return [
            Ohlc(
                open_time=datetime.fromtimestamp(int(r["open_time"]) / 1000, UTC),
                open=float(r["open"]),
                high=float(r["high"]),
                low=float(r["low"]),
                close=float(r["close"]),
                volume=float(r.get("volume") or 0),
            )
            for r in csv.DictReader(fh)
        ]


def score(events: Sequence[Event], cfg: EngineConfig = CFG_1H) -> list[SignalScoredV1]:
    """Run `events` (observation order) through a fresh scorer engine; return its signals."""
    engine = ScoringEngine(cfg, clock=utcnow)
    return [s for ev in events for s in engine.apply(ev)]


CFG_5M = EngineConfig(primary_timeframe="5m", smc_timeframes=("5m", "15m", "1h"))


@cache
def _recorded(root: str) -> tuple[SignalScoredV1, ...]:
    m = Path(root) / "market"
    events = recorded.merged(
        recorded.candles(m / "XRP_USDT_USDT-5m-futures.csv", "XRPUSDT", "5m"),
        recorded.funding(m / "XRP_USDT_USDT-8h-funding_rate.csv", "XRPUSDT"),
        recorded.fear_greed(m / "alternative_me-fear_greed-1d.csv"),
    )
    return tuple(score(events, CFG_5M))


def recorded_signals(shared_data: Path) -> list[SignalScoredV1]:
    """The scorer's signals over a week of recorded XRPUSDT 5m candles with the recorded
    funding and fear & greed (no positioning or liquidations were recorded with them)."""
    return list(_recorded(str(shared_data)))


@dataclass
class Market:
    """A synthetic market path for one symbol, as the ingestor would publish it.

    `trend(...)` appends candles (a geometric drift per bar with a range of `range_pct`);
    the other methods add the positioning and flow data observed at the current time.
    """

    symbol: str = "SYNUSDT"
    timeframe: str = "1h"
    price: float = 100.0
    at: datetime = T0
    events: list[Event] = field(default_factory=list)
    _n: int = 0
    _bar: int = 0

    @property
    def now(self) -> datetime:
        """When point data is observed: a minute before the open bar closes."""
        return self.at + timedelta(seconds=TIMEFRAME_SECONDS[self.timeframe] - 60)

    def _id(self, *parts: object) -> str:
        self._n += 1
        return deterministic_id("synthetic", self.symbol, self._n, *parts)

    def trend(self, bars: int, drift_pct: float, range_pct: float = 0.6) -> Market:
        """Append `bars` candles: of every 8, bars 4-6 pull back half a step, so the path has
        swings (higher highs and lows in an uptrend) for the SMC structure to read."""
        step = timedelta(seconds=TIMEFRAME_SECONDS[self.timeframe])
        for _ in range(bars):
            move = -drift_pct / 2 if self._bar % 8 in (4, 5, 6) else drift_pct
            self._bar += 1
            o = self.price
            c = o * (1 + move / 100)
            half = max(o, c) * range_pct / 200
            self.events.append(
                CandleClosedV1(
                    event_id=self._id("candle"),
                    source="synthetic",
                    symbol=self.symbol,
                    observed_at=self.at + step,
                    timeframe=self.timeframe,  # type: ignore[arg-type]
                    open_time=self.at,
                    open=o,
                    high=max(o, c) + half,
                    low=min(o, c) - half,
                    close=c,
                    volume=1000.0,
                )
            )
            self.at += step
            self.price = c
        return self

    def funding(self, rate: float) -> Market:
        self.events.append(
            FundingRateV1(
                event_id=self._id("funding"),
                source="synthetic",
                symbol=self.symbol,
                observed_at=self.now,
                rate=rate,
                interval_h=8,
            )
        )
        return self

    def accounts_long(self, share: float, kind: str = "global_account") -> Market:
        self.events.append(
            LongShortRatioV1(
                event_id=self._id("ls", kind),
                source="synthetic",
                symbol=self.symbol,
                observed_at=self.now,
                kind=kind,  # type: ignore[arg-type]
                long_share=share,
                short_share=1 - share,
                ratio=share / (1 - share) if share < 1 else 1e9,
            )
        )
        return self

    def open_interest(self, value: float) -> Market:
        self.events.append(
            OpenInterestV1(
                event_id=self._id("oi"),
                source="synthetic",
                symbol=self.symbol,
                observed_at=self.now,
                open_interest=value,
            )
        )
        return self

    def liquidation(self, side: str, usd: float) -> Market:
        self.events.append(
            LiquidationOrderV1(
                event_id=self._id("liq"),
                source="synthetic",
                symbol=self.symbol,
                observed_at=self.now,
                liquidated_side=side,  # type: ignore[arg-type]
                price=self.price,
                quantity=usd / self.price,
                notional_usd=usd,
            )
        )
        return self

    def social(self, sentiment: float, galaxy: float) -> Market:
        self.events.append(
            SocialMetricsV1(
                event_id=self._id("social"),
                source="synthetic",
                symbol=self.symbol,
                observed_at=self.now,
                sentiment=sentiment,
                galaxy_score=galaxy,
                social_volume_change_pct=0.0,
            )
        )
        return self

    def fear_greed(self, value: int, days_before: int = 0) -> Market:
        self.events.append(
            FearGreedV1(
                event_id=self._id("fng"),
                source="synthetic",
                symbol="fear_greed",
                observed_at=self.now - timedelta(days=days_before),
                value=value,
            )
        )
        return self

    def signals(self, cfg: EngineConfig = CFG_1H) -> list[SignalScoredV1]:
        return score(self.events, cfg)

    def last(self, cfg: EngineConfig = CFG_1H) -> SignalScoredV1:
        return self.signals(cfg)[-1]


FLOW_BARS = 12  # bars at the end of a fresh path with the scenario's flow levels


def full_market(
    drift_pct: float = 0.0,
    *,
    funding_rate: float = 0.0001,
    long_share: float = 0.5,
    top_position_share: float = 0.5,
    oi_growth_pct: float = 0.0,
    liquidated: tuple[str, float] = ("LONG", 1_000.0),
    fear_greed: int = 50,
    sentiment: float = 60.0,
    bars: int = 80,
    range_pct: float = 0.6,
    into: Market | None = None,
) -> Market:
    """Every input present and fresh at each bar, as the ingestor publishes them: per bar
    open interest (growing by `oi_growth_pct`), account and position shares, then the
    candle; funding every 8 bars, social every 2, fear & greed daily, one liquidation order
    (`liquidated` = side, USD) per bar over the last 4 bars. `into`: continue that path.

    The scorer reads funding, account shares and sentiment against the symbol's own history
    (a level held throughout is its normal, hence neutral), so a fresh path holds them at
    the usual levels (0.01 %, 50 %, sentiment 60) and moves them to the scenario's over the
    last `FLOW_BARS` bars; funding comes every 4 bars, enough rates to rank."""
    m = into if into is not None else Market()
    oi = 1_000_000.0
    shift = 0 if into is not None else max(0, bars - FLOW_BARS)
    if not m.events:
        # the day before, the index stood at 50: the scorer reads a reading against the
        # ones before it, so the scenario's first reading is a move (a level held for days
        # is neutral)
        m.fear_greed(50, days_before=1)
    for i in range(bars):
        now = i >= shift
        if i % 24 == 0:
            m.fear_greed(fear_greed)
        if i % 4 == 0 or i == bars - 1:
            m.funding(funding_rate if now else 0.0001)
        if i % 2 == 0 or i == bars - 1:
            m.social(sentiment if now else 60.0, 50.0)
        m.open_interest(oi)
        oi *= 1 + oi_growth_pct / 100
        share = long_share if now else 0.5
        m.accounts_long(share).accounts_long(share, "top_account")
        m.accounts_long(top_position_share if now else 0.5, "top_position")
        if i >= bars - 4:
            m.liquidation(*liquidated)
        m.trend(1, drift_pct, range_pct)
    return m


def signal(
    *,
    symbol: str = "XRPUSDT",
    direction: str = "LONG",
    score: float = 70,
    confidence: float = 60,
    factors: dict[str, float] | None = None,
    missing: tuple[str, ...] = (),
    stale: tuple[str, ...] = (),
    smc: str = "NEUTRAL",
    funding_rate: float | None = None,
    ls_ratio: float | None = None,
    candles: list[Ohlc] | tuple[Ohlc, ...] = (),
    price: float | None = None,
    seq: int = 0,
) -> SignalScoredV1:
    """Return a scored signal whose factors (and their inputs) the scorer produced.

    The scorer runs on a flat synthetic market with every input present; `funding_rate`
    (per 8 h) and `ls_ratio` (accounts long per account short) are fed to it as market data,
    so the funding and long/short inputs are the scorer's own. The headline fields and the
    factor sub-scores are then set as given (factors not named keep 50); `missing`/`stale`
    factors are the scorer's own missing/stale results (from markets that lack them).
    """
    share = 0.5 if ls_ratio is None else ls_ratio / (1 + ls_ratio)
    base = _base(0.0001 if funding_rate is None else funding_rate, share)
    scores = factors or {}
    by_name = {f.name: f for f in base.factors}
    built = []
    gaps = _gaps()
    for name in FACTOR_NAMES:
        f = by_name[name]
        if name in missing or name in stale:
            status = "missing" if name in missing else "stale"
            real = gaps[status].get(name)
            assert real is not None, f"no scorer signal has {name} {status}"
            built.append(real.model_copy(update={"weight": 12.5}))
            continue
        assert f.status == "ok", f"the synthetic market left {name} {f.status}: {f.reason}"
        s = scores.get(name, 50.0)
        built.append(
            f.model_copy(update={"score": s, "weight": 12.5, "contribution": 0.125 * (s - 50)})
        )
    at = T0 + timedelta(hours=seq)
    return SignalScoredV1(
        event_id=deterministic_id("test-signal", symbol, seq),
        source="scorer",
        symbol=symbol,
        observed_at=at,
        signal_id=deterministic_id("sig", symbol, seq),
        timeframe="1h",
        direction=direction,  # type: ignore[arg-type]
        score=score,
        confidence=confidence,
        price=price if price is not None else (candles[-1].close if candles else 1.0),
        factors=tuple(built),
        missing_factors=missing,
        stale_factors=stale,
        smc=SmcSummary(bias=smc),  # type: ignore[arg-type]
        candles=tuple(candles),
    )


@cache
def _gaps() -> dict[str, dict[str, FactorScore]]:
    """The scorer's own missing and stale factors: a market with candles only (everything
    else missing), and one whose other feeds stopped 30 bars ago (stale)."""
    bare = Market().trend(60, 0.3).last()
    stopped = full_market(0.3, bars=60)
    stopped.trend(30, 0.3)
    out: dict[str, dict[str, FactorScore]] = {"missing": {}, "stale": {}}
    for sig in (bare, stopped.last()):
        for f in sig.factors:
            if f.status != "ok":
                out[f.status][f.name] = f
    return out


@cache
def _base(funding_rate: float, long_share: float) -> SignalScoredV1:
    return full_market(funding_rate=funding_rate, long_share=long_share).last()


# Market regimes the recording lacks, as synthetic paths through the scorer. `BULL`/`BEAR`:
# every flow agrees with the trend (shorts/longs liquidated, OI rising with price, extreme
# fear/greed read contrarian, social mood); the variants change one thing.
BULL: dict[str, Any] = {
    "drift_pct": 0.8,
    "oi_growth_pct": 1.0,
    "top_position_share": 0.7,
    "liquidated": ("SHORT", 2e6),
    "fear_greed": 10,
    "sentiment": 95.0,
    "bars": 200,
}
BEAR: dict[str, Any] = {
    "drift_pct": -0.8,
    "oi_growth_pct": 1.0,
    "top_position_share": 0.3,
    "liquidated": ("LONG", 2e6),
    "fear_greed": 90,
    "sentiment": 20.0,
    "bars": 200,
}
# LONG/SHORT from a score 5 points off neutral (SCORER_LONG_THRESHOLD=55 / SHORT 45)
LOOSE = EngineConfig(
    primary_timeframe="1h", smc_timeframes=("1h",), long_threshold=55, short_threshold=45
)
# ... and 2 points off (52 / 48): the trend alone can name a direction the flows oppose
LOOSEST = EngineConfig(
    primary_timeframe="1h", smc_timeframes=("1h",), long_threshold=52, short_threshold=48
)


def flows_turn(up: bool = True) -> Market:
    """A long trend, then every flow turns (liquidations, funding, positioning, mood) while
    the price only drifts: the new direction scores before the structure breaks."""
    m = full_market(**(BEAR if up else BULL))
    turned = (BULL if up else BEAR) | {
        "drift_pct": 0.05 if up else -0.05,
        "funding_rate": -0.001 if up else 0.001,
        "long_share": 0.35 if up else 0.65,
        "bars": 12,
    }
    return full_market(**turned, into=m)


SCENARIOS: dict[str, Callable[[], list[SignalScoredV1]]] = {
    "bull trend, every flow agrees": lambda: full_market(**BULL).signals(),
    "bear trend, every flow agrees": lambda: full_market(**BEAR).signals(),
    "bull trend, longs pay extreme funding": lambda: full_market(
        **BULL, funding_rate=0.001
    ).signals(),
    "bull trend, shorts pay extreme funding": lambda: full_market(
        **BULL, funding_rate=-0.001
    ).signals(),
    "bear trend, shorts pay extreme funding": lambda: full_market(
        **BEAR, funding_rate=-0.001
    ).signals(),
    "bull trend, crowded longs (70 % of accounts)": lambda: full_market(
        **BULL, long_share=0.7
    ).signals(),
    "bull trend, very crowded longs (80 %)": lambda: full_market(**BULL, long_share=0.8).signals(),
    "bull trend, the crowd is short (40 % long)": lambda: full_market(
        **BULL, long_share=0.4
    ).signals(),
    "bear trend, very crowded shorts (20 % long)": lambda: full_market(
        **BEAR, long_share=0.2
    ).signals(),
    "long liquidation cascade into a downtrend": lambda: full_market(
        **(BEAR | {"liquidated": ("LONG", 2e7)})
    ).signals(),
    "calm market (0.05 % ranges)": lambda: full_market(
        **(BULL | {"drift_pct": 0.02, "range_pct": 0.05})
    ).signals(),
    "wild market (6 % ranges)": lambda: full_market(**(BULL | {"range_pct": 6.0})).signals(),
    "flows turn up against a bearish structure": lambda: flows_turn(up=True).signals(LOOSE),
    "flows turn down against a bullish structure": lambda: flows_turn(up=False).signals(LOOSE),
    "price up, every flow against it": lambda: full_market(
        **(
            BULL
            | {
                "liquidated": ("LONG", 2e6),
                "top_position_share": 0.3,
                "fear_greed": 90,
                "sentiment": 20.0,
                "oi_growth_pct": -1.0,
                "funding_rate": 0.0004,
                "long_share": 0.6,
            }
        )
    ).signals(LOOSE),
    "candles only (every other feed missing), loose thresholds": lambda: (
        Market().trend(60, 0.8).signals(LOOSE)
    ),
    # (flows are read against their own history: a move of each, not its level, opposes)
    "a mild uptrend against most flows, loosest thresholds": lambda: full_market(
        **(
            BULL
            | {
                "drift_pct": 0.5,
                "liquidated": ("LONG", 2e5),
                "fear_greed": 90,
                "sentiment": 20.0,
                "oi_growth_pct": -1.0,
                "funding_rate": 0.0006,
                "long_share": 0.62,
            }
        )
    ).signals(LOOSEST),
    "weak trend, loose thresholds": lambda: full_market(
        **(BULL | {"drift_pct": 0.1, "fear_greed": 50, "sentiment": 60.0})
    ).signals(LOOSE),
}
