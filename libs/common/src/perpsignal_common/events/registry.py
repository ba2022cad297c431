"""One codec for every topic: a discriminated union on `type`, JSON on the wire."""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

import orjson
from pydantic import ConfigDict, Field, TypeAdapter, ValidationError

from perpsignal_common.errors import PoisonMessage
from perpsignal_common.events.base import Event
from perpsignal_common.events.market import (
    CandleClosedV1,
    CoinProfileV1,
    FearGreedV1,
    FundingRateV1,
    LiquidationBucketV1,
    LiquidationOrderV1,
    ListingDetectedV1,
    LongShortRatioV1,
    OpenInterestV1,
    SocialMetricsV1,
    TakerFlowV1,
    TickerV1,
    TrackCommandV1,
    WhaleTradeV1,
)
from perpsignal_common.events.signals import (
    JudgeReplyV1,
    JudgeRequestV1,
    MssScoredV1,
    OutcomeEvaluatedV1,
    SignalJudgedV1,
    SignalScoredV1,
)
from perpsignal_common.events.snapshot import GatewaySnapshotV1
from perpsignal_common.events.status import SourceStatusV1

E = TypeVar("E", bound=Event)

EVENT_CLASSES: tuple[type[Event], ...] = (
    CandleClosedV1,
    FundingRateV1,
    OpenInterestV1,
    LongShortRatioV1,
    TakerFlowV1,
    LiquidationBucketV1,
    SocialMetricsV1,
    WhaleTradeV1,
    CoinProfileV1,
    TickerV1,
    FearGreedV1,
    LiquidationOrderV1,
    ListingDetectedV1,
    TrackCommandV1,
    SignalScoredV1,
    SignalJudgedV1,
    MssScoredV1,
    OutcomeEvaluatedV1,
    JudgeRequestV1,
    JudgeReplyV1,
    SourceStatusV1,
    GatewaySnapshotV1,
)

AnyEvent = Annotated[
    CandleClosedV1
    | FundingRateV1
    | OpenInterestV1
    | LongShortRatioV1
    | TakerFlowV1
    | LiquidationBucketV1
    | SocialMetricsV1
    | WhaleTradeV1
    | CoinProfileV1
    | TickerV1
    | FearGreedV1
    | LiquidationOrderV1
    | ListingDetectedV1
    | TrackCommandV1
    | SignalScoredV1
    | SignalJudgedV1
    | MssScoredV1
    | OutcomeEvaluatedV1
    | JudgeRequestV1
    | JudgeReplyV1
    | SourceStatusV1
    | GatewaySnapshotV1,
    Field(discriminator="type"),
]
# built on first use, as the models are (`defer_build`, events/base.py): a command that
# never validates an event (a backtest, `perpsignal --help`) skips ~0.15 s of schema
# building; a service builds them all at start-up (`warm`), not on its first message
ANY_EVENT: TypeAdapter[AnyEvent] = TypeAdapter(AnyEvent, config=ConfigDict(defer_build=True))

EVENTS_BY_TYPE: dict[str, type[Event]] = {
    cls.model_fields["type"].default: cls for cls in EVENT_CLASSES
}


def events_for_topic(topic: str) -> list[type[Event]]:
    """Return the event classes published on `topic`."""
    return [cls for cls in EVENT_CLASSES if cls.topic == topic]


def encode(event: Event) -> bytes:
    """Serialize an event to JSON bytes (the only wire format)."""
    return event.__pydantic_serializer__.to_json(event)


# Concrete classes by the `"type":"..."` marker as `encode` writes it (compact JSON); their
# validators are read at each decode (a deferred model's validator is a stand-in until its
# first use builds the real one)
_CLASSES_BY_MARKER: dict[bytes, type[Event]] = {
    b'"type":"' + t.encode() + b'"': cls for t, cls in EVENTS_BY_TYPE.items()
}
_MARKER = b'"type":"'

# The wire holds what the published JSON Schemas describe: a number where they say number, a
# date-time string where they say date-time. Pydantic's lax mode would also read `true` as a
# price of 1.0, "42000.5" as a number and an integer as epoch seconds or milliseconds (guessed
# from its size): another client's malformed record would become market data instead of a
# dead letter. Every decode of a record validates in strict mode (in-process construction,
# e.g. a connector building an event from a vendor's strings, stays lax).
STRICT = True


def warm() -> None:
    """Build every event model's validator and serializer and the union's now.

    Services call it at start-up, so the first message pays no schema building (~0.2 s).
    """
    for cls in EVENT_CLASSES:
        cls.model_rebuild()
    ANY_EVENT.rebuild()


def decode(raw: bytes | None) -> Event:
    """Parse JSON bytes into the typed event; raise PoisonMessage when that is impossible.

    Fast path: the `"type":"..."` marker that `encode` writes picks the concrete class's
    validator, skipping the union dispatch. A concrete class pins `type` with a Literal, so
    its validation succeeds only when the top-level type is that class's: exactly the
    union's choice. Anything else (no or unknown marker, invalid input) takes the union path,
    so results and error messages are the union's.
    """
    if raw is None:
        raise PoisonMessage("empty message value")
    start = raw.find(_MARKER) if type(raw) is bytes else -1
    if start >= 0:
        end = raw.find(b'"', start + 8)
        cls = _CLASSES_BY_MARKER.get(raw[start : end + 1])
        if cls is not None:
            try:
                event: Event = cls.__pydantic_validator__.validate_json(raw, strict=STRICT)
                return event
            except ValidationError:
                pass
    try:
        event = ANY_EVENT.validate_json(raw, strict=STRICT)
    except ValidationError as exc:
        raise PoisonMessage(_summarize(exc)) from exc
    return event


def decode_as(raw: bytes, cls: type[E]) -> E:
    """Parse JSON bytes as one known event class."""
    try:
        return cls.model_validate_json(raw, strict=STRICT)
    except ValidationError as exc:
        raise PoisonMessage(_summarize(exc)) from exc


def to_jsonable(event: Event) -> dict[str, Any]:
    """Return the event as plain JSON data (for files and APIs)."""
    data: dict[str, Any] = orjson.loads(encode(event))
    return data


def _summarize(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err["loc"]) or "<root>"
        parts.append(f"{loc}: {err['msg']}")
    more = "" if exc.error_count() <= 5 else f" (+{exc.error_count() - 5} more)"
    return "invalid event: " + "; ".join(parts) + more
