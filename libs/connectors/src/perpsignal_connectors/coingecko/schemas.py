"""CoinGecko wire models."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from perpsignal_connectors.wire import Int, Number, UtcTime


class CoinMarket(BaseModel):
    """One `/coins/markets` row (nullable numbers are null for young or odd coins)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: str
    # a blank ticker is no coin of ours: it was published under the key "USDT"
    symbol: str = Field(pattern=r"\S")
    name: str
    current_price: Number | None = None
    market_cap: Number | None = None
    market_cap_rank: Int | None = None
    fully_diluted_valuation: Number | None = None
    total_volume: Number | None = None
    circulating_supply: Number | None = None
    total_supply: Number | None = None
    max_supply: Number | None = None
    last_updated: UtcTime | None = None  # UTC, with or without its "Z"


COINS_MARKETS = TypeAdapter(list[CoinMarket])
COIN_MARKET = TypeAdapter(CoinMarket)  # one coin, validated row by row


class NewCoin(BaseModel):
    """One `/coins/list/new` row (paid plans): a coin recently listed on CoinGecko."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: str
    symbol: str
    name: str
    activated_at: Int | None = None  # unix seconds


class TrendingItem(BaseModel):
    """`item` of a `/search/trending` coin."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: str
    symbol: str
    name: str
    market_cap_rank: Int | None = None


class TrendingCoin(BaseModel):
    """One trending coin (`{"item": {...}}`)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    item: TrendingItem


class Trending(BaseModel):
    """`/search/trending`: the coins most searched on CoinGecko in the last 24 h."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    # required: an object without it (an error body) is no "nothing is trending"
    coins: tuple[TrendingCoin, ...]


NEW_COINS = TypeAdapter(list[NewCoin])
TRENDING = TypeAdapter(Trending)
