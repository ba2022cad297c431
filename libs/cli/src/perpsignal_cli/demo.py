"""`perpsignal demo` (`make demo`): the whole stack, fed bundled real market data, offline.

What it does, in order:

1. Unpacks the bundled recorded data (`data/recorded/recorded-data.tar.xz`, sources and
   licences in `data/recorded/README.md`) into `<data dir>/recorded/` (once per archive).
2. Builds the market events with the backtest importers: Binance USD-M XRPUSDT perpetual
   5m candles (aggregated to the scorer's 15m), its 8h funding rates and the alternative.me
   Fear & Greed index, November 2021. Other files of the archive are left out: the FTX BTC
   month is another market era (one replay era at a time keeps every clock consistent) and
   the spot pairs are not perpetuals.
3. Runs the live scorer and judge code in this process once (0.2 s) to find the last
   LONG/SHORT signal of the data, and ends the replay there, so the dashboard is left
   showing a trade plan rather than a final NEUTRAL reading; the banner names the span.
4. Starts the whole stack like `perpsignal up` (same supervisor, in its own data folder
   `.data/demo`, embedded broker and PostgreSQL), with:
   - the ingestor running but every vendor source off (`INGESTOR_ENABLED_SOURCES=`): live
     2026 prices mixed into a 2021 replay would be nonsense, and offline every poll would
     fail; the replay takes the ingestor's place on the topics;
   - the judge on rules (no LLM call), outcomes on market time (`OUTCOMES_CLOCK=event`,
     no klines fallback), the notifier in preview mode (`NOTIFIER_PREVIEW`, any bot token
     blanked: nothing is sent, each alert's Telegram HTML is printed here and logged);
   - the gateway told what is replayed (`PERPSIGNAL_DEMO`): a banner on every dashboard page
     and a `demo` block in `/health/services`.
5. Once the gateway answers, replays the events through the broker at `--speed` (market
   seconds per wall-clock second; the default plays the week in about two minutes), then
   keeps the stack up until Ctrl-C, which stops the replay and every process.

The demo's PostgreSQL is wiped at each start (it only ever holds demo data: the folder is
marked as the demo's), so every run shows the same replay from the beginning.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import html
import json
import logging
import lzma
import os
import re
import shutil
import sys
import tarfile
import tempfile
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from perpsignal_cli.argtypes import port_number, positive_number

REPO_ROOT = Path(__file__).resolve().parents[4]
ARCHIVE = REPO_ROOT / "data" / "recorded" / "recorded-data.tar.xz"
DEFAULT_SPEED = 5000.0
SYMBOL = "XRPUSDT"
MARKER = "DEMO"  # marks a data folder as the demo's: its database may be wiped
PREVIEW_FILE = "alerts-preview.jsonl"
FILES = {
    "candles": "XRP_USDT_USDT-5m-futures.csv",
    "funding": "XRP_USDT_USDT-8h-funding_rate.csv",
    "fear_greed": "alternative_me-fear_greed-1d.csv",
}
DATA_NAME = (
    "Binance USD-M XRPUSDT perpetual 5m candles (scored on 15m) and 8h funding, "
    "with the alternative.me Fear & Greed index"
)


def _say(msg: str) -> None:
    print(f"[demo] {msg}", flush=True)


def unpack(archive: Path, into: Path) -> Path:
    """Unpack `archive` once per digest under `into`; return the folder holding `market/`."""
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()[:16]
    target = into / digest
    if (target / "data" / "market").is_dir():
        return target / "data"
    into.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{digest}-", dir=into))
    try:
        with tarfile.open(archive, "r:xz") as tar:
            tar.extractall(staging, filter="data")
        try:
            staging.rename(target)
        except OSError:  # unpacked meanwhile by someone else: theirs is identical
            if not (target / "data" / "market").is_dir():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target / "data"


@dataclass
class DemoPlan:
    """What the demo replays: the events (in observation order) and how to describe them."""

    events: list[Any]
    first: datetime
    last: datetime
    speed: float
    directional: int  # LONG/SHORT signals the live code finds in the replayed span

    def describe(self) -> dict[str, Any]:
        """The `PERPSIGNAL_DEMO` block the gateway shows (banner, /health/services)."""
        span_s = (self.last - self.first).total_seconds()
        minutes = span_s / self.speed / 60
        first, last = self.first.strftime("%Y-%m-%d %H:%M"), self.last.strftime("%Y-%m-%d %H:%M")
        return {
            "data": f"{DATA_NAME}; bundled recorded data (data/recorded/README.md)",
            "symbols": [SYMBOL],
            "speed": self.speed,
            "first": self.first.isoformat(),
            "last": self.last.isoformat(),
            "message": (
                f"a replay of recorded real market data, not live: {DATA_NAME}, "
                f"{first} to {last} UTC, at {self.speed:g}x real time "
                f"(about {minutes:.1f} min). Nothing is sent to Telegram."
            ),
        }


def build_plan(market: Path, speed: float) -> DemoPlan:
    """Import the bundled files and cut the replay after the data's last LONG/SHORT signal."""
    from perpsignal_cli.backtesting.pipeline import load_history, run_in_process
    from perpsignal_common.events.market import CandleClosedV1

    history = load_history(
        SYMBOL,
        market / FILES["candles"],
        funding=market / FILES["funding"],
        fear_greed=market / FILES["fear_greed"],
        venue="binance",
    )
    # the plan's own run is silent: the live services say the same things in their logs (the
    # rule judge logs from the domain package, e.g. "too few candles for ATR" on the first bar)
    quiet = logging.getLogger("perpsignal_domain")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        result = run_in_process(history, progress=False)
    finally:
        quiet.setLevel(level)
    directional = [r.judged for r in result.records if r.judged.direction != "NEUTRAL"]
    events = list(history.events)
    if directional:
        end = directional[-1].observed_at
        events = [e for e in events if e.observed_at <= end]
    candles = [e for e in events if isinstance(e, CandleClosedV1)]
    return DemoPlan(
        events=events,
        first=candles[0].open_time,
        last=candles[-1].observed_at,
        speed=speed,
        directional=len(directional),
    )


