"""`perpsignal backtest`: history through the live scorer, judge and outcome code (design.md 6).

In one process by default (the domain's scorer engine and rule judge); `--through-broker`
publishes the history to the topics and runs the real scorer and judge services as
subprocesses (`python -m perpsignal_scorer`, as `perpsignal up` does) against a broker
(embedded unless KAFKA_BOOTSTRAP_SERVERS is set). Writes report.json (summaries), signals.jsonl
(one line per signal, streamed during the run) and report.html into `--out`.
"""

from __future__ import annotations

import argparse
import gc
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from perpsignal_cli.argtypes import seed_number
from perpsignal_common.events.market import TIMEFRAME_SECONDS
from perpsignal_domain.outcomes.evaluate import HORIZON_SECONDS

if TYPE_CHECKING:
    from perpsignal_cli.backtesting.columns import SignalTable
    from perpsignal_cli.backtesting.pipeline import History, RunResult
    from perpsignal_domain.outcomes.evaluate import Costs

log = logging.getLogger(__name__)


# Auxiliary history inputs beside the candles: flag and help. `perpsignal calibrate` takes
# the same ones, from this one table. Each flag's dest is a keyword of `load_history`.
HISTORY_INPUTS: tuple[tuple[str, str], ...] = (
    ("--funding", "funding history (any venue's API or export)"),
    ("--open-interest", "open-interest history (CSV or JSON)"),
    ("--long-short", "long/short ratio history (CSV or JSON)"),
    ("--fear-greed", "Fear & Greed CSV (time,value)"),
    (
        "--liquidations",
        "liquidations: orders with a side (Binance forceOrder/liquidationSnapshot, "
        "Coinglass liquidation-order) or long/short USD totals (Coinglass liquidation history)",
    ),
    ("--social", "social metrics time series (LunarCrush coin time-series)"),
    (
        "--taker-flow",
        "taker buy/sell volume history (Binance takerlongshortRatio, Coinglass taker "
        "buy/sell volume history, OKX taker-volume): momentum's flow part",
    ),
)


