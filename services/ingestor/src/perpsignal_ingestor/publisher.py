"""Publish events once, and only valid ones.

* A bounded cache of recently published ids skips re-polled facts. Event ids are
  deterministic, so consumers would dedupe anyway; skipping here saves the broker and every
  consumer the work of a re-poll (klines with limit 2 return the previous candle again every
  minute). An id repeated within one batch (a vendor sending one candle twice, with other
  values) is sent once, its first copy: one id is one fact for every consumer.
* Nothing a consumer would dead-letter is published: each event is checked against the
  contract's value rules (events/values.py) as a consumer will decode it. A vendor value that
  breaks them (NaN, a zero price, a time in the future...) is refused: logged on one line,
  counted in `perpsignal_ingestor_rejected_events_total{source,reason}`, and simply absent
  downstream (`REFUSALS`: one warning per source and reason a minute, with a count).
  `build_each` gives the same per-item refusal to parsers, which build events
  and so raise on such values: one bad row costs only itself, not its whole response.
  A value Python cannot even represent (a vendor time beyond year 9999: `fromtimestamp`
  raises ValueError, OverflowError or OSError before the contract sees it) is refused the
  same way (`UNREPRESENTABLE`, reason `value:out_of_range`).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import TypeVar

from pydantic import ValidationError

from perpsignal_common.events.base import Event
from perpsignal_common.events.registry import STRICT, encode
from perpsignal_common.kafka.producer import EventProducer
from perpsignal_connectors.loglimit import LogLimit
from perpsignal_ingestor.metrics import EVENTS_PUBLISHED, EVENTS_SKIPPED, REJECTED_EVENTS

log = logging.getLogger(__name__)

T = TypeVar("T")
E = TypeVar("E", bound=Event)

# what converting a hostile vendor value raises before any contract check (ValidationError,
# a contract refusal, is a ValueError too and is handled first)
UNREPRESENTABLE = (ValueError, OverflowError, OSError)


def refusal_reason(exc: ValidationError) -> str:
    """Return a bounded label for why a value was refused: `<field>:<error type>`."""
    errors = exc.errors(include_url=False, include_context=False, include_input=False)
    if not errors:
        return "invalid"
    first = errors[0]
    field = str(first["loc"][0]) if first["loc"] else "event"
    return f"{field}:{first['type']}"


# When a refusal is a warning line: the first of its (source, reason), then one a minute with
# how many more were refused quietly. One cause hitting every answer (our clock minutes behind
# Binance's: every event "in the future") was thousands of warning lines a minute.
REFUSALS = LogLimit()


def refuse(source: str, exc: ValidationError, what: str) -> None:
    """Count and log (one line, no traceback; `REFUSALS` says how loud) an event refused
    for breaking the contract."""
    reason = refusal_reason(exc)
    REJECTED_EVENTS.labels(source, reason).inc()
    level, quiet = REFUSALS.level((source, reason))
    errors = exc.errors(include_url=False, include_context=False)
    first: dict[str, object] = dict(errors[0]) if errors else {}
    log.log(
        level,
        "event refused: a value breaks the event contract; not published",
        extra={
            "source": source,
            "what": what[:120],
            "reason": reason,
            "error": str(first.get("msg", ""))[:200],
            "value": repr(first.get("input"))[:80],
            "refused_quietly_before": quiet,
        },
    )


def refuse_unrepresentable(source: str, exc: BaseException, what: str) -> None:
    """Count and log (one line) an event refused because a value cannot be represented."""
    reason = "value:out_of_range"
    REJECTED_EVENTS.labels(source, reason).inc()
    level, quiet = REFUSALS.level((source, reason))
    log.log(
        level,
        "event refused: a value is out of range or cannot be represented; not published",
        extra={
            "source": source,
            "what": what[:120],
            "reason": reason,
            "error": f"{type(exc).__name__}: {exc}"[:200],
            "refused_quietly_before": quiet,
        },
    )


def build_each(source: str, build: Callable[[T], Iterable[E]], items: Iterable[T]) -> list[E]:
    """Build events item by item; an item whose event breaks the contract is refused alone."""
    out: list[E] = []
    for item in items:
        try:
            out.extend(build(item))
        except ValidationError as exc:
            refuse(source, exc, exc.title)
        except UNREPRESENTABLE as exc:
            refuse_unrepresentable(source, exc, type(item).__name__)
    return out


def _valid(event: Event) -> ValidationError | None:
    """Check `event` as a consumer will decode it (built events can be stale or copied)."""
    try:
        type(event).__pydantic_validator__.validate_json(encode(event), strict=STRICT)
    except ValidationError as exc:
        return exc
    return None


class Publisher:
    """Send valid events keyed by symbol, skipping ids published recently; wait for acks."""

    def __init__(self, producer: EventProducer, cache_size: int = 200_000) -> None:
        self._producer = producer
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._cache_size = cache_size
        self.published = 0
        self.refused = 0

    def seen(self, event_id: str) -> bool:
        """Return True when `event_id` was published recently."""
        return event_id in self._seen

    async def publish(self, source: str, events: Iterable[Event]) -> int:
        """Publish the valid events not seen before and wait until Kafka acknowledged them."""
        fresh: list[Event] = []
        batch: set[str] = set()
        for event in events:
            # a repeat within the batch too (a vendor sending one candle twice, with other
            # values): one id is one fact, the first copy, as a consumer keeps it
            if event.event_id in self._seen or event.event_id in batch:
                EVENTS_SKIPPED.labels(source).inc()
                continue
            error = _valid(event)
            if error is not None:
                self.refused += 1
                refuse(source, error, f"{event.type} {event.symbol}")
                continue
            fresh.append(event)
            batch.add(event.event_id)
        # these events' own deliveries: sources publish concurrently through one producer
        await self._producer.publish_many(fresh)
        # Remember only acknowledged ids: a failed send must be retried next poll
        for event in fresh:
            self._seen[event.event_id] = None
            EVENTS_PUBLISHED.labels(source, event.type).inc()
        while len(self._seen) > self._cache_size:
            self._seen.popitem(last=False)
        self.published += len(fresh)
        return len(fresh)