def demo_env(plan: DemoPlan, data_dir: Path) -> dict[str, str]:
    """The settings every service of the demo stack gets (see the module docstring)."""
    return {
        "INGESTOR_ENABLED_SOURCES": "",
        "ENABLE_AI_JUDGE": "false",
        "OUTCOMES_CLOCK": "event",
        "OUTCOMES_KLINES_FALLBACK": "false",
        "NOTIFIER_PREVIEW": "true",
        "NOTIFIER_PREVIEW_FILE": str(data_dir / PREVIEW_FILE),
        "TELEGRAM_BOT_TOKEN": "",
        "NOTIFIER_POLL_COMMANDS": "false",
        "EMBEDDED_POSTGRES_DURABLE": "false",
        "PERPSIGNAL_DEMO": json.dumps(plan.describe()),
    }


def prepare_data_dir(data_dir: Path) -> None:
    """Create the demo's folder, or wipe the database of a previous demo run in it."""
    from perpsignal_cli.stack import LOCK_FILE

    ours = (MARKER, LOCK_FILE)  # the lock is taken first (`main`)
    if (
        data_dir.exists()
        and not (data_dir / MARKER).exists()
        and any(p.name not in ours for p in data_dir.iterdir())
    ):
        raise SystemExit(
            f"perpsignal demo: {data_dir} is not a demo folder (no {MARKER} file); "
            "pass an empty or new --data-dir"
        )
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / MARKER).write_text("perpsignal demo data: wiped at every demo start\n")
    shutil.rmtree(data_dir / "postgres", ignore_errors=True)
    with contextlib.suppress(FileNotFoundError):
        (data_dir / PREVIEW_FILE).unlink()


class Replayer:
    """Publish the plan's events through the broker on a background thread, stoppably."""

    def __init__(self, plan: DemoPlan, events_file: Path) -> None:
        self.plan = plan
        self.events_file = events_file
        self.sent: int | None = None
        self.error: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None

    def start(self, bootstrap: str) -> None:
        self._thread = threading.Thread(
            target=self._run, args=(bootstrap,), name="demo-replay", daemon=True
        )
        self._thread.start()

    def _run(self, bootstrap: str) -> None:
        from perpsignal_cli.replay import replay
        from perpsignal_common.settings import KafkaSettings

        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            self.sent = await replay(
                self.events_file,
                KafkaSettings(kafka_bootstrap_servers=bootstrap),
                speed=self.plan.speed,
                progress=False,
                stop=self._stop,
            )

        try:
            asyncio.run(main())
        except Exception as exc:  # reported on the terminal; the stack stays up
            self.error = f"{type(exc).__name__}: {exc}"

    @property
    def done(self) -> bool:
        return self._thread is not None and not self._thread.is_alive()

    def stop(self, timeout_s: float = 10.0) -> None:
        if self._loop is not None and self._stop is not None:
            with contextlib.suppress(RuntimeError):  # loop already closed
                self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout_s)


_TAG = re.compile(r"<[^>]+>")


def telegram_text(markup: str) -> str:
    """Return Telegram HTML as the plain text a reader sees."""
    return html.unescape(_TAG.sub("", markup)).strip()


