"""Market events: `perpsignal.market.v1` (keyed by symbol) and `.global.v1` (by metric).

Numbers are floats on purpose: every consumer does floating-point feature math, and JSON
numbers are what downstream dashboards expect. Vendor decimal strings are parsed once at the
ingestor edge; price levels we compute are rounded on the way out.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import AwareDatetime, Field

from perpsignal_common.events.base import Event
from perpsignal_common.events.topics import Topic

Timeframe = Literal["1m", "5m", "15m", "30m", "1h", "2h", "4h", "8h", "1d"]
TIMEFRAME_SECONDS: dict[str, int] = {
    "1m": 60,
    "5m": 300,
    "15m": 900,
    "30m": 1800,
    "1h": 3600,
    "2h": 7200,
    "4h": 14400,
    "8h": 28800,
    "1d": 86400,
}


class MarketEvent(Event):
    """Base of every event on `perpsignal.market.v1`."""

    topic: ClassVar[str] = Topic.MARKET
    venue: str = Field(default="binance", description="Exchange or data vendor of the value")


class CandleClosedV1(MarketEvent):
    """A closed OHLCV candle; `observed_at` is the candle close time."""

    type: Literal["market.candle"] = "market.candle"
    timeframe: Timeframe
    open_time: AwareDatetime
    open: float
    high: float
    low: float
    close: float
    volume: float = Field(description="Base-asset volume")
    quote_volume: float | None = None
    trades: int | None = None
    taker_buy_volume: float | None = Field(default=None, description="Base-asset taker buys")


class FundingRateV1(MarketEvent):
    """Funding rate (per funding interval, as a fraction: 0.0001 = 0.01 %) and mark price."""

    type: Literal["market.funding"] = "market.funding"
    rate: float
    mark_price: float | None = None
    index_price: float | None = None
    next_funding_at: AwareDatetime | None = None
    interval_h: float | None = None
    settled: bool = Field(default=False, description="True for a settled historical rate")


class OpenInterestV1(MarketEvent):
    """Open interest in base units and/or in quote notional."""

    type: Literal["market.open_interest"] = "market.open_interest"
    open_interest: float | None = Field(default=None, description="Base-asset contracts")
    open_interest_usd: float | None = None
    period: str | None = Field(default=None, description="Aggregation period, when historical")


class LongShortRatioV1(MarketEvent):
    """Positioning: share of longs and shorts among accounts or top-trader positions."""

    type: Literal["market.long_short_ratio"] = "market.long_short_ratio"
    kind: Literal["global_account", "top_account", "top_position"]
    long_share: float = Field(ge=0, le=1)
    short_share: float = Field(ge=0, le=1)
    ratio: float = Field(ge=0)
    period: str | None = None


class TakerFlowV1(MarketEvent):
    """Taker buy vs sell volume over a period."""

    type: Literal["market.taker_flow"] = "market.taker_flow"
    buy_volume: float
    sell_volume: float
    buy_sell_ratio: float
    unit: Literal["base", "usd"] = "base"
    period: str | None = None


class LiquidationBucketV1(MarketEvent):
    """Liquidations of one symbol aggregated over a window ending at `observed_at`."""

    type: Literal["market.liquidation_bucket"] = "market.liquidation_bucket"
    window_s: int
    long_liquidations_usd: float = Field(ge=0, description="Longs liquidated (sell orders)")
    short_liquidations_usd: float = Field(ge=0, description="Shorts liquidated (buy orders)")
    count: int | None = Field(
        ge=0, description="Orders in the window; null when unknown (Coinglass gives sums only)"
    )


class SocialMetricsV1(MarketEvent):
    """Social metrics of a coin (LunarCrush)."""

    type: Literal["market.social"] = "market.social"
    galaxy_score: float | None = None
    alt_rank: int | None = None
    alt_rank_previous: int | None = None
    sentiment: float | None = Field(default=None, description="Percent positive, 0-100")
    social_volume_24h: float | None = None
    social_volume_change_pct: float | None = None
    social_dominance: float | None = None
    interactions_24h: float | None = None
    market_cap: float | None = None


class WhaleTradeV1(MarketEvent):
    """A single trade whose notional is above the configured whale threshold."""

    type: Literal["market.whale_trade"] = "market.whale_trade"
    price: float
    size: float
    notional_usd: float
    side: Literal["BUY", "SELL"]
    trade_id: str | None = None


class CoinProfileV1(MarketEvent):
    """Tokenomics and market profile of a coin (CoinGecko, LunarCrush)."""

    type: Literal["market.coin_profile"] = "market.coin_profile"
    coin_id: str | None = None
    name: str | None = None
    market_cap: float | None = None
    fdv: float | None = None
    circulating_supply: float | None = None
    total_supply: float | None = None
    max_supply: float | None = None
    volume_24h: float | None = None
    price: float | None = None
    market_cap_rank: int | None = None
    categories: tuple[str, ...] = ()
    genesis_at: AwareDatetime | None = None


class TickerV1(MarketEvent):
    """Rolling 24h ticker of a symbol."""

    type: Literal["market.ticker"] = "market.ticker"
    last_price: float
    price_change_pct: float | None = None
    high: float | None = None
    low: float | None = None
    volume: float | None = None
    quote_volume: float | None = None
    trades: int | None = None


class FearGreedV1(Event):
    """Fear & Greed index, on `perpsignal.market.global.v1` keyed `fear_greed`."""

    topic: ClassVar[str] = Topic.MARKET_GLOBAL
    type: Literal["global.fear_greed"] = "global.fear_greed"
    value: int = Field(ge=0, le=100)
    classification: str | None = None


class LiquidationOrderV1(Event):
    """One liquidation order, on `perpsignal.liquidations.v1`."""

    topic: ClassVar[str] = Topic.LIQUIDATIONS
    type: Literal["liquidation.order"] = "liquidation.order"
    venue: str = "binance"
    liquidated_side: Literal["LONG", "SHORT"] = Field(
        description="Position that was liquidated (a SELL order liquidates a LONG)"
    )
    price: float
    quantity: float
    notional_usd: float


class ListingDetectedV1(Event):
    """A newly listed perpetual, detected once, on `perpsignal.listings.v1`."""

    topic: ClassVar[str] = Topic.LISTINGS
    type: Literal["listing.new"] = "listing.new"
    venue: str = "binance"
    base_asset: str
    quote_asset: str
    onboard_at: AwareDatetime
    detected_at: AwareDatetime
    detection_latency_s: float
    last_price: float | None = None
    price_change_pct_24h: float | None = None
    quote_volume_24h: float | None = None


class TrackCommandV1(Event):
    """Ask the ingestor to track (or stop tracking) a symbol, on `perpsignal.commands.v1`."""

    topic: ClassVar[str] = Topic.COMMANDS
    type: Literal["command.track"] = "command.track"
    action: Literal["track", "untrack"] = "track"
    ttl_s: int = Field(default=3600, ge=0)
    requested_by: str = "gateway"
