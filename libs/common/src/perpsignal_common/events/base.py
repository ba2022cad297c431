"""Event envelope shared by every topic.

Events are immutable facts. The envelope is the contract downstream consumers rely on:
`event_id` is the idempotency key, `type` discriminates the payload, `schema_version` is the
major version of that payload, `observed_at` is the exchange's (or upstream's) own time and
`produced_at` is when this process built the event. What each value may be is in `values.py`.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from hashlib import sha1
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from perpsignal_common.events.values import EventTime, Ident, SchemaVersion, Symbol

# Fixed namespace so `deterministic_id` gives the same id on every machine, forever
EVENT_NAMESPACE = uuid.UUID("8f1c2b0e-5d7a-4c55-9a43-2f6f0f4a9d11")
_NAMESPACE_BYTES = EVENT_NAMESPACE.bytes


def deterministic_id(*parts: object) -> str:
    """Return a UUIDv5 built from `parts`, so re-observing the same fact yields the same id.

    The same string as `str(uuid.uuid5(EVENT_NAMESPACE, "|".join(map(str, parts))))` (a test
    holds them equal), computed without building `uuid.UUID` objects: every event id of
    every service goes through here.
    """
    digest = sha1(_NAMESPACE_BYTES + "|".join(map(str, parts)).encode()).digest()
    h = digest.hex()
    # version 5 is the 13th hex digit; the RFC 4122 variant sets the top two bits of byte 8
    # (hex digit 17): 10xx, one of 8 9 a b
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{_VARIANT[digest[8] >> 4 & 3]}{h[17:20]}-{h[20:32]}"


_VARIANT = "89ab"


def utcnow() -> datetime:
    """Return the current time as an aware UTC datetime."""
    return datetime.now(UTC)


class Payload(BaseModel):
    """Base for nested value objects: frozen, tolerant of unknown fields, finite floats."""

    model_config = ConfigDict(frozen=True, extra="ignore", allow_inf_nan=False, defer_build=True)


class Event(BaseModel):
    """Envelope of every event; subclasses pin `type` with a Literal and set `topic`."""

    model_config = ConfigDict(frozen=True, extra="ignore", allow_inf_nan=False, defer_build=True)
    topic: ClassVar[str]

    event_id: Ident = Field(description="Unique id; the idempotency key for every consumer")
    type: str = Field(description="Payload type discriminator, e.g. `market.candle`")
    schema_version: SchemaVersion = Field(
        default=1, description="Major version of this payload; an unknown one is refused"
    )
    source: Ident = Field(description="Origin: a vendor (`binance`) or a service (`scorer`)")
    symbol: Symbol = Field(description="Partition key: symbol (`BTCUSDT`), coin or metric name")
    observed_at: EventTime = Field(description="When the fact happened, upstream time")
    produced_at: EventTime = Field(default_factory=utcnow)
    correlation_id: Ident | None = Field(default=None, description="Root of the causal chain")
    causation_id: Ident | None = Field(default=None, description="Event that caused this one")

    def partition_key(self) -> bytes:
        """Return the Kafka key: the symbol, so one symbol's events stay ordered."""
        return self.symbol.encode()
