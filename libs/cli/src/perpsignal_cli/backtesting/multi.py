"""Many symbols in one `perpsignal backtest`: find the inputs, group them by symbol, run each
symbol's ordinary single-symbol backtest on a process pool, and summarise.

Why a process pool: the engine is pure Python and holds the GIL, so symbols only run side by
side in separate processes. Each worker runs exactly the single-symbol command
(`backtest.main` with that symbol's files and the run's shared options), so a symbol's
`SYMBOL/report.json` is what `perpsignal backtest --symbol SYMBOL ...` writes alone. Workers
are forked after the engine's modules are imported, so a worker starts in milliseconds.

Inputs (positional files and folders, `--list` files) are recognised by their columns (the
importers' `KINDS` table decides which kinds a file can be read as) and by their name
(freqtrade's `-funding_rate`/`-mark`, `fear_greed`, `liquidations`, ...), and matched to a
symbol by their name (`XRP_USDT_USDT-5m-futures.csv` -> XRPUSDT, `binance-BTCUSDT-...` ->
BTCUSDT, `ftx-btc-perp-...` -> BTCUSDT: a bare asset is its USDT perpetual, as the importers'
symbol matching has it) or, for liquidations, by their `symbol` column. Fear & greed is
market-wide and goes to every symbol.

The summary (`summary.json`, `index.html`, `summary.md` in `--out`) is built from each
symbol's report.json summary fields only (run, statistics, performance, factor_diagnostics),
never from the signal list. Pooled figures are labelled as such: win rate and P&L per horizon
pool every symbol's outcomes (sums of wins and P&L over sums of counts); a factor's pooled IC
is the inverse-variance mean of the per-symbol ICs, the variance read off each symbol's
overlap-aware 95 % interval, which treats symbols as independent (correlated markets make
the pooled interval too narrow).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import html
import itertools
import json
import math
import os
import re
import sys
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from perpsignal_domain import _native

# input kinds a symbol can have, and the single-symbol flag of each
AUX_FLAGS = {
    "funding": "--funding",
    "open_interest": "--open-interest",
    "long_short": "--long-short",
    "liquidations": "--liquidations",
    "social": "--social",
    "mark": "--mark",
    "fear_greed": "--fear-greed",
    "taker_flow": "--taker-flow",  # per symbol: never one symbol's flow for every symbol
}
KINDS_ORDER = ("candles", *AUX_FLAGS)
GLOBAL_KINDS = frozenset({"fear_greed"})  # market-wide: every symbol gets it
# options of the parser that name one symbol's inputs or the multi run itself: not passed on
NOT_SHARED = frozenset(
    {
        "help",
        "inputs",
        "list",
        "jobs",
        "symbol",
        "candles",
        "out",
        "quiet",
        "no_progress",
        *(k for k in AUX_FLAGS),
    }
)
# single-symbol-only options
REFUSED = {
    "through_broker": "--through-broker",
    "llm": "--llm",
    "events_out": "--events-out",
}
DATA_SUFFIXES = (".csv", ".json", ".gz", ".jsonl", ".feather", ".arrow", ".parquet", ".txt", ".zip")

# name tokens: what kind a file is, and tokens that are never part of a symbol
_NAME_KINDS = (
    (("funding", "fundingrate"), "funding"),
    (("mark", "markprice"), "mark"),
    (("fear", "greed", "feargreed", "fng"), "fear_greed"),
    (("liquidation", "liquidations", "liq", "forceorder", "liquidationsnapshot"), "liquidations"),
    (("social", "lunarcrush", "sentiment"), "social"),
    (("taker", "takerlongshortratio", "takerflow", "takervolume"), "taker_flow"),
)
_NOT_SYMBOL = frozenset(
    {
        *(t for tokens, _ in _NAME_KINDS for t in tokens),
        "rate",
        "futures",
        "future",
        "spot",
        "perp",
        "perpetual",
        "swap",
        "usdm",
        "coinm",
        "ohlcv",
        "ohlc",
        "candles",
        "candle",
        "klines",
        "kline",
        "oi",
        "openinterest",
        "open",
        "interest",
        "longshort",
        "long",
        "short",
        "ratio",
        "basis",
        "history",
        "hist",
        "data",
        "export",
        "index",
        "binance",
        "okx",
        "bybit",
        "ftx",
        "hyperliquid",
        "coinglass",
        "deribit",
        "kraken",
        "bitmex",
        "coinbase",
        "alternative",
        "me",
        "trades",
        "metrics",
        "order",
        "orders",
        "zip",
        "csv",
        "json",
    }
)
_QUOTES = ("USDT", "USDC", "BUSD", "USD", "BTC", "ETH")


class MultiInputError(ValueError):
    """The multi-symbol inputs as given cannot start a run (no candles at all, a bad list)."""


@dataclass
class InputFile:
    """One discovered file: what it was read as and where it went."""

    path: str
    kinds: list[str] = field(default_factory=list)
    symbol: str | None = None
    status: str = "pending"  # used | skipped | unused | error
    reason: str | None = None
    symbols: list[str] = field(default_factory=list)  # the symbols it was given to


@dataclass
class Job:
    """One symbol's single-symbol backtest."""

    symbol: str
    candles: str
    aux: dict[str, str]
    out: str
    shared: list[str]
    size: int = 0  # an estimate of the work, to start the longest first

    def argv(self) -> list[str]:
        """Return the single-symbol command line of this job."""
        argv = ["--symbol", self.symbol, "--candles", self.candles, "--out", self.out]
        for kind, path in sorted(self.aux.items()):
            argv += [AUX_FLAGS[kind], path]
        return [*argv, "--no-progress", *self.shared]


