"""`perpsignal export`: the signal history as JSON lines (the backup the seed kept in files).

One line per stored signal (`"kind": "signal"`, with its factors, verdict layer, trade plan
and every horizon's outcome) and one per stored MSS result (`"kind": "mss"`), oldest first.
Reads `DATABASE_URL`; streams rows with a server-side cursor, so any history size fits.
`--out FILE` is written beside FILE and renamed over it only once the export is complete:
an unreachable database, a failure half-way, Ctrl-C or SIGTERM leaves yesterday's backup as
it was. `--symbol` is matched upper-case (as stored); `--since` must be before `--until`.
JSON has no NaN: a NaN or infinite stored number is written as null and named on stderr.
An export that matched nothing says so on stderr (exit 0: an empty history is not an error).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import signal
import stat
import sys
import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson
from sqlalchemy import exc as sa_exc
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from tqdm import tqdm

from perpsignal_cli.stack import use_running_stack
from perpsignal_common.db.engine import create_engine, create_sessionmaker, session_scope
from perpsignal_common.db.models.outcomes import OutcomeMss, OutcomeSignal, SignalOutcome
from perpsignal_common.errors import DependencyUnavailable
from perpsignal_common.settings import DatabaseSettings

SIGNAL_FIELDS = [c.key for c in OutcomeSignal.__table__.columns]
OUTCOME_FIELDS = [
    c.key for c in SignalOutcome.__table__.columns if c.key not in ("id", "signal_id")
]
MSS_FIELDS = [c.key for c in OutcomeMss.__table__.columns]
CHUNK = 1000


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="perpsignal export", description=__doc__)
    p.add_argument("--out", default="-", help="output file (default: stdout)")
    p.add_argument("--symbol", default=None, help="only this symbol (e.g. BTCUSDT)")
    p.add_argument(
        "--since",
        type=datetime.fromisoformat,
        default=None,
        help="signals observed at or after this ISO time (UTC if no offset)",
    )
    p.add_argument(
        "--until",
        type=datetime.fromisoformat,
        default=None,
        help="signals observed before this ISO time",
    )
    p.add_argument("--no-mss", action="store_true", help="leave out MSS results")
    return p


def _aware(t: datetime | None) -> datetime | None:
    return None if t is None or t.tzinfo else t.replace(tzinfo=UTC)


async def _signals(
    session: AsyncSession, args: argparse.Namespace
) -> AsyncIterator[dict[str, Any]]:
    stmt = select(OutcomeSignal).order_by(OutcomeSignal.observed_at, OutcomeSignal.signal_id)
    if args.symbol:
        stmt = stmt.where(OutcomeSignal.symbol == args.symbol)
    if args.since:
        stmt = stmt.where(OutcomeSignal.observed_at >= args.since)
    if args.until:
        stmt = stmt.where(OutcomeSignal.observed_at < args.until)
    result = await session.stream_scalars(stmt.execution_options(yield_per=CHUNK))
    async for chunk in result.partitions(CHUNK):
        ids = [s.signal_id for s in chunk]
        outcomes: dict[str, list[dict[str, Any]]] = {i: [] for i in ids}
        rows = await session.execute(
            select(SignalOutcome)
            .where(SignalOutcome.signal_id.in_(ids))
            .order_by(SignalOutcome.horizon_s)
        )
        for o in rows.scalars():
            outcomes[o.signal_id].append({f: getattr(o, f) for f in OUTCOME_FIELDS})
        for s in chunk:
            line = {"kind": "signal", **{f: getattr(s, f) for f in SIGNAL_FIELDS}}
            line["outcomes"] = outcomes[s.signal_id]
            yield line


async def _mss(session: AsyncSession, args: argparse.Namespace) -> AsyncIterator[dict[str, Any]]:
    stmt = select(OutcomeMss).order_by(OutcomeMss.observed_at, OutcomeMss.event_id)
    if args.since:
        stmt = stmt.where(OutcomeMss.observed_at >= args.since)
    if args.until:
        stmt = stmt.where(OutcomeMss.observed_at < args.until)
    result = await session.stream_scalars(stmt.execution_options(yield_per=CHUNK))
    async for m in result:
        yield {"kind": "mss", **{f: getattr(m, f) for f in MSS_FIELDS}}


SHOWN_NONFINITE = 5  # values named in the warning; the rest are counted


def nonfinite(line: dict[str, Any]) -> list[str]:
    """Return where `line` holds a NaN or infinite number (`price`, `outcomes[1h].pnl_pct`).

    JSON has no NaN: orjson writes one as null, which in this file means "not measured".
    PostgreSQL's double precision stores NaN and infinity, so a row written by a buggy or
    hand-run writer would be exported as "unknown" without a word; the caller warns instead.
    """
    where = [k for k, v in line.items() if isinstance(v, float) and not math.isfinite(v)]
    for o in line.get("outcomes") or ():
        where += [
            f"outcomes[{o.get('horizon')}].{k}"
            for k, v in o.items()
            if isinstance(v, float) and not math.isfinite(v)
        ]
    return where


async def export(args: argparse.Namespace, out: IO[bytes], progress: IO[str] | None) -> int:
    """Write every selected line to `out`; return how many were written.

    A NaN or infinite stored value is written as null (JSON has none) and named on stderr.
    """
    engine = create_engine(DatabaseSettings(), pool_size=1)
    n = 0
    bad: list[str] = []
    try:
        async with session_scope(create_sessionmaker(engine)) as session:
            await session.connection()  # reach the database before drawing any progress
            sources = [_signals(session, args)]
            if not args.no_mss and not args.symbol:
                sources.append(_mss(session, args))
            # tqdm draws on a terminal and rate-limits its redraws; off when stdout is the data
            with tqdm(
                file=progress, disable=progress is None, unit=" lines", desc="exported"
            ) as bar:
                for source in sources:
                    async for line in source:
                        where = nonfinite(line)
                        if where:
                            row = line.get("signal_id") or line.get("event_id")
                            bad += [f"{line['kind']} {row} {w}" for w in where]
                        out.write(orjson.dumps(line, option=orjson.OPT_UTC_Z) + b"\n")
                        n += 1
                        bar.update()
    finally:
        await engine.dispose()
    if bad:
        more = f" (and {len(bad) - SHOWN_NONFINITE} more)" if len(bad) > SHOWN_NONFINITE else ""
        print(
            f"perpsignal export: warning: {len(bad)} stored value(s) are NaN or infinite and "
            f"were written as null (JSON has no NaN): {'; '.join(bad[:SHOWN_NONFINITE])}{more}",
            file=sys.stderr,
        )
    return n


def main(argv: list[str]) -> int:
    """Run `perpsignal export`; return the exit code (1: nothing exported, FILE untouched)."""
    args = _parser().parse_args(argv)
    args.since, args.until = _aware(args.since), _aware(args.until)
    if args.since and args.until and args.since >= args.until:
        # the old code ran the query and exported 0 lines, exit 0, as for an empty history
        print(
            f"perpsignal export: --since {args.since.isoformat()} is not before "
            f"--until {args.until.isoformat()}",
            file=sys.stderr,
        )
        return 2
    if args.symbol:
        args.symbol = args.symbol.strip().upper()  # stored as the services publish: BTCUSDT
    use_running_stack()  # the running `perpsignal up`'s database, unless DATABASE_URL is set
    # SIGTERM (a job scheduler's timeout, `kill`) unwinds as Ctrl-C does: the partial file is
    # removed and FILE keeps yesterday's backup (by default it ended the process on the spot,
    # leaving `.FILE.partial-PID` behind); only the main thread may set a handler
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminated) if in_main else None
    try:
        return _run(args)
    finally:
        if in_main and previous is not None:  # None: a handler not set from Python
            signal.signal(signal.SIGTERM, previous)


def _run(args: argparse.Namespace) -> int:
    try:
        if args.out == "-":
            n = asyncio.run(export(args, sys.stdout.buffer, None))
            sys.stdout.flush()
        else:
            path = Path(args.out)
            n = _export_to(path, args)
            print(f"exported {n} lines to {path}", file=sys.stderr)
        if not n:  # a misspelt --symbol or a range outside the history looked like success
            print(f"perpsignal export: nothing matched{_selection(args)}", file=sys.stderr)
    except DependencyUnavailable as exc:
        from perpsignal_cli.stack import no_stack_hint

        hint = no_stack_hint("DATABASE_URL")
        print(f"perpsignal export: {exc} (DATABASE_URL){hint}", file=sys.stderr)
        return 1
    except sa_exc.ProgrammingError as exc:
        if getattr(exc.orig, "sqlstate", None) != "42P01":  # undefined table
            raise
        print(
            "perpsignal export: the database has no signal history tables; "
            "run `perpsignal migrate` (DATABASE_URL)",
            file=sys.stderr,
        )
        return 1
    except OSError as exc:
        print(f"perpsignal export: cannot write {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        replaced = args.out != "-" and (Path(args.out).is_file() or not Path(args.out).exists())
        kept = f"; {args.out} was left as it was" if replaced else ""
        print(f"perpsignal export: stopped before the end{kept}", file=sys.stderr)
        return 130
    return 0


def _selection(args: argparse.Namespace) -> str:
    """Return the filters of this export, as said when nothing matched them."""
    parts = [
        f"{flag} {value.isoformat() if isinstance(value, datetime) else value}"
        for flag, value in (
            ("--symbol", args.symbol),
            ("--since", args.since),
            ("--until", args.until),
        )
        if value
    ]
    return f" {' '.join(parts)}" if parts else ": the history is empty"


def _terminated(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def _export_to(path: Path, args: argparse.Namespace) -> int:
    """Export into `path`; a regular file is replaced only once the export is complete.

    A regular (or new) file is written beside its target and renamed over it, so a failed
    export leaves last night's backup as it was; the target keeps its permissions (a 0600
    backup stays private). Anything else (a device such as /dev/null, a FIFO, a terminal)
    is written in place: renaming over it would replace the system's /dev/null with a file.
    """
    if path.exists() and not path.is_file():
        with path.open("wb") as f:
            return asyncio.run(export(args, f, sys.stderr))
    target = path.resolve() if path.is_symlink() else path  # keep the link, replace its file
    mode = stat.S_IMODE(target.stat().st_mode) if target.exists() else None
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
    try:
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            n = asyncio.run(export(args, f, sys.stderr))
            f.flush()
            os.fsync(f.fileno())
        if mode is None:  # a new file: what open() would have given it under this umask
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(partial, mode)
        os.replace(partial, target)
    except BaseException:
        with contextlib.suppress(OSError):
            partial.unlink()
        raise
    return n


__all__ = ["main"]
