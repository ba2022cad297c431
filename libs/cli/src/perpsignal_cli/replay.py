"""`perpsignal replay FILE`: publish a JSON-lines event file back onto the topics.

Keys, payloads and `observed_at` are kept byte for byte, so the live services process the
file as if it were live (their state clocks are the events' `observed_at`). Pacing follows
the gaps between consecutive `observed_at` values divided by `--speed` (`1` = real time,
`60` or `x60` = sixty times faster, `max` = as fast as the broker takes them).

The whole file is checked before the first event is sent: every line must hold a valid event
of a platform topic, on that event's own topic and under its own key (what the services
publish). A file that fails is refused with the lines that fail, and nothing is published:
a half-replayed file, or a market event on the signals topic, would be worse than none.
The file is read twice (checked, then sent), one line at a time: any size fits in memory.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import math
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from perpsignal_cli.backtesting.eventfile import EventLine, iter_raw, parse_line
from perpsignal_cli.backtesting.pipeline import Progress
from perpsignal_cli.brokers import SETTING, kafka_unreachable, quiet_kafka_connect
from perpsignal_cli.stack import no_stack_hint, use_running_stack
from perpsignal_common.errors import DependencyUnavailable, PoisonMessage
from perpsignal_common.events.topics import Topic
from perpsignal_common.kafka.admin import ensure_topics
from perpsignal_common.kafka.producer import EventProducer, Headers, event_headers
from perpsignal_common.settings import KafkaSettings

TOPICS = frozenset(t.value for t in Topic)
SHOWN_ERRORS = 5  # lines named in a refusal; the rest are counted


def parse_speed(text: str) -> float:
    """Return the speed factor; 0 means as fast as possible."""
    t = text.strip().lower()
    if t in ("max", "asap", "fast", "0"):
        return 0.0
    if t in ("realtime", "real-time", "1x", "x1"):
        return 1.0
    t = t.removeprefix("x").removesuffix("x")
    value = float(t)
    if not (math.isfinite(value) and value > 0):  # nan passed `<= 0` and paced nothing
        raise ValueError("speed must be a finite number > 0 (or 'max')")
    return value


def build_parser() -> argparse.ArgumentParser:
    """Return the `perpsignal replay` argument parser."""
    p = argparse.ArgumentParser(prog="perpsignal replay", description=__doc__)
    p.add_argument("file", type=Path, help="JSON-lines event file (from record or backtest)")
    p.add_argument("--speed", default="max", help="1 = real time, N or xN = N times, max")
    p.add_argument("--topic", action="append", help="replay only these logical topics")
    p.add_argument("--no-progress", action="store_true")
    return p


@dataclass(frozen=True)
class Checked:
    """What the checking pass found: the file is good, and what its sending pass will send."""

    lines: int  # the non-blank lines checked (the sending pass reads no further)
    to_send: int  # of those, the lines on the chosen topics


def check(path: Path, topics: set[str] | None = None) -> Checked:
    """Check every line of the file (also those `topics` leaves out); ValueError names the
    lines that cannot be replayed. Nothing is kept: a file of any size is checked in the
    memory of one line (holding every line, as the old `load` did, took 17x the file's size:
    1.8 GB for 100 MB of events)."""
    unknown = sorted((topics or set()) - TOPICS)
    if unknown:
        raise ValueError(f"unknown topic(s) {unknown}; the platform's topics: {sorted(TOPICS)}")
    shown: list[str] = []
    errors = seen = to_send = 0
    try:
        with path.open("rb") as fh:
            for num, raw in iter_raw(fh):
                seen += 1
                try:
                    line = parse_line(raw, num)
                    _checked(line)
                except ValueError as exc:
                    errors += 1
                    if len(shown) < SHOWN_ERRORS:
                        shown.append(str(exc))
                    continue
                if topics is None or line.topic in topics:
                    to_send += 1
    except OSError as exc:  # unreadable (permissions, an I/O error): nothing was sent
        raise ValueError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    if not seen:
        raise ValueError(f"{path}: the file holds no events; nothing to replay")
    if errors:
        more = f" (and {errors - SHOWN_ERRORS} more)" if errors > SHOWN_ERRORS else ""
        raise ValueError(
            f"{path}: {errors} line(s) cannot be replayed, nothing was sent: "
            f"{'; '.join(shown)}{more}"
        )
    if not to_send:  # the old code connected and said "replayed 0 events", exit 0
        raise ValueError(
            f"{path}: none of its {seen} events is on {', '.join(sorted(topics or ()))}; "
            "nothing to replay"
        )
    return Checked(seen, to_send)


def ready_lines(
    path: Path, checked: Checked, topics: set[str] | None = None
) -> Iterator[tuple[EventLine, float, Headers]]:
    """Yield the lines to send, read again one at a time, each with its event's `observed_at`
    (epoch seconds) and headers: the first `checked.lines` lines, which `check` passed. A
    line that no longer passes (the file was rewritten meanwhile) stops the replay there."""
    try:
        fh = path.open("rb")
    except OSError as exc:  # removed or locked since it was checked
        raise ValueError(f"{path}: cannot be read again ({exc.strerror or exc})") from exc
    with fh:
        for num, raw in itertools.islice(iter_raw(fh), checked.lines):
            try:
                line = parse_line(raw, num)
                ready = _checked(line)
            except ValueError as exc:
                raise ValueError(f"{path} changed while it was replayed: {exc}") from exc
            if topics is None or line.topic in topics:
                yield ready


def _checked(line: EventLine) -> tuple[EventLine, float, Headers]:
    n = line.number
    if line.topic not in TOPICS:
        raise ValueError(f"line {n}: {line.topic[:80]!r} is not a platform topic")
    try:
        event = line.event()
    except PoisonMessage as exc:
        raise ValueError(f"line {n}: not a valid event ({str(exc)[:200]})") from exc
    if event.topic != line.topic:
        raise ValueError(
            f"line {n}: a {event.type} event belongs on {event.topic}, not {line.topic}"
        )
    key = event.partition_key().decode()
    if line.key != key:
        shown = None if line.key is None else line.key[:80]
        raise ValueError(f"line {n}: key {shown!r} is not the event's key {key!r}")
    return line, event.observed_at.timestamp(), event_headers(event)


async def replay(
    path: Path,
    kafka: KafkaSettings,
    *,
    speed: float = 0.0,
    topics: set[str] | None = None,
    progress: bool | None = None,
    stop: asyncio.Event | None = None,
    checked: Checked | None = None,
) -> int:
    """Publish the file's events in order, paced by `speed`; return how many were sent.

    `checked` is `check(path, topics)` when the caller ran it already (`main`, before its
    event loop, so Ctrl-C during a long check stops at once)."""
    checked = checked or check(path, topics)
    stop = stop or asyncio.Event()
    producer = EventProducer(kafka, service="replay")
    try:
        with quiet_kafka_connect():
            if kafka.kafka_create_topics:
                await ensure_topics(kafka)
            await producer.start()
    except Exception as exc:
        await producer.stop()
        # name the address and its setting (a malformed address is refused earlier, by
        # EventProducer's client-settings check, as a bad setting)
        raise DependencyUnavailable(kafka_unreachable(kafka, exc)) from exc
    bar = Progress(checked.to_send, f"replay {path.name}", progress)
    sent = 0
    started = time.monotonic()
    first_at: float | None = None
    try:
        for line, at, headers in ready_lines(path, checked, topics):
            if stop.is_set():
                break
            if speed > 0:
                first_at = at if first_at is None else first_at
                delay = started + (at - first_at) / speed - time.monotonic()
                if delay > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), delay)
                    if stop.is_set():
                        break
            await producer.send_raw(
                kafka.topic(line.topic),
                None if line.key is None else line.key.encode(),
                line.value,
                headers,
            )
            sent += 1
            bar.tick()
            if sent % 1000 == 0:
                await producer.wait_delivered()
        await producer.wait_delivered()
    except ValueError as exc:  # `ready_lines`: the file was rewritten since it was checked
        raise ValueError(f"{exc}; {sent} event(s) had been sent") from exc
    finally:
        bar.close()
        await producer.stop()
    return sent


def main(argv: list[str]) -> int:
    """Replay a file; Ctrl-C stops after the events already sent are acknowledged."""
    args = build_parser().parse_args(argv)
    use_running_stack()  # the running `perpsignal up`'s broker, unless a setting says otherwise
    if not args.file.is_file():
        what = "is a directory, not a file" if args.file.is_dir() else "no such file"
        print(f"perpsignal replay: {args.file}: {what}", file=sys.stderr)
        return 2
    try:
        speed = parse_speed(args.speed)
    except ValueError as exc:
        print(f"perpsignal replay: bad --speed: {exc}", file=sys.stderr)
        return 2

    topics = set(args.topic) if args.topic else None
    try:
        # before the event loop takes Ctrl-C over: its handler only sets a flag, which a check
        # of a large file (~5 s per 100 MB) looked at once it was over
        checked = check(args.file, topics)
    except ValueError as exc:
        print(f"perpsignal replay: {exc}", file=sys.stderr)
        return 1

    async def run() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        n = await replay(
            args.file,
            KafkaSettings(),
            speed=speed,
            topics=topics,
            progress=False if args.no_progress else None,
            stop=stop,
            checked=checked,
        )
        print(f"replayed {n} events" + (" (stopped early)" if stop.is_set() else ""))
        return 130 if stop.is_set() else 0

    try:
        return asyncio.run(run())
    except ValueError as exc:
        print(f"perpsignal replay: {exc}", file=sys.stderr)
        return 1
    except DependencyUnavailable as exc:
        hint = no_stack_hint(SETTING)
        print(f"perpsignal replay: {exc}{hint}", file=sys.stderr)
        return 1


__all__ = ["Checked", "check", "main", "parse_speed", "replay"]
