"""`perpsignal record`: tap topics into a JSON-lines event file (for `perpsignal replay`).

A plain aiokafka consumer without a group (it never disturbs the services' offsets) reads
every partition of the chosen topics, from now on or `--from-beginning`, and writes one line
per record: `{"topic": <logical topic>, "key": ..., "event": <event JSON>}`. It stops on
Ctrl-C/SIGTERM, after `--max` records, after `--duration` seconds, or once no record arrived
for `--idle` seconds; every record already received is written.

The file is written beside `--out` under a hidden temporary name and renamed over it when
recording ends, so an interrupted run never leaves a truncated file at `--out`; an existing
non-empty `--out` is refused unless `--force` (a user lost a recording to a repeated command).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import BinaryIO

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from perpsignal_cli.argtypes import positive_count, positive_number
from perpsignal_cli.backtesting.eventfile import raw_line
from perpsignal_cli.brokers import SETTING, client_error, kafka_unreachable, quiet_kafka_connect
from perpsignal_cli.stack import no_stack_hint, use_running_stack
from perpsignal_common.errors import DependencyUnavailable
from perpsignal_common.events.topics import Topic
from perpsignal_common.settings import KafkaSettings

DEFAULT_TOPICS = (Topic.MARKET, Topic.MARKET_GLOBAL, Topic.LIQUIDATIONS)
TOPICS = frozenset(t.value for t in Topic)
SHOWN_ODD = 5  # records that are not JSON events named in the warning; the rest counted
log = logging.getLogger(__name__)


class BrokerLost(Exception):
    """Kafka failed while recording, after `received` records (those are in `--out`).

    With none received `--out` was not written: a file already there holds what it held.
    """

    def __init__(self, error: KafkaError, received: int) -> None:
        super().__init__(str(error))
        self.error = error
        self.received = received


def build_parser() -> argparse.ArgumentParser:
    """Return the `perpsignal record` argument parser."""
    p = argparse.ArgumentParser(prog="perpsignal record", description=__doc__)
    p.add_argument(
        "--out", type=Path, required=True, help="JSON-lines file to write (a new or empty one)"
    )
    p.add_argument(
        "--force", action="store_true", help="replace --out even when it already holds data"
    )
    p.add_argument(
        "--topic", action="append", help="logical topic(s) to tap (default: the market topics)"
    )
    p.add_argument("--from-beginning", action="store_true", help="read retained history too")
    p.add_argument("--max", type=positive_count, default=None, help="stop after this many records")
    p.add_argument(
        "--duration", type=positive_number, default=None, help="stop after this many seconds"
    )
    p.add_argument(
        "--idle",
        type=positive_number,
        default=None,
        help="stop once no record arrived for this many seconds",
    )
    return p


async def record(
    kafka: KafkaSettings,
    topics: list[str],
    out: Path,
    *,
    from_beginning: bool = False,
    max_records: int | None = None,
    duration_s: float | None = None,
    idle_s: float | None = None,
    stop: asyncio.Event | None = None,
) -> int:
    """Write the topics' records to `out` until a stop condition; return how many."""
    stop = stop or asyncio.Event()
    physical = {kafka.topic(t): t for t in topics}
    consumer = AIOKafkaConsumer(
        **kafka.client_kwargs(),
        enable_auto_commit=False,
        fetch_max_wait_ms=kafka.kafka_fetch_max_wait_ms,
    )
    try:
        with quiet_kafka_connect():
            await consumer.start()
    except Exception as exc:
        await consumer.stop()  # a consumer that failed to start still holds its client
        # a malformed address ("host:abc") fails as a ValueError: the setting is named either way
        raise DependencyUnavailable(kafka_unreachable(kafka, exc)) from exc
    n = odd = 0
    shown: list[str] = []  # where the first records that are not JSON events were
    try:
        parts: list[TopicPartition] = []
        deadline = time.monotonic() + 10
        while True:  # topics may be created a moment after we start: wait a little
            missing = [t for t in physical if not consumer.partitions_for_topic(t)]
            if not missing or time.monotonic() > deadline or stop.is_set():
                break
            await consumer._client.force_metadata_update()
            await asyncio.sleep(0.1)
        for t in physical:
            parts += [TopicPartition(t, p) for p in consumer.partitions_for_topic(t) or ()]
        if not parts:
            raise ValueError(f"none of the topics exist: {sorted(physical)}")
        consumer.assign(parts)
        if from_beginning:
            await consumer.seek_to_beginning(*parts)
        else:
            await consumer.seek_to_end(*parts)
        started = last = time.monotonic()
        with _Staged(out) as fh:
            while not stop.is_set():
                batches = await consumer.getmany(timeout_ms=100, max_records=1000)
                now = time.monotonic()
                for tp, recs in batches.items():
                    for r in recs:
                        fh.write(raw_line(physical[tp.topic], r.key, r.value or b"null"))
                        if not _is_event_json(r.value):
                            odd += 1
                            if len(shown) < SHOWN_ODD:
                                shown.append(f"{tp.topic}[{tp.partition}]@{r.offset}")
                        n += 1
                        last = now
                        if max_records is not None and n >= max_records:
                            return n
                fh.flush()
                if duration_s is not None and now - started >= duration_s:
                    break
                if idle_s is not None and now - last >= idle_s:
                    break
    except KafkaError as exc:
        raise BrokerLost(exc, n) from exc
    finally:
        await consumer.stop()
        if odd:
            # kept as text (bytes that are not UTF-8 replaced): said, not left for replay to find
            log.warning(
                "%d record(s) are not JSON events, written as text that replay refuses: %s%s",
                odd,
                ", ".join(shown),
                f" (and {odd - len(shown)} more)" if odd > len(shown) else "",
            )
    return n