def build_parser() -> argparse.ArgumentParser:
    """Return the `perpsignal backtest` argument parser."""
    p = argparse.ArgumentParser(prog="perpsignal backtest", description=__doc__)
    p.add_argument(
        "inputs",
        nargs="*",
        type=Path,
        metavar="INPUT",
        help="many symbols in one run: files and folders of exports (every recognised file, "
        "grouped by symbol); each symbol's report goes to OUT/SYMBOL, a summary to OUT",
    )
    p.add_argument(
        "--list",
        action="append",
        type=Path,
        metavar="FILE",
        help="a list of inputs, one a line: PATH [symbol=SYMBOL] [kind=KIND] (repeatable)",
    )
    p.add_argument(
        "--jobs",
        type=int,
        help="processes (default: every core): with several inputs, symbols run at once; "
        "one long history (5,000+ scoring bars; by default at most 250,000, beyond which "
        "memory stays flat in one process) is split into consecutive parts whose signals "
        "are exactly the one-process run's",
    )
    p.add_argument(
        "--symbol",
        help="symbol the history belongs to, e.g. BTCUSDT; with several inputs, only these "
        "(comma-separated)",
    )
    p.add_argument(
        "--candles",
        type=Path,
        help="candles: CSV/JSON as Binance, OKX, Bybit, CCXT or freqtrade export them",
    )
    for flag, text in HISTORY_INPUTS:
        p.add_argument(flag, type=Path, help=text)
    p.add_argument(
        "--columns",
        action="append",
        metavar="FIELD=COLUMN,...",
        help="name the columns of a layout the importers do not know, e.g. "
        "time=ts,close=c or funding.rate=fr*0.01 (a kind. prefix limits a pair to one "
        "input; a number is a position; *k scales); repeatable",
    )
    p.add_argument(
        "--date-order",
        choices=("dmy", "mdy"),
        help="how slash dates such as 01/02/2024 read (dmy: day first, mdy: month first) "
        "when a file's rows do not show it by a number above 12",
    )
    p.add_argument("--out", type=Path, default=Path("backtest-report"), help="report folder")
    p.add_argument(
        "--timeframe",
        choices=sorted(TIMEFRAME_SECONDS, key=lambda tf: TIMEFRAME_SECONDS[tf]),
        help="scoring timeframe (default 15m, or the candles' own when coarser)",
    )
    p.add_argument(
        "--timerange",
        metavar="YYYYMMDD-YYYYMMDD",
        help="only signals observed in this UTC range (end exclusive; either side may be "
        "empty, as in freqtrade); earlier history is replayed as warm-up",
    )
    p.add_argument(
        "--fee-bp",
        type=float,
        default=5.0,
        help="taker fee per side in basis points of notional, for net P&L (default 5: "
        "Binance USD-M base tier)",
    )
    p.add_argument(
        "--slippage-bp",
        type=float,
        default=2.0,
        help="slippage per side in basis points, for net P&L (default 2)",
    )
    p.add_argument("--horizons", default="1h,4h,24h", help="outcome horizons (1h, 4h, 24h)")
    p.add_argument(
        "--equity-horizon",
        help="horizon of the equity curves, one of --horizons (default 4h when measured, "
        "else the longest)",
    )
    p.add_argument(
        "--seed", type=seed_number, default=7, help="seed of the random-direction baseline"
    )
    p.add_argument(
        "--llm",
        action="store_true",
        help="judge with the LLM (OPENAI_* env): runs the judge service, so implies "
        "--through-broker; default: the rule judge",
    )
    p.add_argument(
        "--through-broker",
        action="store_true",
        help="run through Kafka and the real scorer/judge services",
    )
    p.add_argument(
        "--events-out",
        type=Path,
        help="also write the imported events as JSON lines (for `perpsignal replay`)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--quiet", action="store_true", help="do not print the summary table")
    return p


