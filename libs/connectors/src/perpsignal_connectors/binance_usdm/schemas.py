"""Binance USD-M wire models: exactly the fields we read, numbers parsed from strings once."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

from perpsignal_connectors.wire import Blank, Int, Number, check_shares


class Wire(BaseModel):
    """Base of every wire model: frozen, unknown fields ignored (Binance adds fields)."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)


class KlineRow(Wire):
    """One klines row `[openTime, o, h, l, c, volume, closeTime, quoteVol, count, takerBuy, ..]`."""

    open_time_ms: Int
    open: Number
    high: Number
    low: Number
    close: Number
    volume: Number
    close_time_ms: Int
    quote_volume: Number
    trades: Int
    taker_buy_volume: Number

    @model_validator(mode="before")
    @classmethod
    def _from_row(cls, data: object) -> object:
        if isinstance(data, list | tuple):
            if len(data) < 10:
                raise ValueError(f"kline row has {len(data)} fields, expected 12")
            keys = (
                "open_time_ms",
                "open",
                "high",
                "low",
                "close",
                "volume",
                "close_time_ms",
                "quote_volume",
                "trades",
                "taker_buy_volume",
            )
            return dict(zip(keys, data[:10], strict=True))
        return data


class SymbolInfo(Wire):
    """One `exchangeInfo.symbols[]` entry."""

    symbol: str
    pair: str | None = None
    contract_type: str = Field(alias="contractType")
    status: str
    onboard_date_ms: Int | None = Field(default=None, alias="onboardDate")
    delivery_date_ms: Int | None = Field(default=None, alias="deliveryDate")
    base_asset: str = Field(alias="baseAsset")
    quote_asset: str = Field(alias="quoteAsset")
    margin_asset: str | None = Field(default=None, alias="marginAsset")


class RateLimitInfo(Wire):
    """One `exchangeInfo.rateLimits[]` entry."""

    rate_limit_type: str = Field(alias="rateLimitType")
    interval: str
    interval_num: Int = Field(alias="intervalNum")
    limit: Int


class ExchangeInfo(Wire):
    """`GET /fapi/v1/exchangeInfo`."""

    server_time_ms: Int = Field(alias="serverTime")
    rate_limits: tuple[RateLimitInfo, ...] = Field(default=(), alias="rateLimits")
    # Binance always lists its contracts: an empty list is a broken answer, which would
    # otherwise empty the universe (nothing polled, every watched symbol sent to OKX)
    symbols: tuple[SymbolInfo, ...] = Field(min_length=1)


class PremiumIndex(Wire):
    """`GET /fapi/v1/premiumIndex` item: mark/index price and the next funding.

    The all-symbols answer lists delivery contracts too, documented with
    `"lastFundingRate": ""` and `"nextFundingTime": 0`: the blank reads as None, so that one
    contract never fails the answer of every symbol (a funding event refuses a None rate).
    """

    symbol: str
    mark_price: Number = Field(alias="markPrice")
    index_price: Blank = Field(default=None, alias="indexPrice")
    last_funding_rate: Blank = Field(alias="lastFundingRate")
    next_funding_time_ms: Int = Field(alias="nextFundingTime")
    time_ms: Int = Field(alias="time")


class FundingRateRow(Wire):
    """`GET /fapi/v1/fundingRate` row: a settled funding rate."""

    symbol: str
    funding_rate: Number = Field(alias="fundingRate")
    funding_time_ms: Int = Field(alias="fundingTime")
    # "" where Binance has none (every early record): unknown, not a broken answer
    mark_price: Blank = Field(default=None, alias="markPrice")


class OpenInterest(Wire):
    """`GET /fapi/v1/openInterest`: open interest in base-asset contracts now."""

    symbol: str
    open_interest: Number = Field(alias="openInterest")
    time_ms: Int = Field(alias="time")


class OpenInterestHistRow(Wire):
    """`GET /futures/data/openInterestHist` row."""

    symbol: str
    sum_open_interest: Number = Field(alias="sumOpenInterest")
    sum_open_interest_value: Number = Field(alias="sumOpenInterestValue")
    timestamp_ms: Int = Field(alias="timestamp")