class PreviewTail:
    """Print the notifier's previewed alerts: the first in full, then one line each."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.count = 0

    def poll(self) -> None:
        try:
            with self.path.open("rb") as f:
                f.seek(self.offset)
                chunk = f.read()
        except FileNotFoundError:
            return
        end = chunk.rfind(b"\n") + 1
        self.offset += end
        for raw in chunk[:end].splitlines():
            with contextlib.suppress(ValueError):
                self._show(json.loads(raw))

    def _show(self, alert: dict[str, Any]) -> None:
        self.count += 1
        text = telegram_text(str(alert.get("html", "")))
        if self.count == 1:
            _say("Telegram alert preview (what the bot would send; no token needed):")
            for line in text.splitlines():
                print(f"    | {line}", flush=True)
            _say(f"  every alert's HTML: {self.path}")
        else:
            first = text.splitlines()[0] if text else "?"
            _say(f"alert preview #{self.count}: {first}")


def build_parser() -> argparse.ArgumentParser:
    """Return the `perpsignal demo` argument parser."""
    p = argparse.ArgumentParser(prog="perpsignal demo", description=__doc__.split("\n")[0])
    p.add_argument(
        "--speed",
        type=positive_number,
        default=os.environ.get("PERPSIGNAL_DEMO_SPEED", f"{DEFAULT_SPEED:g}"),
        help=f"market seconds per second (default {DEFAULT_SPEED:g}: the week in ~2 min)",
    )
    p.add_argument("--data-dir", type=Path, default=Path(".data/demo"))
    p.add_argument(
        "--port",
        type=port_number,
        default=os.environ.get("GATEWAY_PORT", "8000"),
        help="gateway port (a free one is chosen if it is taken)",
    )
    p.add_argument("--archive", type=Path, default=ARCHIVE, help="the bundled data archive")
    return p


def main(argv: list[str]) -> int:
    """Run the demo until Ctrl-C."""
    args = build_parser().parse_args(argv)
    if not args.archive.is_file():
        print(f"perpsignal demo: the bundled data is missing: {args.archive}", file=sys.stderr)
        return 2
    for name in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL"):
        if os.environ.get(name):
            _say(f"{name} is set: the demo uses its own embedded server instead")
            os.environ.pop(name)
    data_dir = args.data_dir.resolve()
    from perpsignal_cli.backtesting.eventfile import write_events
    from perpsignal_cli.stack import (
        SERVICES,
        AlreadyRunning,
        acquire_lock,
        data_dir_problem,
        run_stack,
    )

    events_file = data_dir / "demo-events.jsonl"
    try:
        # the folder's lock before anything is wiped: a second `make demo` deleted the running
        # one's PostgreSQL folder and rewrote the events file it was replaying, and only then
        # was refused as "already running"
        lock = acquire_lock(data_dir)
    except AlreadyRunning as exc:
        print(f"perpsignal demo: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"perpsignal demo: {data_dir_problem(data_dir, exc)}", file=sys.stderr)
        return 1
    try:
        prepare_data_dir(data_dir)
        _say(f"unpacking the bundled recorded data ({args.archive.name})...")
        market = unpack(args.archive, data_dir / "recorded") / "market"
        _say("building market events with the backtest importers...")
        plan = build_plan(market, args.speed)
        write_events(events_file, plan.events)
    except (tarfile.TarError, EOFError, lzma.LZMAError) as exc:  # truncated, not an archive
        lock.close()
        print(
            f"perpsignal demo: the bundled data archive {args.archive} is damaged ({exc}); "
            f"restore it (git checkout -- {ARCHIVE.relative_to(REPO_ROOT)}) or pass --archive",
            file=sys.stderr,
        )
        return 1
    except OSError as exc:  # a read-only place, a full disk
        lock.close()
        print(f"perpsignal demo: {data_dir_problem(data_dir, exc)}", file=sys.stderr)
        return 1
    except BaseException:  # not a demo folder (SystemExit), Ctrl-C
        lock.close()
        raise
    info = plan.describe()
    _say(f"replaying: {info['message']}")
    os.environ.update(demo_env(plan, data_dir))

    replayer = Replayer(plan, events_file)
    tail = PreviewTail(data_dir / PREVIEW_FILE)
    state = {"reported": False}

    def on_ready(stack: dict[str, Any]) -> None:
        _say(f"dashboard: {stack['gateway_url']}/  (API: {stack['gateway_url']}/docs)")
        _say(f"replay started: {len(plan.events)} events at {plan.speed:g}x")
        replayer.start(str(stack["kafka_bootstrap"]))

    def on_tick() -> None:
        tail.poll()
        if replayer.done and not state["reported"]:
            state["reported"] = True
            if replayer.error:
                _say(f"the replay failed: {replayer.error}")
            else:
                _say(
                    f"replay finished ({replayer.sent} events, {tail.count} alert previews); "
                    "the stack stays up with the final state: Ctrl-C to stop"
                )

    return run_stack(
        data_dir=data_dir,
        only=list(SERVICES),
        gateway_port=args.port,
        on_ready=on_ready,
        on_tick=on_tick,
        on_stop=replayer.stop,
        lock=lock,
    )


__all__ = ["build_plan", "demo_env", "main", "telegram_text", "unpack"]
