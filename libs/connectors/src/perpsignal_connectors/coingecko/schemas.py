"""CoinGecko wire models."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, TypeAdapter


class CoinMarket(BaseModel):
    """One `/coins/markets` row (nullable numbers are null for young or odd coins)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: str
    symbol: str
    name: str
    current_price: float | None = None
    market_cap: float | None = None
    market_cap_rank: int | None = None
    fully_diluted_valuation: float | None = None
    total_volume: float | None = None
    circulating_supply: float | None = None
    total_supply: float | None = None
    max_supply: float | None = None
    last_updated: datetime | None = None


COINS_MARKETS = TypeAdapter(list[CoinMarket])