class LongShortRow(Wire):
    """Row of the three long/short ratio endpoints (shares sum to 1)."""

    symbol: str | None = None
    long_share: Number = Field(alias="longAccount", ge=0, le=1)
    short_share: Number = Field(alias="shortAccount", ge=0, le=1)
    long_short_ratio: Number = Field(alias="longShortRatio", ge=0)
    timestamp_ms: Int = Field(alias="timestamp")

    @model_validator(mode="after")
    def _shares_add_up(self) -> LongShortRow:
        check_shares(self.long_share, self.short_share, 1.0)
        return self


class TakerRatioRow(Wire):
    """`GET /futures/data/takerlongshortRatio` row (volumes in base units)."""

    buy_sell_ratio: Number = Field(alias="buySellRatio", ge=0)
    buy_volume: Number = Field(alias="buyVol", ge=0)
    sell_volume: Number = Field(alias="sellVol", ge=0)
    timestamp_ms: Int = Field(alias="timestamp")


class Ticker24h(Wire):
    """`GET /fapi/v1/ticker/24hr` item."""

    symbol: str
    last_price: Number = Field(alias="lastPrice")
    price_change_pct: Number | None = Field(default=None, alias="priceChangePercent")
    high: Number | None = Field(default=None, alias="highPrice")
    low: Number | None = Field(default=None, alias="lowPrice")
    volume: Number | None = None
    quote_volume: Number | None = Field(default=None, alias="quoteVolume")
    trades: Int | None = Field(default=None, alias="count")
    close_time_ms: Int = Field(alias="closeTime")


class ForceOrder(Wire):
    """The `o` object of a `forceOrder` stream event."""

    symbol: str = Field(alias="s")
    side: str = Field(alias="S")
    quantity: Number = Field(alias="q", ge=0)
    price: Number = Field(alias="p", ge=0)
    avg_price: Number | None = Field(default=None, alias="ap")
    status: str | None = Field(default=None, alias="X")
    filled_qty: Number | None = Field(default=None, alias="z")
    trade_time_ms: Int = Field(alias="T")


class ForceOrderEvent(Wire):
    """A `forceOrder` stream message."""

    event: str = Field(alias="e")
    event_time_ms: Int = Field(alias="E")
    order: ForceOrder = Field(alias="o")


class KlineStreamK(Wire):
    """The `k` object of a kline stream event."""

    t: Int
    T: Int
    s: str
    i: str
    o: Number
    c: Number
    h: Number
    l: Number  # noqa: E741 - Binance's field name
    v: Number
    n: Int
    x: bool
    q: Number
    V: Number


class KlineStreamEvent(Wire):
    """A `<symbol>@kline_<interval>` stream message."""

    e: str
    E: Int
    k: KlineStreamK


KLINES = TypeAdapter(list[KlineRow])
EXCHANGE_INFO = TypeAdapter(ExchangeInfo)
PREMIUM_INDEX_ONE = TypeAdapter(PremiumIndex)
PREMIUM_INDEX_ALL = TypeAdapter(list[PremiumIndex])
FUNDING_RATES = TypeAdapter(list[FundingRateRow])
OPEN_INTEREST = TypeAdapter(OpenInterest)
OPEN_INTEREST_HIST = TypeAdapter(list[OpenInterestHistRow])
LONG_SHORT = TypeAdapter(list[LongShortRow])
TAKER_RATIO = TypeAdapter(list[TakerRatioRow])
# one row of the statistics histories, validated row by row (VendorHttp.validate_rows)
OPEN_INTEREST_HIST_ROW = TypeAdapter(OpenInterestHistRow)
LONG_SHORT_ROW = TypeAdapter(LongShortRow)
TAKER_RATIO_ROW = TypeAdapter(TakerRatioRow)
TICKER_ONE = TypeAdapter(Ticker24h)
TICKER_ALL = TypeAdapter(list[Ticker24h])
FORCE_ORDER = TypeAdapter(ForceOrderEvent)
KLINE_STREAM = TypeAdapter(KlineStreamEvent)
