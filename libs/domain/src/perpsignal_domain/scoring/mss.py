"""MSS (Multi-Modal Signal Score) for emerging coins: discovery, social momentum, institutions.

Each phase is the mean of the sub-scores (0-100) whose inputs are present; a phase with no
input at all is neutral (50) and lists what was missing. MSS = weighted mean of the phases
(default 30 / 35 / 35). Tier: A >= 80, B >= 65, C >= 50, D below.

* discovery (CoinGecko tokenomics): market-cap band (10 M-500 M: 100, 500 M-2 B: 60,
  2 B-10 B: 30, above: 10, below 10 M: 40 - too thin); FDV / market cap (1 -> 100, each
  +1 -> -25); circulating share of max (else total) supply x 100; age since genesis
  (< 30 d: 40, < 2 y: 100, < 5 y: 60, older: 30); volume / market cap x 200 (capped).
* social momentum (LunarCrush): galaxy score; alt rank (1 -> 100, 1000 -> 0); alt-rank
  improvement 50 + 50 pull(improvement share, 0.5); social volume growth
  50 + 50 pull(change %, 100) (the event's change, else the 24 h social volume against a day
  earlier); sentiment (percent positive).
* institutional validation: open interest USD on a log scale (1 M -> 0, 1 B -> 100); OI
  growth over 24 h 50 + 50 pull(growth, 0.5); funding health 100 - 100 x |rate per 8 h -
  0.01 %| / 0.1 % (crowding either way is unhealthy; the scorer's 8 h normalisation);
  whale trades in 24 h (20 -> 100, each trade once by its event id, however often it is
  delivered; missing until a whale trade of the coin was ever seen: no feed is not "no
  whales"); listed on Binance futures (100 when seen on the Binance
  market stream or in a listing event; missing otherwise: not seen is not "not listed").

Missing stays missing: a sub-score without its input is left out of its phase's mean and
listed in the phase's `missing`, and lowers `confidence` (the phase-weighted share of
sub-scores that had their input), never counted as 0.

`MssScanner` observes the market stream and evaluates its universe (coins with a CoinGecko
profile or LunarCrush metrics) once per `interval_s` of *event* time, so replays are
deterministic; results at or above `threshold` become `MssScoredV1`.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime

from mypy_extensions import mypyc_attr

from perpsignal_common.events.base import Event, deterministic_id
from perpsignal_common.events.market import (
    CandleClosedV1,
    CoinProfileV1,
    FundingRateV1,
    ListingDetectedV1,
    OpenInterestV1,
    SocialMetricsV1,
    WhaleTradeV1,
)
from perpsignal_common.events.signals import MssScoredV1, PhaseScore, Scalar
from perpsignal_domain.scoring.factors.base import clamp, pull
from perpsignal_domain.scoring.state import (
    FundingClock,
    Point,
    RecentKeys,
    append_point,
    day_over_day_pct,
    value_at_or_before,
)

DAY_S = 86400.0
WHALE_HISTORY = 4096  # whale trades kept per coin


@dataclass(frozen=True, slots=True)
class MssConfig:
    """Phase weights, publication threshold and cadence."""

    weights: tuple[float, float, float] = (30.0, 35.0, 35.0)
    threshold: float = 65.0
    interval_s: float = 900.0


@dataclass
class CoinInputs:
    """Everything observed about one coin."""

    coin: str
    name: str | None = None
    market_cap: float | None = None
    fdv: float | None = None
    circulating_supply: float | None = None
    total_supply: float | None = None
    max_supply: float | None = None
    volume_24h: float | None = None
    genesis_s: float | None = None
    galaxy_score: float | None = None
    alt_rank: int | None = None
    alt_rank_previous: int | None = None
    social_volume_change_pct: float | None = None
    sentiment: float | None = None
    oi_usd: deque[Point] = field(default_factory=lambda: deque(maxlen=2048))
    funding_rate: float | None = None  # per 8 h
    funding_clock: FundingClock = field(default_factory=FundingClock)
    social_volume: deque[Point] = field(default_factory=lambda: deque(maxlen=512))
    whales: deque[float] = field(default_factory=lambda: deque(maxlen=WHALE_HISTORY))
    # the event ids of the whale trades in `whales`: a trade is counted once, however often
    # it is delivered (a rewind after a rebalance, an ingestor restart re-polling it)
    whale_ids: RecentKeys[str] = field(default_factory=lambda: RecentKeys(WHALE_HISTORY))
    listed: bool = False
    profiled: bool = False


def _band(mc: float) -> float:
    if mc < 10e6:
        return 40.0
    if mc <= 500e6:
        return 100.0
    if mc <= 2e9:
        return 60.0
    if mc <= 10e9:
        return 30.0
    return 10.0


def _age(days: float) -> float:
    return 40.0 if days < 30 else 100.0 if days < 730 else 60.0 if days < 1825 else 30.0


Phase = tuple[float, dict[str, Scalar], tuple[str, ...]]


def _phase(parts: dict[str, float | None], raw: dict[str, Scalar]) -> Phase:
    present = [v for v in parts.values() if v is not None]
    score = sum(present) / len(present) if present else 50.0
    missing = tuple(k for k, v in parts.items() if v is None)
    inputs = raw | {f"{k}_score": None if v is None else round(v, 3) for k, v in parts.items()}
    return round(score, 4), inputs, missing


def discovery(c: CoinInputs, now: float) -> Phase:
    """Score tokenomics: market-cap band, FDV ratio, circulating share, age, turnover."""
    mc = c.market_cap if c.market_cap and c.market_cap > 0 else None
    supply = c.max_supply or c.total_supply
    parts = {
        "market_cap_band": _band(mc) if mc else None,
        "fdv_ratio": clamp(100 - 25 * (c.fdv / mc - 1), 0, 100) if mc and c.fdv else None,
        "circulating_share": clamp(100 * c.circulating_supply / supply, 0, 100)
        if c.circulating_supply is not None and supply
        else None,
        "age": _age((now - c.genesis_s) / DAY_S) if c.genesis_s is not None else None,
        "volume_to_mcap": clamp(200 * c.volume_24h / mc, 0, 100)
        if mc and c.volume_24h is not None
        else None,
    }
    raw: dict[str, Scalar] = {"market_cap": c.market_cap, "fdv": c.fdv, "volume_24h": c.volume_24h}
    return _phase(parts, raw)


def social_momentum(c: CoinInputs) -> Phase:
    """Score galaxy score, alt rank and its improvement, social volume growth, sentiment."""
    rank, prev = c.alt_rank, c.alt_rank_previous
    parts = {
        "galaxy_score": clamp(c.galaxy_score, 0, 100) if c.galaxy_score is not None else None,
        "alt_rank": clamp(100 * (1 - (rank - 1) / 999), 0, 100) if rank is not None else None,
        "alt_rank_improvement": 50 + 50 * pull((prev - rank) / max(prev, 1), 0.5)
        if rank is not None and prev is not None
        else None,
        "social_volume_growth": 50 + 50 * pull(c.social_volume_change_pct, 100.0)
        if c.social_volume_change_pct is not None
        else None,
        "sentiment": clamp(c.sentiment, 0, 100) if c.sentiment is not None else None,
    }
    raw: dict[str, Scalar] = {
        "galaxy_score": c.galaxy_score,
        "alt_rank": rank,
        "alt_rank_previous": prev,
        "social_volume_change_pct": c.social_volume_change_pct,
        "sentiment": c.sentiment,
    }
    return _phase(parts, raw)


def institutional(c: CoinInputs, now: float) -> Phase:
    """Score open interest and its growth, funding health, whale trades and the listing."""
    oi = c.oi_usd[-1].value if c.oi_usd else None
    base = value_at_or_before(c.oi_usd, now - DAY_S)
    growth = oi / base.value - 1 if oi is not None and base and base.value > 0 else None
    if growth is not None and not math.isfinite(growth):
        growth = None  # a base so small the ratio overflows (1e30 / 5e-324): no growth read
    whales = sum(1 for t in c.whales if now - DAY_S < t <= now)
    parts = {
        # a non-positive value (a vendor glitch) has no log: missing, as before for 0
        "open_interest": clamp(100 * (math.log10(oi) - 6) / 3, 0, 100)
        if oi is not None and oi > 0
        else None,
        "oi_growth": 50 + 50 * pull(growth, 0.5) if growth is not None else None,
        "funding": 100 - 100 * clamp(abs(c.funding_rate - 0.0001) / 0.001, 0, 1)
        if c.funding_rate is not None
        else None,
        # no whale trade of this coin ever seen: the feed does not cover it (missing)
        "whale_trades": 100 * min(1.0, whales / 20) if c.whales else None,
        "listed_binance_futures": 100.0 if c.listed else None,
    }
    raw: dict[str, Scalar] = {
        "open_interest_usd": oi,
        "oi_growth_24h": growth,
        "funding_rate": c.funding_rate,
        "whale_trades_24h": whales if c.whales else None,
        "listed_binance_futures": True if c.listed else None,
    }
    return _phase(parts, raw)


# the sub-scores of each phase (discovery, social momentum, institutional validation)
PARTS: tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]] = (
    ("market_cap_band", "fdv_ratio", "circulating_share", "age", "volume_to_mcap"),
    ("galaxy_score", "alt_rank", "alt_rank_improvement", "social_volume_growth", "sentiment"),
    ("open_interest", "oi_growth", "funding", "whale_trades", "listed_binance_futures"),
)


def confidence(phases: tuple[Phase, Phase, Phase], cfg: MssConfig) -> float:
    """Return 0-100: the phase-weighted share of sub-scores whose input was present."""
    acc = 0.0
    for w, parts, (_, _, missing) in zip(cfg.weights, PARTS, phases, strict=True):
        acc += w * (1 - len(missing) / len(parts))
    return round(100 * acc / sum(cfg.weights), 2)


def tier(mss: float) -> str:
    """Return the tier letter of an MSS value."""
    return "A" if mss >= 80 else "B" if mss >= 65 else "C" if mss >= 50 else "D"


def score_coin(c: CoinInputs, now: float, cfg: MssConfig) -> tuple[float, Phase, Phase, Phase]:
    """Return MSS and the three phases of one coin at time `now` (pure)."""
    d, s, i = discovery(c, now), social_momentum(c), institutional(c, now)
    w = cfg.weights
    mss = (w[0] * d[0] + w[1] * s[0] + w[2] * i[0]) / sum(w)
    return round(mss, 4), d, s, i


def event_clock(ev: Event) -> float:
    """Return the event time `ev` moves the MSS cadence to (epoch seconds).

    Its `observed_at`, except for a listing: there that is the onboard time, which a venue
    may announce up to 30 days ahead, and a cadence moved there would score (and stamp) the
    universe in the future, then stay silent until market time caught up. A listing is
    news when it was detected (`detected_at`, never ahead of the clock).
    """
    if isinstance(ev, ListingDetectedV1):
        return ev.detected_at.timestamp()
    return ev.observed_at.timestamp()


def coin_of(symbol: str) -> str:
    """Return the coin of a symbol (`PEPEUSDT` -> `PEPE`)."""
    return symbol[:-4] if symbol.endswith("USDT") and len(symbol) > 4 else symbol


# subclassable though compiled (tests inject a failing scan)
@mypyc_attr(allow_interpreted_subclasses=True)
class MssScanner:
    """Collect MSS inputs from the stream and score the universe on an event-time cadence."""

    def __init__(self, cfg: MssConfig | None = None, source: str = "scorer") -> None:
        self.cfg = cfg or MssConfig()
        self.source = source
        self.coins: dict[str, CoinInputs] = {}
        self._bucket: int | None = None

    def _coin(self, symbol: str) -> CoinInputs:
        coin = coin_of(symbol)
        c = self.coins.get(coin)
        if c is None:
            c = self.coins[coin] = CoinInputs(coin)
        return c

    def observe(self, ev: Event) -> None:
        """Fold one event into the coin inputs (cheap for the events MSS ignores)."""
        t = type(ev)
        if t is CandleClosedV1 or t is FundingRateV1 or t is OpenInterestV1:
            if not self.coins:
                return  # no discovery universe yet
            venue = getattr(ev, "venue", "")
            c = self.coins.get(coin_of(ev.symbol))
            if c is None:
                return  # not in the discovery universe (yet)
            if venue == "binance":
                c.listed = True
            if isinstance(ev, FundingRateV1):
                # per 8 h, by the interval the symbol's rates show (the scorer's rule)
                nxt = ev.next_funding_at
                c.funding_clock.observe(
                    ev.settled, ev.observed_at.timestamp(), None if nxt is None else nxt.timestamp()
                )
                interval = ev.interval_h or c.funding_clock.interval_h
                c.funding_rate = ev.rate * 8.0 / interval if interval else ev.rate
            elif isinstance(ev, OpenInterestV1) and ev.open_interest_usd is not None:
                append_point(c.oi_usd, ev.observed_at.timestamp(), ev.open_interest_usd, 60.0)
        elif isinstance(ev, CoinProfileV1):
            c = self._coin(ev.symbol)
            c.profiled = True
            c.name = ev.name or c.name
            for f in ("market_cap", "fdv", "circulating_supply", "total_supply", "max_supply"):
                if getattr(ev, f) is not None:
                    setattr(c, f, getattr(ev, f))
            if ev.volume_24h is not None:
                c.volume_24h = ev.volume_24h
            if ev.genesis_at is not None:
                c.genesis_s = ev.genesis_at.timestamp()
        elif isinstance(ev, SocialMetricsV1):
            c = self._coin(ev.symbol)
            c.profiled = True
            for f in (
                "galaxy_score",
                "alt_rank",
                "alt_rank_previous",
                "social_volume_change_pct",
                "sentiment",
            ):
                if getattr(ev, f) is not None:
                    setattr(c, f, getattr(ev, f))
            if ev.social_volume_24h is not None:
                at = ev.observed_at.timestamp()
                append_point(c.social_volume, at, ev.social_volume_24h, 60.0)
                if ev.social_volume_change_pct is None:
                    # LunarCrush gives the 24 h volume only: its change over a day
                    change = day_over_day_pct(c.social_volume, at)
                    if change is not None:
                        c.social_volume_change_pct = change
        elif isinstance(ev, WhaleTradeV1):
            c = self.coins.get(coin_of(ev.symbol))
            if c is not None and c.whale_ids.first(ev.event_id):
                c.whales.append(ev.observed_at.timestamp())
        elif isinstance(ev, ListingDetectedV1):
            self._coin(ev.base_asset).listed = True

    def due(self, now: float) -> list[MssScoredV1]:
        """Return the MSS results when event time `now` starts a new cadence bucket."""
        bucket = int(now // self.cfg.interval_s)
        if self._bucket is None or bucket <= self._bucket:
            if self._bucket is None:
                self._bucket = bucket
            return []
        self._bucket = bucket
        at = bucket * self.cfg.interval_s
        return self.scan(at)

    def scan(self, at: float) -> list[MssScoredV1]:
        """Score every coin of the universe at `at`; return those above the threshold."""
        out = []
        when = datetime.fromtimestamp(at, UTC)
        for coin in sorted(self.coins):
            c = self.coins[coin]
            if not c.profiled:
                continue
            mss, d, s, i = score_coin(c, at, self.cfg)
            if mss < self.cfg.threshold:
                continue
            eid = deterministic_id("mss", self.source, coin, int(at))
            out.append(
                MssScoredV1(
                    event_id=eid,
                    source=self.source,
                    symbol=coin,
                    observed_at=when,
                    coin=coin,
                    name=c.name,
                    mss=mss,
                    tier=tier(mss),
                    discovery=PhaseScore(score=d[0], inputs=d[1], missing=d[2]),
                    social_momentum=PhaseScore(score=s[0], inputs=s[1], missing=s[2]),
                    institutional_validation=PhaseScore(score=i[0], inputs=i[1], missing=i[2]),
                    binance_symbol=coin + "USDT" if c.listed else None,
                    confidence=confidence((d, s, i), self.cfg),
                )
            )
        return out
