"""Event envelope shared by every topic.

Events are immutable facts. The envelope is the contract downstream consumers rely on:
`event_id` is the idempotency key, `type` discriminates the payload, `schema_version` is the
major version of that payload, `observed_at` is the exchange's (or upstream's) own time and
`produced_at` is when this process built the event.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from hashlib import sha1
from typing import Any, ClassVar, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

# Fixed namespace so `deterministic_id` gives the same id on every machine, forever
EVENT_NAMESPACE = uuid.UUID("8f1c2b0e-5d7a-4c55-9a43-2f6f0f4a9d11")
_NAMESPACE_BYTES = EVENT_NAMESPACE.bytes


def deterministic_id(*parts: object) -> str:
    """Return a UUIDv5 built from `parts`, so re-observing the same fact yields the same id.

    The same string as `str(uuid.uuid5(EVENT_NAMESPACE, "|".join(map(str, parts))))` (a test
    holds them equal), computed without building `uuid.UUID` objects: every event id of
    every service goes through here.
    """
    digest = bytearray(sha1(_NAMESPACE_BYTES + "|".join(map(str, parts)).encode()).digest())
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest[:16].hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def utcnow() -> datetime:
    """Return the current time as an aware UTC datetime."""
    return datetime.now(UTC)


class Payload(BaseModel):
    """Base for nested value objects: frozen, tolerant of unknown fields."""

    model_config = ConfigDict(frozen=True, extra="ignore")


class Event(BaseModel):
    """Envelope of every event; subclasses pin `type` with a Literal and set `topic`."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    topic: ClassVar[str]

    event_id: str = Field(description="Unique id; the idempotency key for every consumer")
    type: str = Field(description="Payload type discriminator, e.g. `market.candle`")
    schema_version: int = Field(default=1, description="Major version of this payload")
    source: str = Field(description="Origin: a vendor (`binance`) or a service (`scorer`)")
    symbol: str = Field(description="Partition key: symbol (`BTCUSDT`), coin or metric name")
    observed_at: AwareDatetime = Field(description="When the fact happened, upstream time")
    produced_at: AwareDatetime = Field(default_factory=utcnow)
    correlation_id: str | None = Field(default=None, description="Root of the causal chain")
    causation_id: str | None = Field(default=None, description="Event that caused this one")

    def partition_key(self) -> bytes:
        """Return the Kafka key: the symbol, so one symbol's events stay ordered."""
        return self.symbol.encode()


M = TypeVar("M", bound=BaseModel)
_setattr = object.__setattr__
_REQUIRED: Any = object()


class _Plan:
    """How `trusted` fills one class: defaults in declaration order, factories, names."""

    __slots__ = ("factories", "names", "required", "template")

    def __init__(self, cls: type[BaseModel]) -> None:
        fields = cls.__pydantic_fields__
        for name, info in fields.items():
            # a factory taking the validated data, or a mutable default: none of ours has one
            if info.default_factory_takes_validated_data or isinstance(
                info.default, list | dict | set
            ):
                raise TypeError(f"{cls.__name__}.{name}: default unsupported by trusted()")
        self.template: dict[str, Any] = {
            name: _REQUIRED if info.is_required() else info.default for name, info in fields.items()
        }
        self.required = frozenset(n for n, i in fields.items() if i.is_required())
        self.names = frozenset(fields)
        self.factories: tuple[tuple[str, Any], ...] = tuple(
            (n, i.default_factory) for n, i in fields.items() if i.default_factory is not None
        )


_PLANS: dict[type[BaseModel], _Plan] = {}


def trusted(cls: type[M], /, **values: Any) -> M:
    """Build `cls` from values our own code produced or a validator already checked.

    What `cls.model_construct(**values)` does (defaults filled in, `model_fields_set` the
    given names), with less bookkeeping and no validation at all: use it only where every
    value is already a validated model or a value the calling code bounds itself (the
    judge's rule verdicts, an event's fields passed on unchanged). Callers' tests hold the
    result equal to the validated model. A missing required or unknown field raises
    TypeError.
    """
    plan = _PLANS.get(cls)
    if plan is None:
        plan = _PLANS[cls] = _Plan(cls)
    keys = values.keys()
    if not (keys >= plan.required and keys <= plan.names):
        missing, unknown = sorted(plan.required - keys), sorted(keys - plan.names)
        raise TypeError(f"{cls.__name__}: missing fields {missing}, unknown fields {unknown}")
    data = plan.template.copy()
    data.update(values)
    for name, factory in plan.factories:
        if name not in values:
            data[name] = factory()
    m = cls.__new__(cls)
    _setattr(m, "__dict__", data)
    _setattr(m, "__pydantic_fields_set__", set(keys))
    _setattr(m, "__pydantic_extra__", None)
    _setattr(m, "__pydantic_private__", None)
    return m