class _Staged:
    """A file written under a hidden name beside `out` and renamed over `out` on close.

    Opened with `out.open("wb")`, `out` was emptied at the start: a run killed (or a disk
    that filled up) left a truncated recording in place of the previous one. A clean end,
    a stop, or a failure other than a write's (the broker lost, a bug: every line written is
    whole) publishes what was received; a failed write, or a failure before any record,
    removes the partial file and leaves `out` as it was. A
    process killed outright leaves `.<name>.<pid>.partial` beside it, never a cut `out`.
    """

    def __init__(self, out: Path) -> None:
        self.out = out
        self.partial = out.with_name(f".{out.name}.{os.getpid()}.partial")

    def __enter__(self) -> BinaryIO:
        # O_EXCL: never write through a file (or link) already there; 0o666 & umask, like
        # the `open` this replaces, not mkstemp's 0o600
        fd = os.open(self.partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        self._fh = os.fdopen(fd, "wb")
        return self._fh

    def __exit__(self, kind: type[BaseException] | None, exc: object, tb: object) -> None:
        try:
            wrote = self._fh.tell() > 0
            self._fh.close()  # flushes: whole lines only, each written in one call
            # a failed write may have cut a line: `out` stays as it was. Any other failure
            # (the broker lost, a bug) publishes the whole lines received, if any
            if kind is None or issubclass(kind, asyncio.CancelledError):
                keep = True  # ended: a stop condition, Ctrl-C, --max
            else:
                keep = wrote and not issubclass(kind, OSError)
            if keep:
                os.replace(self.partial, self.out)
        finally:
            self.partial.unlink(missing_ok=True)


def _is_event_json(value: bytes | None) -> bool:
    """Whether `value` is a JSON object (an event's shape), which the file keeps as is."""
    if not value:
        return False
    try:
        return isinstance(orjson.loads(value), dict)
    except orjson.JSONDecodeError:
        return False


def check_topics(topics: list[str]) -> str | None:
    """Return why `topics` cannot be recorded (a name that is no platform topic), or None.

    Checked before connecting: a misspelt name used to be waited for (10 s) and then left
    out silently when another name existed, so the file lacked a topic nobody was told of.
    """
    unknown = sorted(set(topics) - TOPICS)
    if not unknown:
        return None
    return f"unknown topic(s) {unknown}; the platform's topics: {sorted(TOPICS)}"


def check_out(out: Path, *, force: bool = False) -> str | None:
    """Return why `out` cannot be written (checked before connecting), or None.

    A file that already holds data is refused without `force`: the same command run twice
    replaced the first recording without a word. An empty one (`touch`, `mktemp`) is taken.
    """
    if out.is_dir():
        return f"--out {out} is a directory; give a file name"
    if not force and out.exists() and out.stat().st_size > 0:
        return f"--out {out} already exists; give another name, or --force to replace it"
    parent = out.parent
    if not parent.is_dir():
        return f"--out {out}: the folder {parent} does not exist"
    if not os.access(parent, os.W_OK) or (out.exists() and not os.access(out, os.W_OK)):
        return f"--out {out}: permission denied"
    return None


def main(argv: list[str]) -> int:
    """Record until a stop condition; Ctrl-C keeps everything received so far."""
    args = build_parser().parse_args(argv)
    topics = args.topic or [str(t) for t in DEFAULT_TOPICS]
    problem = check_topics(topics) or check_out(args.out, force=args.force)
    if problem:
        print(f"perpsignal record: {problem}", file=sys.stderr)
        return 2
    use_running_stack()  # the running `perpsignal up`'s broker, unless a setting says otherwise

    kafka = KafkaSettings()

    async def run() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        n = await record(
            kafka,
            topics,
            args.out,
            from_beginning=args.from_beginning,
            max_records=args.max,
            duration_s=args.duration,
            idle_s=args.idle,
            stop=stop,
        )
        print(f"recorded {n} records to {args.out}", file=sys.stderr)
        return 0

    existed = args.out.exists()
    try:
        return asyncio.run(run())
    except ValueError as exc:
        print(f"perpsignal record: {exc}", file=sys.stderr)
        return 1
    except DependencyUnavailable as exc:
        hint = no_stack_hint(SETTING)
        print(f"perpsignal record: {exc}{hint}", file=sys.stderr)
        return 1
    except BrokerLost as exc:  # the broker went away mid-recording: what was received is kept
        if exc.received:
            kept = f"the {exc.received} record(s) received so far are in {args.out}"
        elif existed:
            kept = f"no record was received: {args.out} was left as it was"
        else:
            kept = f"no record was received: {args.out} was not created"
        print(
            f"perpsignal record: kafka at {kafka.kafka_bootstrap_servers} ({SETTING}) failed: "
            f"{client_error(exc.error)}; {kept}",
            file=sys.stderr,
        )
        return 1
    except OSError as exc:  # e.g. the disk filled up
        print(
            f"perpsignal record: cannot write {args.out}: {exc.strerror or exc}; "
            f"{args.out} was left as it was",
            file=sys.stderr,
        )
        return 1


__all__ = ["BrokerLost", "check_out", "check_topics", "main", "record"]