@dataclass
class SymbolResult:
    """What a worker hands back: exit code, error, the report's summary fields, time."""

    symbol: str
    rc: int
    error: str | None
    summary: dict[str, Any] | None
    elapsed_s: float
    dropped: dict[str, str] = field(default_factory=dict)  # aux path -> why it was left out
    cpu_s: float = 0.0  # CPU seconds the symbol took (wall time is a neighbour's too)


# ---------------------------------------------------------------------------------------
# Finding and recognising the inputs
# ---------------------------------------------------------------------------------------


def _tokens(path: Path) -> list[str]:
    name = path.name
    for suffix in (".gz", *DATA_SUFFIXES):
        name = name.removesuffix(suffix)
    return [t for t in re.split(r"[^A-Za-z0-9]+", name) if t]


def symbol_from_name(path: Path) -> str | None:
    """Return the symbol a file name names, or None.

    Freqtrade pairs (`XRP_USDT_USDT` -> XRPUSDT, `ETH_BTC` -> ETHBTC), one venue symbol
    (`BTCUSDT`), or a bare asset (`btc` of `ftx-btc-perp`), taken as its USDT perpetual.
    """
    words = [
        t.upper()
        for t in _tokens(path)
        # a coin's name may hold digits (1000PEPE, 1INCH); a date or a bar length is no coin
        if re.search("[A-Za-z]", t)
        and t.lower() not in _NOT_SYMBOL
        and not _BAR_LENGTH.fullmatch(t)
    ]
    if not words:
        return None
    whole = [w for w in words if any(w.endswith(q) and len(w) > len(q) + 1 for q in _QUOTES)]
    if whole:  # a venue symbol: BTCUSDT
        return whole[0]
    # a pair: base, quote[, settle]; the last word before a quote that is not the quote
    # itself (a venue's name may lead: gateio_BTC_USDT; freqtrade's settle may follow)
    pairs = [
        i for i in range(len(words) - 1) if words[i + 1] in _QUOTES and words[i] != words[i + 1]
    ]
    if pairs:
        return words[pairs[-1]] + words[pairs[-1] + 1]
    if len(words) >= 2:
        return words[0] + words[1]
    return words[0] + "USDT"


# a bar length in a file name: 1m, 5m, 1h, 15min, 1hour, 1d; MT4's M15, H1, Min1
_BAR_LENGTH = re.compile(
    r"\d+(s|m|h|d|w|min|mins|minute|minutes|hour|hours|hr|day|days|week|month|mon)"
    r"|(m|h|d|w|min)\d+",
    re.IGNORECASE,
)


def _timeframe_s(path: Path) -> int | None:
    """The bar length of a candle file: from its name (`-5m`), else its first rows."""
    from perpsignal_cli.backtesting import importers as imp
    from perpsignal_common.events.market import TIMEFRAME_SECONDS

    for t in _tokens(path):
        if t in TIMEFRAME_SECONDS:
            return TIMEFRAME_SECONDS[t]
    try:
        table = _head_table(path)
        rows = list(itertools_islice(table.rows, 20))
        res = imp.resolve("candles", imp.Table(table.header, rows, table.what), path)
        order = imp.rows_date_order(res, rows, path)
        times = sorted(imp.parse_time_ms(imp.row_time(res, r), order) for r in rows)
    except (imp.HistoryFormatError, OSError, ValueError):
        return None
    steps = [b - a for a, b in itertools.pairwise(times) if b > a]
    return min(steps) // 1000 if steps else None


def _name_kind(path: Path) -> str | None:
    words = {t.lower() for t in _tokens(path)}
    for tokens, kind in _NAME_KINDS:  # a whole word, or a long one inside a word
        if words & set(tokens) or any(t in w for w in words for t in tokens if len(t) > 5):
            return kind
    return None


def _has(res: Any, *names: str) -> bool:
    return any(n in res.index for n in names)


def recognise(path: Path) -> list[str]:
    """Return the input kinds `path` can be read as (by its columns, then its name).

    Raises HistoryFormatError when it is none (the candles reader's message: what it saw).
    """
    from perpsignal_cli.backtesting import importers as imp

    try:
        table = _head_table(path)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise imp.HistoryFormatError(f"{path}: not CSV, JSON, feather or parquet ({exc})") from None
    except OSError as exc:
        raise imp.HistoryFormatError(f"{path}: unreadable ({exc.strerror or exc})") from None
    except imp.HistoryFormatError as exc:
        raise imp.HistoryFormatError(
            str(exc) if str(path) in str(exc) else f"{path}: {exc}"
        ) from None
    rows = list(itertools_islice(table.rows, 3))
    fits: list[str] = []
    first_error: Exception | None = None
    for kind in (
        "candles",
        "funding",
        "open_interest",
        "long_short",
        "fear_greed",
        "liquidations",
        "social",
        "taker_flow",
    ):
        probe = imp.Table(table.header, list(rows), table.what)
        try:
            res = imp.resolve(kind, probe, path)
        except imp.HistoryFormatError as exc:
            first_error = first_error or exc
            continue
        if kind == "liquidations" and not _has(
            res, "side", "notional_usd", "long_usd", "short_usd", "quantity"
        ):
            continue
        if kind == "social" and not _has(
            res, "galaxy_score", "sentiment", "social_volume_change_pct"
        ):
            continue
        if kind == "taker_flow" and not (
            {"buy_volume", "sell_volume"} <= set(res.index)
            or {"buy_volume_usd", "sell_volume_usd"} <= set(res.index)
        ):
            continue
        fits.append(kind)
    named = _name_kind(path)
    if named == "mark" and "candles" in fits:
        return ["mark"]
    if named is not None and named in fits:
        return [named]
    if "candles" in fits:
        return ["candles"]
    # a freqtrade-style funding file reads as candles too; without a name hint it is candles
    kinds = [k for k in fits if k in ("open_interest", "long_short")] or fits[:1]
    if not kinds:
        assert first_error is not None
        raise imp.HistoryFormatError(
            f"{path}: not a recognised export of any input kind ({first_error})"
        )
    return kinds


