"""CoinAPI wire models (ISO-8601 UTC times with 7 fractional digits, "Z" or no zone)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator

from perpsignal_connectors.wire import Int, Number, UtcTime


def _iso(v: object) -> object:
    # CoinAPI writes 100 ns precision ("...00.0000000Z"); Python parses at most 6 digits
    if isinstance(v, str) and "." in v and v.endswith("Z"):
        head, frac = v[:-1].split(".", 1)
        return f"{head}.{frac[:6]}+00:00"
    return v


class Wire(BaseModel):
    """Base: frozen, unknown fields ignored."""

    model_config = ConfigDict(frozen=True, extra="ignore")


class OhlcvRow(Wire):
    """One `/v1/ohlcv/{symbol_id}/history` period."""

    time_period_start: UtcTime
    time_period_end: UtcTime
    price_open: Number
    price_high: Number
    price_low: Number
    price_close: Number
    volume_traded: Number
    trades_count: Int | None = None

    _t = field_validator("time_period_start", "time_period_end", mode="before")(_iso)


class ExchangeRate(Wire):
    """`/v1/exchangerate/{base}/{quote}`."""

    time: UtcTime
    asset_id_base: str
    asset_id_quote: str
    rate: Number = Field(gt=0)

    _t = field_validator("time", mode="before")(_iso)


class Trade(Wire):
    """One trade of `/v1/trades/{symbol_id}/latest`."""

    symbol_id: str
    time_exchange: UtcTime
    uuid: str | None = None
    price: Number = Field(gt=0)
    size: Number = Field(ge=0)
    taker_side: str

    _t = field_validator("time_exchange", mode="before")(_iso)


class ErrorBody(Wire):
    """`{"error": "..."}` error body."""

    error: str


OHLCV = TypeAdapter(list[OhlcvRow])
EXCHANGE_RATE = TypeAdapter(ExchangeRate)
TRADES = TypeAdapter(list[Trade])
TRADE = TypeAdapter(Trade)  # one trade, validated row by row (VendorHttp.validate_rows)
