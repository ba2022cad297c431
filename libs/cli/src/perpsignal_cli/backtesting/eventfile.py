"""Event files: JSON lines of `{"topic": ..., "key": ..., "event": <event JSON>}`.

`topic` is the logical topic name (no test prefix), `key` the Kafka key as text (null for
none), `event` the event exactly as on the wire, so `replay` re-publishes the same bytes
and keys with their original `observed_at`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import orjson

from perpsignal_common.events.base import Event
from perpsignal_common.events.registry import decode, encode


@dataclass(frozen=True)
class EventLine:
    """One line of an event file."""

    topic: str
    key: str | None
    value: bytes  # the event's JSON, as on the wire
    number: int = 0  # the line's number in its file (1-based; 0: not read from a file)

    def event(self) -> Event:
        """Return the typed event (raises PoisonMessage on an unknown/invalid event)."""
        return decode(self.value)


def line_of(event: Event, topic: str | None = None) -> bytes:
    """Return the JSON line (with newline) of an event."""
    return (
        b'{"topic":'
        + orjson.dumps(topic or event.topic)
        + b',"key":'
        + orjson.dumps(event.partition_key().decode())
        + b',"event":'
        + encode(event)
        + b"}\n"
    )


def raw_line(topic: str, key: bytes | None, value: bytes) -> bytes:
    """Return the JSON line of a raw record (values that are not JSON are stored as text)."""
    try:
        parsed = orjson.loads(value)
    except orjson.JSONDecodeError:
        parsed = value.decode(errors="replace")
    return (
        orjson.dumps(
            {
                "topic": topic,
                "key": None if key is None else key.decode(errors="replace"),
                "event": parsed,
            }
        )
        + b"\n"
    )


def write_events(path: Path, events: Iterable[Event]) -> int:
    """Write events to a JSON-lines file; return how many."""
    n = 0
    with path.open("wb") as fh:
        for ev in events:
            fh.write(line_of(ev))
            n += 1
    return n


def parse_line(raw: bytes, number: int = 0) -> EventLine:
    """Return the event line of `raw`; ValueError names what is wrong with it."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"line {number}: not JSON ({exc.msg} at character {exc.pos})") from exc
    if not isinstance(obj, dict) or "event" not in obj or not isinstance(obj.get("topic"), str):
        raise ValueError(f'line {number}: not an event line (needs "topic" text and "event")')
    key = obj.get("key")
    if key is not None and not isinstance(key, str):
        raise ValueError(f'line {number}: "key" must be text or null')
    return EventLine(obj["topic"], key, orjson.dumps(obj["event"]), number)


def iter_lines(fh: IO[bytes]) -> Iterator[EventLine]:
    """Yield the lines of an open event file (blank lines skipped)."""
    for num, raw in enumerate(fh, 1):
        if raw.strip():
            yield parse_line(raw, num)


def iter_raw(fh: IO[bytes]) -> Iterator[tuple[int, bytes]]:
    """Yield (line number, bytes) of every non-blank line of an open event file."""
    for num, raw in enumerate(fh, 1):
        if raw.strip():
            yield num, raw


def read_lines(path: Path) -> list[EventLine]:
    """Return every line of an event file."""
    with path.open("rb") as fh:
        return list(iter_lines(fh))
