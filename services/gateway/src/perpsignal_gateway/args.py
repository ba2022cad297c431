"""Argument models of the platform operations, shared by REST routes, `/gpt/*` and `/invoke`."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import ConfigDict, Field

from perpsignal_gateway.schemas import ApiModel

Direction = Literal["LONG", "SHORT", "NEUTRAL"]
VerdictName = Literal["CONFIRM", "DOWNSIZE", "SKIP", "WAIT"]
Horizon = Literal["1h", "4h", "24h"]


class StrictArgs(ApiModel):
    """Arguments: camelCase or snake_case names, unknown names rejected (named in the 422)."""

    model_config = ConfigDict(extra="forbid")


class SymbolArgs(StrictArgs):
    symbol: str = Field(
        min_length=1, max_length=30, description="BTC, btc or BTCUSDT", examples=["BTC"]
    )


class SignalArgs(SymbolArgs):
    debug: bool = Field(default=False, description="Add raw metrics and factor inputs")


class SignalsQuery(StrictArgs):
    direction: Direction | None = None
    verdict: VerdictName | None = None
    min_score: float = Field(default=0, ge=0, le=100)
    limit: int = Field(default=50, ge=1, le=500)


class MssQuery(StrictArgs):
    min_score: float = Field(default=0, ge=0, le=100)
    tier: str | None = Field(default=None, max_length=40)
    limit: int = Field(default=50, ge=1, le=500)


class ListingsQuery(StrictArgs):
    limit: int = Field(default=50, ge=1, le=500)
    since_hours: float | None = Field(default=None, gt=0, le=24 * 365)


class LiquidationsArgs(SymbolArgs):
    limit: int = Field(default=50, ge=1, le=500)


class ValidateArgs(SymbolArgs):
    """A caller-supplied signal to judge."""

    direction: Literal["LONG", "SHORT"]
    score: float | None = Field(default=None, ge=0, le=100)
    entry_price: float | None = Field(default=None, gt=0)
    stop_loss_price: float | None = Field(default=None, gt=0)
    take_profit_price: float | None = Field(default=None, gt=0)


class PerformanceQuery(StrictArgs):
    horizon: Horizon | None = None
    since: datetime | None = None


class CompareQuery(StrictArgs):
    horizon: Horizon | None = None


class HistoryQuery(StrictArgs):
    # a pattern, not just a length: bytes PostgreSQL refuses (NUL) must be a 422, not a 500
    symbol: str | None = Field(
        default=None, max_length=30, pattern=r"^[A-Za-z0-9/_-]+$", examples=["BTCUSDT"]
    )
    verdict: VerdictName | None = None
    horizon: Horizon | None = None
    start: datetime | None = None
    end: datetime | None = None
    limit: int = Field(default=50, ge=1, le=500)
    offset: int = Field(default=0, ge=0, le=1_000_000)


class NoArgs(StrictArgs):
    pass


class CalibrationQuery(StrictArgs):
    horizon: Horizon = "4h"
    bucket_size: int = Field(default=10, ge=1, le=50)