def main(argv: list[str]) -> int:
    """Run a backtest; return 0, 2 on bad input, 130 when interrupted (partial report)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    horizons = list(dict.fromkeys(h.strip() for h in args.horizons.split(",") if h.strip()))
    bad = [h for h in [*horizons, args.equity_horizon] if h and h not in HORIZON_SECONDS]
    if bad:
        print(
            f"perpsignal backtest: unknown horizon(s) {bad}; use {list(HORIZON_SECONDS)}",
            file=sys.stderr,
        )
        return 2
    if not horizons:
        print(
            f"perpsignal backtest: --horizons names none of {list(HORIZON_SECONDS)}",
            file=sys.stderr,
        )
        return 2
    if args.equity_horizon is None:  # the equity curves need a measured horizon
        args.equity_horizon = (
            "4h" if "4h" in horizons else max(horizons, key=HORIZON_SECONDS.__getitem__)
        )
    elif args.equity_horizon not in horizons:
        # the curves are drawn from that horizon's outcomes: it was a KeyError after the run
        print(
            f"perpsignal backtest: --equity-horizon {args.equity_horizon} is not among "
            f"--horizons {','.join(horizons)}",
            file=sys.stderr,
        )
        return 2
    from perpsignal_cli.backtesting.timerange import TimerangeError, parse_timerange, restrict

    try:
        span = parse_timerange(args.timerange) if args.timerange else (None, None)
    except TimerangeError as exc:
        print(f"perpsignal backtest: {exc}", file=sys.stderr)
        return 2
    from perpsignal_domain.outcomes.evaluate import valid_cost_bp

    if not (valid_cost_bp(args.fee_bp) and valid_cost_bp(args.slippage_bp)):
        # NaN passed the old `< 0` test and failed the run after scoring, at the JSON write
        print(
            "perpsignal backtest: --fee-bp and --slippage-bp must be numbers from 0 to 10000",
            file=sys.stderr,
        )
        return 2
    if args.jobs is not None and args.jobs < 1:  # said before any history is read
        print("perpsignal backtest: --jobs must be >= 1", file=sys.stderr)
        return 2
    from perpsignal_cli.backtesting.cliargs import out_folder, valid_symbol

    if args.inputs or args.list:
        if not args.list and not out_folder(args.out, "perpsignal backtest"):
            return 2
        from perpsignal_cli.backtesting import multi

        return multi.main(parser, args)
    if not args.symbol or not args.candles:
        print(
            "perpsignal backtest: give --symbol and --candles, or input files/folders "
            "(several symbols)",
            file=sys.stderr,
        )
        return 2
    prog = "perpsignal backtest"
    if not valid_symbol(args.symbol.upper(), prog) or not out_folder(args.out, prog):
        return 2
    logging.getLogger("perpsignal_cli").setLevel(logging.INFO)
    from perpsignal_domain import _native

    # how fast the run can be: the mypyc build, or why the source runs interpreted
    log.info("domain core: %s", _native.status)

    from perpsignal_cli.backtesting.importers import (
        HistoryFormatError,
        column_overrides,
        date_order,
        parse_column_map,
    )
    from perpsignal_cli.backtesting.pipeline import ServiceConfigError, load_history

    for path in (
        args.candles,
        args.funding,
        args.open_interest,
        args.long_short,
        args.fear_greed,
        args.liquidations,
        args.social,
        args.taker_flow,
    ):
        if path is not None and not path.is_file():
            print(f"perpsignal backtest: no such file: {path}", file=sys.stderr)
            return 2
    try:
        with column_overrides(parse_column_map(args.columns or [])), date_order(args.date_order):
            history = load_history(
                args.symbol.upper(),
                args.candles,
                funding=args.funding,
                open_interest=args.open_interest,
                long_short=args.long_short,
                fear_greed=args.fear_greed,
                liquidations=args.liquidations,
                social=args.social,
                taker_flow=args.taker_flow,
                timeframe=args.timeframe,
            )
        if span != (None, None):
            history = restrict(history, *span)
    except (HistoryFormatError, ValueError) as exc:
        print(f"perpsignal backtest: {exc}", file=sys.stderr)
        return 2
    # the modules and the history live until the end of the run: out of the collector's
    # sight, its collections stop re-scanning them (about 10 % of the run on the FTX file)
    gc.freeze()
    try:
        return _run(args, history, horizons, span)
    except ServiceConfigError as exc:
        print(f"perpsignal backtest: {exc}", file=sys.stderr)
        return 2
    finally:
        gc.unfreeze()


def _run(
    args: argparse.Namespace,
    history: History,
    horizons: list[str],
    span: tuple[int | None, int | None],
) -> int:
    from perpsignal_cli.backtesting import report
    from perpsignal_cli.backtesting.eventfile import write_events
    from perpsignal_domain.outcomes.evaluate import Costs

    costs = Costs(taker_fee_bp=args.fee_bp, slippage_bp=args.slippage_bp)

    if args.events_out:
        n = write_events(args.events_out, history.events)
        print(f"wrote {n} events to {args.events_out}", file=sys.stderr)
    progress = False if args.no_progress else None
    from perpsignal_cli.backtesting.errors import BrokerRunError
    from perpsignal_cli.backtesting.split import default_jobs

    jobs = args.jobs if args.jobs is not None else default_jobs()
    if jobs < 1:
        print("perpsignal backtest: --jobs must be >= 1", file=sys.stderr)
        return 2

    try:
        result, data = run_symbol(
            history,
            args.out,
            horizons=horizons,
            equity_horizon=args.equity_horizon,
            seed=args.seed,
            costs=costs,
            span=span,
            progress=progress,
            through_broker=args.through_broker or args.llm,
            use_llm=args.llm,
            jobs=jobs,
            auto_jobs=args.jobs is None,
        )
    except BrokerRunError as exc:
        print(f"perpsignal backtest: the run through the broker failed: {exc}", file=sys.stderr)
        return 1
    json_path = args.out / "report.json"
    html_path = args.out / "report.html"
    if not args.quiet:
        print(report.terminal_table(data))
    rate = result.events_done / result.elapsed_s if result.elapsed_s else 0.0
    print(
        f"\n{result.events_done}/{result.events_total} events in {result.elapsed_s:.1f}s "
        f"({rate:,.0f}/s); report: {json_path} {html_path} "
        f"{args.out / report.SIGNALS_FILE}",
        file=sys.stderr,
    )
    if result.interrupted:
        print("interrupted: the report covers the history processed so far", file=sys.stderr)
        return 130
    return 0


def run_symbol(
    history: History,
    out: Path,
    *,
    horizons: list[str],
    equity_horizon: str = "4h",
    seed: int = 7,
    costs: Costs | None = None,
    span: tuple[int | None, int | None] = (None, None),
    progress: bool | None = False,
    through_broker: bool = False,
    use_llm: bool = False,
    jobs: int = 1,
    auto_jobs: bool = False,
) -> tuple[RunResult, dict[str, Any]]:
    """Backtest one symbol's history and write its report into `out`.

    Writes signals.jsonl (one line per signal in `span`, streamed while the run goes: the
    run keeps no signal in memory), report.json (the summaries) and report.html; returns
    the run's result (its `records` empty) and the report data. `jobs` > 1 splits a long
    history's in-process run over that many forked processes (backtesting/split.py: the
    same signals); `auto_jobs`: `jobs` is the default, not the user's, so a very long
    history stays in one process (flat memory).
    """
    import math

    from perpsignal_cli.backtesting import html, report, split
    from perpsignal_cli.backtesting.columns import SignalTable
    from perpsignal_domain.outcomes.evaluate import NO_COSTS

    costs = NO_COSTS if costs is None else costs
    lo = -math.inf if span[0] is None else span[0]
    hi = math.inf if span[1] is None else span[1]
    table = SignalTable(horizons)
    parts = 1 if through_broker or use_llm else split.parts_for(history, jobs, auto=auto_jobs)
    if parts > 1:
        result = split.run_split(
            history,
            out,
            table,
            parts=parts,
            lo_ms=lo,
            hi_ms=hi,
            horizons=horizons,
            costs=costs,
            progress=progress,
        )
    else:
        result = _run_one(
            history, out, table, lo, hi, horizons, costs, progress, through_broker, use_llm
        )
    data = report.build_report(
        result,
        history,
        horizons=horizons,
        equity_horizon=equity_horizon,
        seed=seed,
        costs=costs,
        table=table,
    )
    report.write_json(data, out)
    lines = table.directional_lines if table.lines_known else None
    html.write_html(data, out, candles=history.primary, lines=lines)
    return result, data


def _run_one(
    history: History,
    out: Path,
    table: SignalTable,
    lo: float,
    hi: float,
    horizons: list[str],
    costs: Costs,
    progress: bool | None,
    through_broker: bool,
    use_llm: bool,
) -> RunResult:
    """Run in this process (or through the broker), streaming signals into `out`."""
    from perpsignal_cli.backtesting.columns import SignalWriter
    from perpsignal_cli.backtesting.pipeline import evaluate_outcomes, run_in_process

    with SignalWriter(out, table, lo, hi) as sink:
        if through_broker or use_llm:
            from perpsignal_cli.backtesting.broker import run_through_broker

            result = run_through_broker(
                history, horizons=horizons, progress=progress, use_llm=use_llm
            )
            # the services measured gross outcomes: measure again with this run's costs
            judged = [r.judged for r in result.records]
            for rec in evaluate_outcomes(judged, history, horizons, costs=costs):
                sink(rec)
            result.records = []
        else:
            result = run_in_process(
                history, horizons=horizons, progress=progress, costs=costs, sink=sink
            )
    return result


__all__ = ["build_parser", "main", "run_symbol"]