HEAD_BYTES = 1 << 16


def _head_table(path: Path) -> Any:
    """The file as a table, a plain CSV only its first 64 KiB (its columns and first rows
    are all recognition needs; the planning is the part of the run no worker shares)."""
    import io

    from perpsignal_cli.backtesting import importers as imp

    with path.open("rb") as fh:
        head = fh.read(HEAD_BYTES + 1)
    binary = (
        head[:2] == b"\x1f\x8b"
        or head[:6] == b"ARROW1"
        or head[:4] in (b"PAR1", b"FEA1", b"PK\x03\x04")
    )
    json_like = head.lstrip()[:1] in (b"[", b"{")
    if len(head) <= HEAD_BYTES or binary or json_like or path.suffix in imp._ARROW_SUFFIXES:
        return imp.read_table(path)
    text = head[:HEAD_BYTES].decode("utf-8-sig", errors="ignore")
    return imp._csv_table(io.StringIO(text[: text.rfind("\n") + 1], newline=""))


def itertools_islice(rows: Any, n: int) -> Iterator[Any]:
    """The first `n` rows of an iterable (a CSV reader is consumed only that far)."""
    return itertools.islice(iter(rows), n)


def _liquidation_symbols(path: Path) -> list[str]:
    """Return the symbols named in a liquidation file's `symbol` column (empty when none)."""
    from perpsignal_cli.backtesting import importers as imp

    table = imp.read_table(path)
    res = imp.resolve("liquidations", table, path)
    if "symbol" not in res.index:
        return []
    return sorted({str(res.raw(r, "symbol")) for r in table.rows if res.raw(r, "symbol")})


def read_list(path: Path) -> list[tuple[Path, str | None, str | None]]:
    """Read a list file: one input per line, `PATH [symbol=SYM] [kind=KIND]`; `#` comments.

    Relative paths are relative to the list file's folder (to the working folder when the
    list is a pipe: `--list <(find data -name '*.csv')`); a folder is expanded.
    """
    # not only a regular file: `--list <(find data -name '*.csv')` is a pipe (/dev/fd/63)
    if not path.exists():
        raise MultiInputError(f"--list {path}: no such file")
    if path.is_dir():
        raise MultiInputError(f"--list {path}: a folder; give it as an input instead")
    # a pipe's lines name paths as the command that wrote them did: from the working folder
    base = path.parent if path.is_file() else Path.cwd()
    out: list[tuple[Path, str | None, str | None]] = []
    try:  # a BOM (Windows editors) is no part of the first path
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise MultiInputError(f"--list {path}: unreadable ({exc})") from None
    for n, raw in enumerate(text.splitlines(), 1):
        line = re.split(r"(?:^|\s)#", raw, maxsplit=1)[0].strip()
        if not line:
            continue
        # the path is what comes before the trailing key=value options: it may hold spaces
        # (My Data/...) and be quoted
        match = re.fullmatch(r"(.+?)((?:\s+[A-Za-z_]+=\S*)*)", line)
        assert match is not None  # `.+?` matches any non-empty line
        parts = [match.group(1).strip().strip("\"'"), *match.group(2).split()]
        opts: dict[str, str] = {}
        for extra in parts[1:]:
            key, sep, value = extra.partition("=")
            if not sep or key not in ("symbol", "kind"):
                raise MultiInputError(f"{path}:{n}: {extra!r} is not symbol=SYMBOL or kind=KIND")
            opts[key] = value
        kind = opts.get("kind")
        if kind is not None and kind not in KINDS_ORDER:
            raise MultiInputError(f"{path}:{n}: unknown kind {kind!r} ({', '.join(KINDS_ORDER)})")
        target = Path(parts[0])
        if not target.is_absolute():
            target = base / target
        out.append((target, opts.get("symbol", "").upper() or None, kind))
    return out


def _expand(
    entries: Sequence[tuple[Path, str | None, str | None]],
) -> list[tuple[Path, str | None, str | None]]:
    out = []
    for path, symbol, kind in entries:
        if not path.is_dir():
            out.append((path, symbol, kind))
            continue
        out.extend(
            (child, symbol, kind)
            for child in sorted(path.iterdir())
            if child.is_file()
            and not child.name.startswith(".")
            and child.name.lower().endswith(DATA_SUFFIXES)
        )
    return out


@dataclass
class Plan:
    """The symbols to run and what became of every file."""

    jobs: list[Job]
    files: list[InputFile]


