"""OKX wire models."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, TypeAdapter, model_validator

from perpsignal_connectors.wire import Int, Number


class OkxCandle(BaseModel):
    """`[ts, o, h, l, c, vol, volCcy, volCcyQuote, confirm]` (strings; newest first)."""

    model_config = ConfigDict(frozen=True)

    ts_ms: Int
    open: Number
    high: Number
    low: Number
    close: Number
    vol_contracts: Number
    vol_base: Number
    vol_quote: Number
    confirmed: bool

    @model_validator(mode="before")
    @classmethod
    def _from_row(cls, data: object) -> object:
        if isinstance(data, list | tuple):
            if len(data) < 9:
                raise ValueError(f"candle row has {len(data)} fields, expected 9")
            return {
                "ts_ms": data[0],
                "open": data[1],
                "high": data[2],
                "low": data[3],
                "close": data[4],
                "vol_contracts": data[5],
                "vol_base": data[6],
                "vol_quote": data[7],
                "confirmed": str(data[8]) == "1",
            }
        return data


class OkxCandles(BaseModel):
    """`GET /api/v5/market/candles` envelope."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    code: str
    data: tuple[OkxCandle, ...]


CANDLES = TypeAdapter(OkxCandles)
