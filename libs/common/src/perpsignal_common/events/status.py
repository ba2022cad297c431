"""Operational events: a data source's health as the ingestor sees it.

`source.status` is published on `perpsignal.market.global.v1`, keyed `source:<name>`, once per
state change of a source (never per poll), so every consumer (the gateway's health view and
dashboard, an alerting job) learns that a vendor is failing and since when without scraping
logs or metrics. Consumers that do not care (the scorer) ignore the type.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from perpsignal_common.events.base import Event
from perpsignal_common.events.topics import Topic
from perpsignal_common.events.values import Count, EventTime, Ident

SourceState = Literal["up", "degraded", "down"]


def source_key(name: str) -> str:
    """Return the partition key (and `symbol`) of a source's status events."""
    return f"source:{name}"


class SourceStatusV1(Event):
    """A source changed state: `up`, `degraded` (failing, retrying) or `down` (given up for now)."""

    topic: ClassVar[str] = Topic.MARKET_GLOBAL
    type: Literal["source.status"] = "source.status"
    name: Ident = Field(description="The ingestor source, e.g. `binance`, `fear_greed`")
    state: SourceState
    since: EventTime = Field(description="When the source entered this state")
    reason: str | None = Field(
        default=None,
        max_length=500,
        description="Why it is not up: the error kind and message (never a URL with a key)",
    )
    failures: Count = Field(default=0, description="Consecutive failed polls")