def plan(
    entries: Sequence[tuple[Path, str | None, str | None]],
    out: Path,
    shared: list[str],
    only: set[str] | None = None,
    supported: frozenset[str] = frozenset(AUX_FLAGS),
) -> Plan:
    """Recognise every input, group by symbol and return one job per symbol with candles.

    `supported`: the auxiliary kinds the single-symbol command takes (a file of another kind,
    e.g. mark prices while the backtest has no such input, is listed as unused).
    """
    from perpsignal_cli.backtesting import importers as imp

    files: list[InputFile] = []
    found: list[tuple[InputFile, Path]] = []
    seen: set[Path] = set()
    for path, symbol, kind in _expand(entries):
        key = path.resolve()
        if key in seen:
            continue
        seen.add(key)
        info = InputFile(str(path))
        files.append(info)
        if not path.is_file():
            info.status, info.reason = "error", "no such file"
            continue
        try:
            info.kinds = [kind] if kind else recognise(path)
        except imp.HistoryFormatError as exc:
            info.status, info.reason = "error", str(exc)
            continue
        info.symbol = symbol or (None if info.kinds == ["fear_greed"] else symbol_from_name(path))
        usable = [k for k in info.kinds if k == "candles" or k in supported]
        if not usable:
            info.status = "unused"
            info.reason = f"read as {'/'.join(info.kinds)}: the backtest has no such input"
            continue
        info.kinds = usable
        found.append((info, path))

    candles: dict[str, list[tuple[InputFile, Path]]] = {}
    for info, path in found:
        if "candles" in info.kinds and info.symbol:
            candles.setdefault(info.symbol, []).append((info, path))
        elif "candles" in info.kinds:
            info.status, info.reason = (
                "error",
                "candles, but no symbol in the file name: give it in a --list file "
                "(PATH symbol=SYMBOL)",
            )
    if only:
        for sym in list(candles):
            if sym not in only:
                for info, _ in candles.pop(sym):
                    info.status, info.reason = "skipped", f"{sym} is not among --symbol"
    chosen: dict[str, tuple[InputFile, Path]] = {}
    for sym, group in candles.items():
        # the finest candles are the most detailed outcome path; ties: the larger file
        group.sort(key=lambda ip: (_timeframe_s(ip[1]) or 10**9, -ip[1].stat().st_size))
        chosen[sym] = group[0]
        for info, _ in group[1:]:
            info.status = "skipped"
            info.reason = f"{sym} already has finer candles ({group[0][1].name})"
    symbols = sorted(chosen)
    aux: dict[str, dict[str, tuple[InputFile, Path]]] = {s: {} for s in symbols}

    def give(info: InputFile, path: Path, kind: str, sym: str) -> None:
        held = aux[sym].get(kind)
        if held is not None:
            info.reason = f"{sym} already has {kind.replace('_', ' ')} ({held[1].name})"
            return
        aux[sym][kind] = (info, path)
        if sym not in info.symbols:
            info.symbols.append(sym)

    for info, path in found:
        if "candles" in info.kinds:
            continue
        targets: list[str]
        if set(info.kinds) <= GLOBAL_KINDS:
            targets = symbols
        elif info.symbol is not None:
            targets = [s for s in symbols if _same(info.symbol, s)]
        elif "liquidations" in info.kinds:
            try:
                named = _liquidation_symbols(path)
            except imp.HistoryFormatError as exc:
                info.status, info.reason = "error", str(exc)
                continue
            targets = [s for s in symbols if any(_same(n, s) for n in named)]
            if not named:
                targets = symbols if len(symbols) == 1 else []
        else:
            targets = symbols if len(symbols) == 1 else []
        if not targets:
            info.status = "unused"
            info.reason = (
                f"no candles of {info.symbol} among the inputs"
                if info.symbol
                else "no symbol in its name or rows and more than one symbol in the run: "
                "give it in a --list file (PATH symbol=SYMBOL)"
            )
            continue
        for sym in targets:
            for kind in info.kinds:
                give(info, path, kind, sym)
        if not info.symbols:
            info.status = "skipped"
    jobs = []
    for sym in symbols:
        info, path = chosen[sym]
        info.status, info.symbols = "used", [sym]
        job_aux = {}
        for kind, (a_info, a_path) in aux[sym].items():
            job_aux[kind] = str(a_path)
            a_info.status = "used"
        # the work is about one unit per scored bar: rows (~ bytes) times the bar length
        cost = path.stat().st_size * (_timeframe_s(path) or 300)
        jobs.append(Job(sym, str(path), job_aux, str(out / sym), shared, cost))
    return Plan(jobs, files)


def _same(a: str, b: str) -> bool:
    """The importers' symbol matching (a liquidation list's rows reach the same symbols)."""
    from perpsignal_cli.backtesting.importers import same_symbol

    return same_symbol(a, b)


