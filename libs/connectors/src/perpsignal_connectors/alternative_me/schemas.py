"""Fear & Greed wire models (values and timestamps are strings)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter


class FngRow(BaseModel):
    """One daily value; `timestamp` is the day start in unix seconds."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    value: int = Field(ge=0, le=100)
    value_classification: str | None = None
    timestamp: int


class FngResponse(BaseModel):
    """`GET /fng/`: newest first."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    data: tuple[FngRow, ...] = Field(min_length=1)


FNG = TypeAdapter(FngResponse)
