"""Fear & Greed wire models (values and timestamps are strings)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from perpsignal_connectors.wire import Int


class FngRow(BaseModel):
    """One daily value; `timestamp` is the day start in unix seconds."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    value: Int = Field(ge=0, le=100)
    value_classification: str | None = None
    timestamp: Int


class FngResponse(BaseModel):
    """`GET /fng/`: newest first."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    data: tuple[FngRow, ...] = Field(min_length=1)


class FngShell(BaseModel):
    """`GET /fng/` before its days are validated one by one."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    data: list[Any] = Field(min_length=1)


FNG = TypeAdapter(FngResponse)
FNG_SHELL = TypeAdapter(FngShell)
FNG_ROW = TypeAdapter(FngRow)