# ---------------------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def _output_to(log: Path) -> Iterator[None]:
    """Send this process's stdout and stderr (Python and file descriptors) into `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    with log.open("w", buffering=1) as stream:
        saved = os.dup(1), os.dup(2)
        try:
            os.dup2(stream.fileno(), 1)
            os.dup2(stream.fileno(), 2)
            with contextlib.redirect_stdout(stream), contextlib.redirect_stderr(stream):
                yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


SUMMARY_KEYS = (
    "run",
    "statistics",
    "factor_diagnostics",
    "performance",
    "signals_by_direction_verdict",
    "notes",
    "sources",
)


def run_job(job: Job) -> SymbolResult:
    """Run one symbol's single-symbol backtest; a bad auxiliary file is left out and named.

    The importers name the file in every HistoryFormatError, so a failure naming one of the
    symbol's auxiliary files is retried without it (the symbol still runs on the rest).
    """
    from perpsignal_cli import backtest
    from perpsignal_cli.backtesting.importers import columns_checked_elsewhere

    started = time.perf_counter()
    cpu0 = _cpu_s()
    log = Path(job.out) / "backtest.log"
    dropped: dict[str, str] = {}
    while True:
        try:
            # an unprefixed --columns pair may be for another symbol's files: the plan
            # checked that some input has each
            with _output_to(log), columns_checked_elsewhere():
                rc = backtest.main(job.argv())
        except SystemExit as exc:  # argparse refusing an option
            rc = exc.code if isinstance(exc.code, int) else 2
            text = log.read_text(errors="replace")
        except Exception as exc:  # one symbol's crash must not end the run
            rc, text = 1, f"{type(exc).__name__}: {exc}"
        else:
            text = log.read_text(errors="replace")
        error = _last_error(text) if rc not in (0, 130) else None
        bad = next((k for k, p in job.aux.items() if error and p in error), None)
        if rc == 2 and bad is not None and error is not None:
            dropped[job.aux.pop(bad)] = error
            continue
        break
    summary = None
    report = Path(job.out) / "report.json"
    if rc in (0, 130) and report.is_file():
        data = json.loads(report.read_text())
        summary = {k: data.get(k) for k in SUMMARY_KEYS}
    return SymbolResult(
        job.symbol,
        rc,
        error,
        summary,
        time.perf_counter() - started,
        dropped,
        round(_cpu_s() - cpu0, 3),
    )


def _cpu_s() -> float:
    """CPU seconds of this process (a worker runs one symbol at a time)."""
    import resource

    use = resource.getrusage(resource.RUSAGE_SELF)
    return use.ru_utime + use.ru_stime


def _last_error(text: str) -> str:
    lines = [ln for ln in text.splitlines() if ln.startswith("perpsignal backtest: ")]
    if lines:
        return lines[-1].removeprefix("perpsignal backtest: ")
    tail = [ln for ln in text.splitlines() if ln.strip()]
    return tail[-1] if tail else "failed without a message"


def _preload() -> None:
    """Import what every worker runs, once, before forking (workers then start at once)."""
    from perpsignal_cli import backtest  # noqa: F401
    from perpsignal_cli.backtesting import diagnostics, html, pipeline, report  # noqa: F401
    from perpsignal_domain.scoring.engine import ScoringEngine  # noqa: F401


def run_jobs(jobs: Sequence[Job], workers: int) -> tuple[list[SymbolResult], bool]:
    """Run every job, `workers` at a time; return results in job order and whether the run
    was interrupted (Ctrl-C: finished symbols are kept, the rest are reported as not run)."""
    order = sorted(range(len(jobs)), key=lambda i: -jobs[i].size)  # longest first
    results: dict[int, SymbolResult] = {}
    interrupted = False
    if workers <= 1 or len(jobs) <= 1:
        for i in order:
            try:
                results[i] = run_job(jobs[i])
            except KeyboardInterrupt:
                interrupted = True
                break
            _progress(results[i], len(results), len(jobs))
            if results[i].rc == 130:
                interrupted = True
                break
        return [results.get(i) or _not_run(jobs[i]) for i in range(len(jobs))], interrupted
    import multiprocessing

    _preload()
    # what the workers inherit stays out of their collectors' sight: a collection would touch
    # (and so copy) every inherited page
    gc.freeze()
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else None
    ctx = multiprocessing.get_context(method)
    pool = ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=ctx)
    futures: dict[Future[SymbolResult], int] = {}
    try:
        for i in order:
            futures[pool.submit(run_job, jobs[i])] = i
        pending = set(futures)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                i = futures[fut]
                try:
                    results[i] = fut.result()
                except Exception as exc:  # a dead worker: that symbol's error
                    results[i] = SymbolResult(jobs[i].symbol, 1, f"worker failed: {exc}", None, 0.0)
                _progress(results[i], len(results), len(jobs))
    except KeyboardInterrupt:
        interrupted = True
        pool.shutdown(wait=True, cancel_futures=True)
        for fut, i in futures.items():
            if i not in results and fut.done() and not fut.cancelled() and fut.exception() is None:
                results[i] = fut.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        gc.unfreeze()
    if any(r.rc == 130 for r in results.values()):
        interrupted = True
    return [results.get(i) or _not_run(jobs[i]) for i in range(len(jobs))], interrupted


def _not_run(job: Job) -> SymbolResult:
    return SymbolResult(job.symbol, 130, "not run (interrupted)", None, 0.0)


def _progress(res: SymbolResult, done: int, total: int) -> None:
    what = f"{res.summary['run']['signals']} signals" if res.summary else f"FAILED: {res.error}"
    print(f"[{done}/{total}] {res.symbol}: {what} ({res.elapsed_s:.1f}s)", file=sys.stderr)


# ---------------------------------------------------------------------------------------
# The summary
# ---------------------------------------------------------------------------------------


def _symbol_row(res: SymbolResult, job: Job, out: Path) -> dict[str, Any]:
    row: dict[str, Any] = {
        "symbol": res.symbol,
        "status": {0: "ok", 130: "interrupted"}.get(res.rc, "error"),
        "exit_code": res.rc,
        "error": res.error,
        "elapsed_s": round(res.elapsed_s, 3),
        "cpu_s": res.cpu_s,
        "candles_file": job.candles,
        "inputs": {k: p for k, p in sorted(job.aux.items()) if p not in res.dropped},
        "left_out": [{"path": p, "error": e} for p, e in sorted(res.dropped.items())],
    }
    s = res.summary
    if s is None:
        return row
    run = s.get("run") or {}
    row["report"] = str(Path(job.out).relative_to(out) / "report.json")
    row["html"] = str(Path(job.out).relative_to(out) / "report.html")
    row.update(
        timeframe=run.get("timeframe"),
        candles=run.get("candles"),
        signals=run.get("signals"),
        interrupted=run.get("interrupted"),
        headline=(s.get("statistics") or {}).get("headline", []),
    )
    row["horizons"] = {}
    stats_by_h = {p["horizon"]: p for p in (s.get("statistics") or {}).get("horizons", [])}
    for perf in s.get("performance") or []:
        if perf.get("verdict") != "ALL":
            continue
        h = perf["horizon"]
        st = stats_by_h.get(h, {})
        row["horizons"][h] = {
            "n": perf.get("n"),
            "win_rate": perf.get("win_rate"),
            "avg_pnl_pct": perf.get("avg_pnl_pct"),
            "avg_net_pnl_pct": perf.get("avg_net_pnl_pct"),
            "total_net_pnl_pct": perf.get("total_net_pnl_pct"),
            "skill": st.get("skill"),
            "placebo_p": (st.get("p_values") or {}).get("random_direction"),
        }
    return row


def pooled_performance(summaries: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Pool the ALL-verdict outcome counts and P&L sums of every symbol, per horizon."""
    out: dict[str, Any] = {}
    for s in summaries:
        for perf in s.get("performance") or []:
            if perf.get("verdict") != "ALL" or not perf.get("n"):
                continue
            acc = out.setdefault(
                perf["horizon"],
                {
                    "n": 0,
                    "wins": 0,
                    "losses": 0,
                    "total_pnl_pct": 0.0,
                    "total_net_pnl_pct": 0.0,
                    "symbols": 0,
                },
            )
            acc["n"] += perf["n"]
            acc["wins"] += perf.get("wins") or 0
            acc["losses"] += perf.get("losses") or 0
            acc["total_pnl_pct"] += perf.get("total_pnl_pct") or 0.0
            acc["total_net_pnl_pct"] += perf.get("total_net_pnl_pct") or 0.0
            acc["symbols"] += 1
    for acc in out.values():
        n = acc["n"]
        acc["win_rate"] = round(acc["wins"] / n, 4)
        acc["avg_pnl_pct"] = round(acc["total_pnl_pct"] / n, 4)
        acc["avg_net_pnl_pct"] = round(acc["total_net_pnl_pct"] / n, 4)
        acc["total_pnl_pct"] = round(acc["total_pnl_pct"], 4)
        acc["total_net_pnl_pct"] = round(acc["total_net_pnl_pct"], 4)
    return dict(sorted(out.items(), key=lambda kv: _h_order(kv[0])))


