"""Market events: `perpsignal.market.v1` (keyed by symbol) and `.global.v1` (by metric).

Numbers are floats on purpose: every consumer does floating-point feature math, and JSON
numbers are what downstream dashboards expect. Vendor decimal strings are parsed once at the
ingestor edge; price levels we compute are rounded on the way out. Value rules (finite,
positive prices, candle ranges, times, symbols): `values.py`.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from perpsignal_common.events.base import Event
from perpsignal_common.events.topics import Topic
from perpsignal_common.events.values import (
    Amount,
    CandleTime,
    Count,
    EventTime,
    FundingRate,
    Ident,
    Integer,
    Price,
    ScheduledTime,
    Signed,
    check_candle,
)

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
    venue: Ident = Field(default="binance", description="Exchange or data vendor of the value")


class CandleClosedV1(MarketEvent):
    """A closed OHLCV candle; `observed_at` is the candle close time."""

    type: Literal["market.candle"] = "market.candle"
    timeframe: Timeframe
    open_time: CandleTime
    open: Price
    high: Price
    low: Price
    close: Price
    volume: Amount = Field(description="Base-asset volume")
    quote_volume: Amount | None = None
    trades: Count | None = None
    taker_buy_volume: Amount | None = Field(default=None, description="Base-asset taker buys")

    _check_range = model_validator(mode="after")(check_candle)


class FundingRateV1(MarketEvent):
    """Funding rate (per funding interval, as a fraction: 0.0001 = 0.01 %) and mark price."""

    type: Literal["market.funding"] = "market.funding"
    rate: FundingRate
    mark_price: Price | None = None
    index_price: Price | None = None
    next_funding_at: ScheduledTime | None = None
    interval_h: Amount | None = None
    settled: bool = Field(default=False, description="True for a settled historical rate")


class OpenInterestV1(MarketEvent):
    """Open interest in base units and/or in quote notional."""

    type: Literal["market.open_interest"] = "market.open_interest"
    open_interest: Amount | None = Field(default=None, description="Base-asset contracts")
    open_interest_usd: Amount | None = None
    period: Ident | None = Field(default=None, description="Aggregation period, when historical")


class LongShortRatioV1(MarketEvent):
    """Positioning: share of longs and shorts among accounts or top-trader positions."""

    type: Literal["market.long_short_ratio"] = "market.long_short_ratio"
    kind: Literal["global_account", "top_account", "top_position"]
    long_share: float = Field(ge=0, le=1)
    short_share: float = Field(ge=0, le=1)
    ratio: Amount
    period: Ident | None = None


class TakerFlowV1(MarketEvent):
    """Taker buy vs sell volume over a period."""

    type: Literal["market.taker_flow"] = "market.taker_flow"
    buy_volume: Amount
    sell_volume: Amount
    buy_sell_ratio: Amount
    unit: Literal["base", "usd"] = "base"
    period: Ident | None = None


class LiquidationBucketV1(MarketEvent):
    """Liquidations of one symbol aggregated over a window ending at `observed_at`."""

    type: Literal["market.liquidation_bucket"] = "market.liquidation_bucket"
    window_s: Count
    long_liquidations_usd: Amount = Field(description="Longs liquidated (sell orders)")
    short_liquidations_usd: Amount = Field(description="Shorts liquidated (buy orders)")
    count: Count | None = Field(
        description="Orders in the window; null when unknown (Coinglass gives sums only)"
    )


class SocialMetricsV1(MarketEvent):
    """Social metrics of a coin (LunarCrush)."""

    type: Literal["market.social"] = "market.social"
    galaxy_score: Amount | None = None
    alt_rank: Count | None = None
    alt_rank_previous: Count | None = None
    sentiment: Amount | None = Field(default=None, description="Percent positive, 0-100")
    social_volume_24h: Amount | None = None
    social_volume_change_pct: Signed | None = None
    social_dominance: Amount | None = None
    interactions_24h: Amount | None = None
    market_cap: Amount | None = None


class WhaleTradeV1(MarketEvent):
    """A single trade whose notional is above the configured whale threshold."""

    type: Literal["market.whale_trade"] = "market.whale_trade"
    price: Price
    size: Amount
    notional_usd: Amount
    side: Literal["BUY", "SELL"]
    trade_id: str | None = None


class CoinProfileV1(MarketEvent):
    """Tokenomics and market profile of a coin (CoinGecko, LunarCrush)."""

    type: Literal["market.coin_profile"] = "market.coin_profile"
    coin_id: str | None = None
    name: str | None = None
    market_cap: Amount | None = None
    fdv: Amount | None = None
    circulating_supply: Amount | None = None
    total_supply: Amount | None = None
    max_supply: Amount | None = None
    volume_24h: Amount | None = None
    price: Amount | None = Field(default=None, description="0 when the vendor has no price")
    market_cap_rank: Count | None = None
    categories: tuple[str, ...] = ()
    genesis_at: EventTime | None = None


class TickerV1(MarketEvent):
    """Rolling 24h ticker of a symbol."""

    type: Literal["market.ticker"] = "market.ticker"
    last_price: Price
    price_change_pct: Signed | None = None
    high: Price | None = None
    low: Price | None = None
    volume: Amount | None = None
    quote_volume: Amount | None = None
    trades: Count | None = None


class FearGreedV1(Event):
    """Fear & Greed index, on `perpsignal.market.global.v1` keyed `fear_greed`."""

    topic: ClassVar[str] = Topic.MARKET_GLOBAL
    type: Literal["global.fear_greed"] = "global.fear_greed"
    value: Integer = Field(ge=0, le=100)
    classification: str | None = None


class LiquidationOrderV1(Event):
    """One liquidation order, on `perpsignal.liquidations.v1`."""

    topic: ClassVar[str] = Topic.LIQUIDATIONS
    type: Literal["liquidation.order"] = "liquidation.order"
    venue: Ident = "binance"
    liquidated_side: Literal["LONG", "SHORT"] = Field(
        description="Position that was liquidated (a SELL order liquidates a LONG)"
    )
    price: Price
    quantity: Amount
    notional_usd: Amount


class ListingDetectedV1(Event):
    """A newly listed perpetual, detected once, on `perpsignal.listings.v1`.

    `observed_at` is the onboard time, which a venue may announce ahead of the launch.
    """

    topic: ClassVar[str] = Topic.LISTINGS
    type: Literal["listing.new"] = "listing.new"
    observed_at: ScheduledTime = Field(description="Onboard time (may be announced ahead)")
    venue: Ident = "binance"
    base_asset: Ident
    quote_asset: Ident
    onboard_at: ScheduledTime
    detected_at: EventTime
    detection_latency_s: Signed
    last_price: Amount | None = Field(default=None, description="0 before the first trade")
    price_change_pct_24h: Signed | None = None
    quote_volume_24h: Amount | None = None


class TrackCommandV1(Event):
    """Ask the ingestor to track (or stop tracking) a symbol, on `perpsignal.commands.v1`."""

    topic: ClassVar[str] = Topic.COMMANDS
    type: Literal["command.track"] = "command.track"
    action: Literal["track", "untrack"] = "track"
    ttl_s: Count = 3600
    requested_by: Ident = "gateway"
