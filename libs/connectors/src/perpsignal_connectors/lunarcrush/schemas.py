"""LunarCrush wire models (times are unix seconds)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from perpsignal_connectors.wire import Int, Number


class Wire(BaseModel):
    """Base: frozen, unknown fields ignored."""

    model_config = ConfigDict(frozen=True, extra="ignore")


class ListConfig(Wire):
    """`config` of a list response; `generated` is when LunarCrush computed it."""

    generated: Int


class CoinRow(Wire):
    """One coin of `/public/coins/list/v2`."""

    id: Int
    # a blank ticker is no coin of ours: it was published under the key "USDT"
    symbol: str = Field(pattern=r"\S")
    name: str | None = None
    price: Number | None = None
    volume_24h: Number | None = None
    market_cap: Number | None = None
    market_cap_rank: Int | None = None
    circulating_supply: Number | None = None
    max_supply: Number | None = None
    interactions_24h: Number | None = None
    social_volume_24h: Number | None = None
    social_dominance: Number | None = Field(default=None, ge=0, le=100)
    galaxy_score: Number | None = Field(default=None, ge=0, le=100)
    alt_rank: Int | None = None
    alt_rank_previous: Int | None = None
    sentiment: Number | None = Field(default=None, ge=0, le=100)
    categories: str | None = None
    last_updated_price: Int | None = None


class CoinsList(Wire):
    """`/public/coins/list/v2`."""

    config: ListConfig
    data: tuple[CoinRow, ...]


class SeriesPoint(Wire):
    """One bucket of `/public/coins/:coin/time-series/v2`.

    The same 0-100 scales as a coin of the list: the event contract bounds them only as
    amounts (up to 1e30), so a sentiment of 250 % was published as the most bullish crowd.
    """

    time: Int
    galaxy_score: Number | None = Field(default=None, ge=0, le=100)
    alt_rank: Int | None = None
    sentiment: Number | None = Field(default=None, ge=0, le=100)
    social_dominance: Number | None = Field(default=None, ge=0, le=100)
    interactions: Number | None = None
    market_cap: Number | None = None
    close: Number | None = None


class SeriesConfig(Wire):
    """`config` of a time series: which coin."""

    symbol: str | None = None
    bucket: str | None = None


class CoinSeries(Wire):
    """`/public/coins/:coin/time-series/v2`."""

    config: SeriesConfig
    data: tuple[SeriesPoint, ...]


class TopicData(Wire):
    """`data` of `/public/topic/:topic/v1`."""

    topic: str
    topic_rank: Int | None = None
    interactions_24h: Number | None = None
    num_contributors: Number | None = None
    num_posts: Number | None = None
    types_sentiment: dict[str, Number] = Field(default_factory=dict)
    trend: str | None = None


class TopicConfig(Wire):
    """`config` of a topic response."""

    symbol: str | None = None
    generated: Int


class Topic(Wire):
    """`/public/topic/:topic/v1`."""

    config: TopicConfig
    data: TopicData


class CoinsListShell(Wire):
    """`/public/coins/list/v2` before its coins are validated one by one."""

    config: ListConfig
    data: list[Any]


class CoinSeriesShell(Wire):
    """`/public/coins/:coin/time-series/v2` before its buckets are validated one by one."""

    config: SeriesConfig
    data: list[Any]


COINS_LIST = TypeAdapter(CoinsList)
COIN_SERIES = TypeAdapter(CoinSeries)
# the envelopes, and one row of each, for row-by-row validation (VendorHttp.validate_rows)
COINS_LIST_SHELL = TypeAdapter(CoinsListShell)
COIN_SERIES_SHELL = TypeAdapter(CoinSeriesShell)
COIN_ROW = TypeAdapter(CoinRow)
SERIES_POINT = TypeAdapter(SeriesPoint)
TOPIC = TypeAdapter(Topic)