def _h_order(h: str) -> int:
    from perpsignal_domain.outcomes.evaluate import HORIZON_SECONDS

    return int(HORIZON_SECONDS.get(h, 0))


Z95 = 1.959963984540054


def pooled_ic(summaries: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Pool each factor's per-symbol IC per horizon: inverse-variance (fixed-effect) mean.

    A symbol's variance is read off its overlap-aware 95 % interval ((hi - lo) / 2z)^2;
    symbols without an interval are left out. Also the n_ok-weighted mean sub-score.
    """
    out: dict[str, Any] = {}
    for s in summaries:
        for factor, row in (s.get("factor_diagnostics") or {}).items():
            acc = out.setdefault(factor, {"_ms": [0.0, 0], "ic": {}})
            if row.get("mean_score") is not None and row.get("n_ok"):
                acc["_ms"][0] += row["mean_score"] * row["n_ok"]
                acc["_ms"][1] += row["n_ok"]
            for h, ic in (row.get("ic") or {}).items():
                cell = acc["ic"].setdefault(h, {"_w": 0.0, "_wx": 0.0, "n": 0, "symbols": 0})
                ci = ic.get("ci95")
                if ic.get("ic") is None or not ci or ci[0] is None or ci[1] is None:
                    continue
                se = (ci[1] - ci[0]) / (2 * Z95)
                if se <= 0:
                    continue
                w = 1.0 / (se * se)
                cell["_w"] += w
                cell["_wx"] += w * ic["ic"]
                cell["n"] += ic.get("n") or 0
                cell["symbols"] += 1
    result: dict[str, Any] = {}
    for factor, acc in out.items():
        total, n_ok = acc["_ms"]
        ics: dict[str, Any] = {}
        for h, cell in sorted(acc["ic"].items(), key=lambda kv: _h_order(kv[0])):
            if not cell["_w"]:
                ics[h] = {
                    "ic": None,
                    "ci95": None,
                    "n": cell["n"],
                    "symbols": 0,
                    "excludes_zero": False,
                }
                continue
            mean = cell["_wx"] / cell["_w"]
            half = Z95 / math.sqrt(cell["_w"])
            lo, hi = mean - half, mean + half
            ics[h] = {
                "ic": round(mean, 4),
                "ci95": [round(lo, 4), round(hi, 4)],
                "n": cell["n"],
                "symbols": cell["symbols"],
                "excludes_zero": lo > 0 or hi < 0,
            }
        result[factor] = {
            "mean_score": round(total / n_ok, 2) if n_ok else None,
            "n_ok": n_ok,
            "ic": ics,
        }
    return result


POOLING_NOTE = (
    "Pooled figures combine every symbol that ran. win_rate and avg/total P&L per horizon "
    "pool all symbols' measured outcomes (every verdict): sum of wins over sum of outcomes, "
    "sum of P&L over sum of outcomes. A factor's pooled IC is the inverse-variance mean of "
    "the per-symbol ICs, each variance read off that symbol's overlap-aware 95 % interval; "
    "it treats symbols as independent, and crypto markets move together, so the pooled "
    "interval is narrower than the evidence warrants. mean_score is weighted by each "
    "symbol's n_ok. No skill test is pooled: see each symbol's report for those."
)


def build_summary(
    plan_: Plan,
    results: Sequence[SymbolResult],
    out: Path,
    *,
    jobs: int,
    elapsed_s: float,
    interrupted: bool,
) -> dict[str, Any]:
    """Return summary.json's content (no signal lists: each report's summary fields only)."""
    by_symbol = {j.symbol: j for j in plan_.jobs}
    rows = [_symbol_row(r, by_symbol[r.symbol], out) for r in results]
    ok = [r.summary for r in results if r.summary is not None]
    files = [asdict(f) for f in plan_.files]
    for r in results:  # auxiliary files a symbol left out after they failed to read
        for path, err in r.dropped.items():
            for f in files:
                if f["path"] == path:
                    f["status"], f["reason"] = "error", err
    skill: dict[str, Any] = {}
    for row in rows:
        for h, cell in (row.get("horizons") or {}).items():
            acc = skill.setdefault(h, {"tested": 0, "skill": 0})
            if cell.get("skill") is not None:
                acc["tested"] += 1
                acc["skill"] += 1 if cell["skill"] else 0
    return {
        "generated": {
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "elapsed_s": round(elapsed_s, 3),
        },
        "run": {
            "symbols": len(results),
            "ran": sum(1 for r in results if r.rc in (0, 130) and r.summary is not None),
            "failed": sum(1 for r in results if r.rc not in (0, 130)),
            "file_errors": sum(1 for f in files if f["status"] == "error"),
            "jobs": jobs,
            "interrupted": interrupted,
        },
        "symbols": sorted(rows, key=lambda r: r["symbol"]),
        "files": files,
        "skill_count": dict(sorted(skill.items(), key=lambda kv: _h_order(kv[0]))),
        "pooled": {
            "note": POOLING_NOTE,
            "performance": pooled_performance(ok),
            "factor_ic": pooled_ic(ok),
        },
    }


def _pct(x: Any) -> str:
    return "-" if x is None else f"{x * 100:.1f} %"


def _num(x: Any, fmt: str = "+.3f") -> str:
    return "-" if x is None else format(x, fmt)


def summary_markdown(summary: dict[str, Any]) -> str:
    """Return the short human index: per-symbol rows, pooled figures, file problems."""
    run = summary["run"]
    lines = [
        f"# Backtest of {run['symbols']} symbols",
        "",
        f"{run['ran']} ran, {run['failed']} failed, {run['file_errors']} file(s) refused; "
        f"{run['jobs']} worker(s)" + ("; INTERRUPTED" if run["interrupted"] else ""),
        "",
        "## Per symbol",
        "",
        "| symbol | status | candles | signals "
        "| horizon: n, win rate, net P&L % / trade, skill | headline |",
        "|---|---|---:|---:|---|---|",
    ]
    for row in summary["symbols"]:
        cells = "; ".join(
            f"{h}: {c['n']}, {_pct(c['win_rate'])}, {_num(c['avg_net_pnl_pct'])}, "
            f"{'yes' if c['skill'] else 'no' if c['skill'] is False else 'untested'}"
            for h, c in (row.get("horizons") or {}).items()
        )
        link = f"[{row['symbol']}]({row['html']})" if row.get("html") else row["symbol"]
        head = " ".join(row.get("headline") or []) or (row.get("error") or "")
        lines.append(
            f"| {link} | {row['status']} | {row.get('candles', '-')} | {row.get('signals', '-')} "
            f"| {cells or '-'} | {head.replace('|', '/')} |"
        )
    pooled = summary["pooled"]
    lines += [
        "",
        "## Pooled over every symbol (see the note)",
        "",
        "| horizon | outcomes | symbols | win rate | avg P&L % | avg net P&L % "
        "| total net P&L % | symbols with skill |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for h, p in pooled["performance"].items():
        sk = summary["skill_count"].get(h, {})
        lines.append(
            f"| {h} | {p['n']} | {p['symbols']} | {_pct(p['win_rate'])} | "
            f"{_num(p['avg_pnl_pct'])} | {_num(p['avg_net_pnl_pct'])} | "
            f"{_num(p['total_net_pnl_pct'], '+.2f')} | "
            f"{sk.get('skill', 0)} of {sk.get('tested', 0)} tested |"
        )
    horizons = list(pooled["performance"]) or sorted(
        {h for f in pooled["factor_ic"].values() for h in f["ic"]}, key=_h_order
    )
    lines += [
        "",
        "Pooled factor IC (inverse-variance mean of the per-symbol ICs, 95 % interval):",
        "",
        "| factor | mean sub-score | " + " | ".join(f"IC {h}" for h in horizons) + " |",
        "|---|---:|" + "---|" * len(horizons),
    ]
    for factor, row in pooled["factor_ic"].items():
        ic_cells: list[str] = []
        for h in horizons:
            ic = row["ic"].get(h) or {}
            ci = ic.get("ci95")
            ic_cells.append(
                f"{ic['ic']:+.3f} [{ci[0]:+.2f}, {ci[1]:+.2f}] ({ic['symbols']} sym)" if ci else "-"
            )
        ms = "-" if row["mean_score"] is None else f"{row['mean_score']:.1f}"
        lines.append(f"| {factor} | {ms} | " + " | ".join(ic_cells) + " |")
    lines += ["", pooled["note"]]
    problems = [f for f in summary["files"] if f["status"] in ("error", "unused", "skipped")]
    if problems:
        lines += ["", "## Files not used", "", "| file | status | why |", "|---|---|---|"]
        for f in problems:
            lines.append(
                f"| {f['path']} | {f['status']} | {(f['reason'] or '').replace('|', '/')} |"
            )
    return "\n".join(lines) + "\n"


def summary_html(markdown_text: str, summary: dict[str, Any]) -> str:
    """Return index.html: the markdown summary's tables as a plain page with links."""
    body: list[str] = []
    table: list[list[str]] = []

    def cell(text: str) -> str:
        m = re.fullmatch(r"\[(.+?)\]\((.+?)\)", text.strip())
        if m:
            return f'<a href="{html.escape(m.group(2))}">{html.escape(m.group(1))}</a>'
        return html.escape(text.strip())

    def flush() -> None:
        if not table:
            return
        head, *rest = table
        body.append(
            "<table><tr>"
            + "".join(f"<th>{cell(c)}</th>" for c in head)
            + "</tr>"
            + "".join("<tr>" + "".join(f"<td>{cell(c)}</td>" for c in r) + "</tr>" for r in rest)
            + "</table>"
        )
        table.clear()

    for line in markdown_text.splitlines():
        if line.startswith("|"):
            cells = line.strip().strip("|").split("|")
            if not all(set(c.strip()) <= set("-:") for c in cells):
                table.append(cells)
            continue
        flush()
        if line.startswith("## "):
            body.append(f"<h2>{html.escape(line[3:])}</h2>")
        elif line.startswith("# "):
            body.append(f"<h1>{html.escape(line[2:])}</h1>")
        elif line.strip():
            body.append(f"<p>{html.escape(line)}</p>")
    flush()
    style = (
        "body{font:14px system-ui,sans-serif;margin:2em;max-width:75em}"
        "table{border-collapse:collapse;margin:.5em 0}"
        "td,th{border:1px solid #ccc;padding:.25em .5em;text-align:left;vertical-align:top}"
        "th{background:#f4f4f4}"
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>"
        f"{'Backtest summary'}</title>"
        f"<style>{style}</style></head><body>{''.join(body)}"
        "<p><a href='summary.json'>summary.json</a></p></body></html>\n"
    )


