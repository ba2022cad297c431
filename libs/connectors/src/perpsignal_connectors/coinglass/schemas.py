"""Coinglass wire models (envelope `{"code": "0", "msg": ..., "data": [...]}`)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

from perpsignal_connectors.wire import Int, Number, check_shares


class Wire(BaseModel):
    """Base: frozen, unknown fields ignored."""

    model_config = ConfigDict(frozen=True, extra="ignore")


class LiquidationAggRow(Wire):
    """Coin liquidations across exchanges for one interval starting at `time` (ms)."""

    time: Int
    aggregated_long_liquidation_usd: Number = Field(ge=0)
    aggregated_short_liquidation_usd: Number = Field(ge=0)


class OhlcRow(Wire):
    """OHLC row (funding in percent, open interest in USD); `time` is the interval start."""

    time: Int
    open: Number
    high: Number
    low: Number
    close: Number


class RatioRow(Wire):
    """Base of the long/short rows: the two percentages add up to 100."""

    long_pct: float
    short_pct: float

    @model_validator(mode="after")
    def _shares_add_up(self) -> RatioRow:
        check_shares(self.long_pct, self.short_pct, 100.0)
        return self


class GlobalRatioRow(RatioRow):
    """Global account long/short (percent)."""

    time: Int
    long_pct: Number = Field(alias="global_account_long_percent", ge=0, le=100)
    short_pct: Number = Field(alias="global_account_short_percent", ge=0, le=100)


class TopAccountRow(RatioRow):
    """Top-trader account long/short (percent)."""

    time: Int
    long_pct: Number = Field(alias="top_account_long_percent", ge=0, le=100)
    short_pct: Number = Field(alias="top_account_short_percent", ge=0, le=100)


class TopPositionRow(RatioRow):
    """Top-trader position long/short (percent)."""

    time: Int
    long_pct: Number = Field(alias="top_position_long_percent", ge=0, le=100)
    short_pct: Number = Field(alias="top_position_short_percent", ge=0, le=100)


class TakerAggRow(Wire):
    """Coin taker buy/sell volume in USD across exchanges."""

    time: Int
    buy_usd: Number = Field(alias="aggregated_buy_volume_usd", ge=0)
    sell_usd: Number = Field(alias="aggregated_sell_volume_usd", ge=0)


class WsLiquidation(Wire):
    """One order of the `liquidationOrders` WebSocket channel (side 1 = long liquidated)."""

    base_asset: str | None = Field(default=None, alias="baseAsset")
    exchange: str = Field(alias="exName")
    price: Number = Field(gt=0)
    side: Int
    symbol: str
    time: Int
    # a liquidation of nothing is no liquidation: it would count as an order in its bucket
    vol_usd: Number = Field(alias="volUsd", gt=0)


class WsMessage(Wire):
    """A channel message."""

    channel: str
    data: tuple[WsLiquidation, ...] = ()


class WsShell(Wire):
    """A channel message before its rows are validated one by one (`WS_LIQUIDATION`): one
    odd row costs only itself, not the rest of its message."""

    channel: str
    data: tuple[Any, ...] = ()


LIQUIDATION_AGG = TypeAdapter(list[LiquidationAggRow])
OHLC = TypeAdapter(list[OhlcRow])
GLOBAL_RATIO = TypeAdapter(list[GlobalRatioRow])
TOP_ACCOUNT = TypeAdapter(list[TopAccountRow])
TOP_POSITION = TypeAdapter(list[TopPositionRow])
TAKER_AGG = TypeAdapter(list[TakerAggRow])
# one row of each history, validated row by row (VendorHttp.validate_rows)
LIQUIDATION_AGG_ROW = TypeAdapter(LiquidationAggRow)
OHLC_ROW = TypeAdapter(OhlcRow)
GLOBAL_RATIO_ROW = TypeAdapter(GlobalRatioRow)
TOP_ACCOUNT_ROW = TypeAdapter(TopAccountRow)
TOP_POSITION_ROW = TypeAdapter(TopPositionRow)
TAKER_AGG_ROW = TypeAdapter(TakerAggRow)
WS_MESSAGE = TypeAdapter(WsMessage)
WS_SHELL = TypeAdapter(WsShell)
WS_LIQUIDATION = TypeAdapter(WsLiquidation)