def write_summary(summary: dict[str, Any], out: Path) -> tuple[Path, Path, Path]:
    """Write summary.json, summary.md and index.html into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    js = out / "summary.json"
    js.write_text(json.dumps(summary, indent=1, sort_keys=True, allow_nan=False) + "\n")
    md_text = summary_markdown(summary)
    md = out / "summary.md"
    md.write_text(md_text)
    page = out / "index.html"
    page.write_text(summary_html(md_text, summary))
    return js, md, page


# ---------------------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------------------


def shared_argv(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[str]:
    """Return the options of `args` every symbol's run takes (all but the per-symbol ones)."""
    out: list[str] = []
    for action in parser._actions:  # argparse keeps its options here
        dest = action.dest
        if dest in NOT_SHARED or not action.option_strings:
            continue
        value = getattr(args, dest, None)
        if value is None or value == action.default:
            continue
        flag = action.option_strings[-1]
        if action.nargs == 0 and action.const is True:  # store_true
            out.append(flag)
        elif isinstance(value, list):
            for v in value:
                out += [flag, str(v)]
        else:
            out += [flag, str(value)]
    return out


def main(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """Run the multi-symbol backtest; return 0 when at least one symbol ran, 2 when none
    could (every file refused, no candles), 130 when interrupted."""
    for dest, flag in REFUSED.items():
        if getattr(args, dest, None):
            print(
                f"perpsignal backtest: {flag} runs one symbol per command; "
                "leave it out with several inputs",
                file=sys.stderr,
            )
            return 2
    entries: list[tuple[Path, str | None, str | None]] = [(p, None, None) for p in args.inputs]
    try:
        for lst in args.list or []:
            entries += read_list(lst)
    except MultiInputError as exc:
        print(f"perpsignal backtest: {exc}", file=sys.stderr)
        return 2
    if args.candles:
        entries.append((args.candles, None, "candles"))
    for kind in AUX_FLAGS:
        path = getattr(args, kind, None)
        if path is not None:
            entries.append((path, None, kind))
    only = {s.strip().upper() for s in (args.symbol or "").split(",") if s.strip()} or None
    from perpsignal_cli.backtesting.split import default_jobs

    jobs = args.jobs if args.jobs is not None else default_jobs()
    if jobs < 1:
        print("perpsignal backtest: --jobs must be >= 1", file=sys.stderr)
        return 2
    from perpsignal_cli.backtesting.importers import (
        HistoryFormatError,
        column_overrides,
        date_order,
        parse_column_map,
    )

    try:
        with column_overrides(parse_column_map(args.columns or [])), date_order(args.date_order):
            the_plan = plan(
                entries,
                args.out,
                shared_argv(parser, args),
                only,
                frozenset(k for k in AUX_FLAGS if hasattr(args, k)),
            )
    except HistoryFormatError as exc:
        print(f"perpsignal backtest: {exc}", file=sys.stderr)
        return 2
    for f in the_plan.files:
        if f.status in ("error", "unused"):
            print(f"perpsignal backtest: {f.path}: {f.status}: {f.reason}", file=sys.stderr)
    if not the_plan.jobs:
        print(
            "perpsignal backtest: no candles among the inputs: nothing to run "
            f"({len(the_plan.files)} file(s) looked at)",
            file=sys.stderr,
        )
        write_summary(
            build_summary(the_plan, [], args.out, jobs=jobs, elapsed_s=0.0, interrupted=False),
            args.out,
        )
        return 2
    print(
        f"backtest of {len(the_plan.jobs)} symbols on {min(jobs, len(the_plan.jobs))} "
        f"worker(s): {', '.join(j.symbol for j in the_plan.jobs)}; domain core: "
        f"{_native.status}",
        file=sys.stderr,
    )
    started = time.perf_counter()
    results, interrupted = run_jobs(the_plan.jobs, jobs)
    summary = build_summary(
        the_plan,
        results,
        args.out,
        jobs=jobs,
        elapsed_s=time.perf_counter() - started,
        interrupted=interrupted,
    )
    js, md, page = write_summary(summary, args.out)
    if not args.quiet:
        print(summary_markdown(summary))
    print(f"summary: {js} {md} {page}", file=sys.stderr)
    if interrupted:
        return 130
    return 0 if summary["run"]["ran"] else 2


__all__ = ["build_summary", "main", "plan", "pooled_ic", "pooled_performance", "recognise"]
