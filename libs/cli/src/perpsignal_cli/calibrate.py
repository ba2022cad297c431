"""`perpsignal calibrate`: walk-forward calibration of factor weights and thresholds.

Takes the inputs of `perpsignal backtest` (same flags, same importers and `--timerange`),
runs the live scoring engine ONCE over the history, then searches weights and thresholds
by re-weighting the recorded sub-scores (`perpsignal_domain.research.calibration`: the
composite is linear in them), fold by fold: fit on a training window, purge a gap of at
least the horizon, report the following unseen test window. Writes, into `--out`:

* `calibration.json`: folds, search space, trials, per-fold in-sample and out-of-sample
  figures, the pooled out-of-sample result, deflated Sharpe ratios and the headline;
* `calibrated.env`: the configuration fitted on the most recent training window, as the
  settings the scorer and judge read (SCORER_WEIGHTS, SCORER_LONG_THRESHOLD,
  SCORER_SHORT_THRESHOLD, JUDGE_MIN_CONFIDENCE). When the out-of-sample evidence shows no
  skill, the file and the output say so first, and recommend keeping the defaults.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from perpsignal_cli.argtypes import (
    count_or_zero,
    non_negative_number,
    positive_count,
    seed_number,
)
from perpsignal_cli.backtest import HISTORY_INPUTS
from perpsignal_common.events.market import TIMEFRAME_SECONDS

if TYPE_CHECKING:
    from perpsignal_cli.backtesting.pipeline import History
    from perpsignal_domain.outcomes.evaluate import Costs
    from perpsignal_domain.research.calibration import Calibration, Config, Figures, Panel

log = logging.getLogger(__name__)

_UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def duration_s(text: str) -> float:
    """Parse `90m`, `12h`, `3d`, `1w` into seconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([mhdw])\s*", text.lower())
    if not m or float(m.group(1)) <= 0:
        raise argparse.ArgumentTypeError(f"expected a duration like 12h or 3d, got {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def build_parser() -> argparse.ArgumentParser:
    """Return the `perpsignal calibrate` argument parser."""
    p = argparse.ArgumentParser(
        prog="perpsignal calibrate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--symbol", required=True, help="symbol the history belongs to")
    p.add_argument("--candles", required=True, type=Path, help="candles (as `backtest`)")
    for flag, text in HISTORY_INPUTS:
        p.add_argument(flag, type=Path, help=text)
    p.add_argument(
        "--columns",
        action="append",
        metavar="FIELD=COLUMN,...",
        help="name unknown columns, as in `perpsignal backtest` (repeatable)",
    )
    p.add_argument(
        "--date-order",
        choices=("dmy", "mdy"),
        help="how slash dates such as 01/02/2024 read, as in `perpsignal backtest`",
    )
    p.add_argument(
        "--timeframe",
        choices=sorted(TIMEFRAME_SECONDS, key=lambda tf: TIMEFRAME_SECONDS[tf]),
        help="scoring timeframe (default 15m, or the candles' own when coarser)",
    )
    p.add_argument(
        "--timerange",
        metavar="YYYYMMDD-YYYYMMDD",
        help="only signals in this UTC range (earlier history is warm-up)",
    )
    # counts and costs are typed: a negative, zero or NaN value is refused before any import
    # (`--min-signals -5` used to run the whole search with no floor at all)
    p.add_argument(
        "--fee-bp", type=non_negative_number, default=5.0, help="taker fee per side, bp (5)"
    )
    p.add_argument(
        "--slippage-bp", type=non_negative_number, default=2.0, help="slippage per side, bp (2)"
    )
    p.add_argument(
        "--horizon",
        default="4h",
        choices=("1h", "4h", "24h"),
        help="outcome horizon of the objective (default 4h)",
    )
    p.add_argument(
        "--objective",
        default="sharpe",
        choices=("sharpe", "mean"),
        help="sharpe: mean / sd of the net P&L per signal (default); mean: mean net P&L per signal",
    )
    p.add_argument(
        "--train",
        type=duration_s,
        default=duration_s("3d"),
        help="training window, e.g. 3d (default 3d)",
    )
    p.add_argument(
        "--test",
        type=duration_s,
        default=duration_s("1d"),
        help="test window after each training window (default 1d)",
    )
    p.add_argument(
        "--gap",
        type=duration_s,
        default=None,
        help="purge gap between train and test (default and minimum: the horizon)",
    )
    p.add_argument(
        "--folds",
        type=count_or_zero,
        default=0,
        help="keep the most recent N folds (default 0: every fold that fits)",
    )
    p.add_argument(
        "--anchored",
        action="store_true",
        help="training windows grow from the start (default: rolling)",
    )
    p.add_argument(
        "--trials",
        type=positive_count,
        default=200,
        help="configurations tried per training window (default 200)",
    )
    p.add_argument(
        "--min-signals",
        type=positive_count,
        default=10,
        help="a configuration with fewer taken training signals is not chosen (10)",
    )
    p.add_argument("--seed", type=seed_number, default=7, help="seed of the random search (7)")
    p.add_argument("--out", type=Path, default=Path("calibration"), help="output folder")
    return p


def main(argv: list[str]) -> int:
    """Run a walk-forward calibration; 0 done, 2 on bad input."""
    args = build_parser().parse_args(argv)
    prog = "perpsignal calibrate"
    from perpsignal_domain.outcomes.evaluate import HORIZON_SECONDS, Costs, valid_cost_bp

    horizon_s = float(HORIZON_SECONDS[args.horizon])
    gap = horizon_s if args.gap is None else args.gap
    if gap < horizon_s:
        print(
            f"{prog}: --gap must be at least the horizon ({args.horizon}): a shorter gap "
            "lets training labels overlap the test window",
            file=sys.stderr,
        )
        return 2
    if not (valid_cost_bp(args.fee_bp) and valid_cost_bp(args.slippage_bp)):
        print(f"{prog}: --fee-bp/--slippage-bp from 0 to 10000", file=sys.stderr)
        return 2
    from perpsignal_cli.backtesting.cliargs import out_folder, valid_symbol

    if not valid_symbol(args.symbol.upper(), prog) or not out_folder(args.out, prog):
        return 2
    try:
        history, span = _load(args)
    except (ValueError, FileNotFoundError) as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    from perpsignal_domain.research.calibration import SearchSpace, calibrate, walk_forward_splits

    costs = Costs(taker_fee_bp=args.fee_bp, slippage_bp=args.slippage_bp)
    panel, current = build_panel(history, horizon_s, costs, span)
    if len(panel) < 2:
        print(f"{prog}: too few scored bars ({len(panel)})", file=sys.stderr)
        return 2
    folds = walk_forward_splits(
        float(panel.times[0]),
        float(panel.times[-1]) + 1.0,
        train_s=args.train,
        test_s=args.test,
        gap_s=gap,
        folds=args.folds,
        anchored=args.anchored,
    )
    if not folds:
        days = (panel.times[-1] - panel.times[0]) / 86400
        print(
            f"{prog}: {days:.1f} days of signals hold no fold of train "
            f"{args.train / 86400:g}d + gap {gap / 3600:g}h + test {args.test / 86400:g}d",
            file=sys.stderr,
        )
        return 2
    space = SearchSpace(trials=args.trials, seed=args.seed)
    result = calibrate(
        panel,
        folds,
        space,
        current,
        objective=args.objective,
        min_signals=args.min_signals,
        final_train_s=None if args.anchored else args.train,
    )
    data = report(result, space, args, history, gap)
    print(terminal(result, args))  # first: a result that cannot be written is still seen
    files = {
        args.out / "calibration.json": json.dumps(data, indent=2, sort_keys=True) + "\n",
        args.out / "calibrated.env": env_file(result),
    }
    try:
        write_pair(files)
    except OSError as exc:
        print(
            f"{prog}: cannot write {exc.filename}: {exc.strerror or exc}; "
            f"nothing in {args.out} was replaced",
            file=sys.stderr,
        )
        return 1
    print(
        f"\nwrote {args.out / 'calibration.json'} and {args.out / 'calibrated.env'}",
        file=sys.stderr,
    )
    return 0


def write_pair(files: dict[Path, str]) -> None:
    """Write every file beside its target, then rename them all over their targets.

    Written one after the other, a failure on the second (a full disk, a folder of that
    name) left a new calibration.json beside the previous run's calibrated.env, the file a
    user applies; now either both are replaced or neither (OSError names the file).
    """
    partials = {path: path.with_name(f".{path.name}.partial") for path in files}
    try:
        for path, text in files.items():
            try:
                partials[path].write_text(text)
            except OSError as exc:
                exc.filename = str(path)  # the user's file, not the partial one
                raise
            if path.is_dir():
                raise IsADirectoryError(21, "Is a directory", str(path))
        for path, partial in partials.items():
            partial.replace(path)
    finally:
        for partial in partials.values():
            partial.unlink(missing_ok=True)


def _load(args: argparse.Namespace) -> tuple[History, tuple[int | None, int | None]]:
    """Import the inputs as `perpsignal backtest` does (same importers, same range cut)."""
    from perpsignal_cli.backtesting.importers import (
        column_overrides,
        date_order,
        parse_column_map,
    )
    from perpsignal_cli.backtesting.pipeline import load_history
    from perpsignal_cli.backtesting.timerange import parse_timerange, restrict

    span = parse_timerange(args.timerange) if args.timerange else (None, None)
    paths = {
        flag[2:].replace("-", "_"): getattr(args, flag[2:].replace("-", "_"))
        for flag, _ in HISTORY_INPUTS
    }
    for path in (args.candles, *paths.values()):
        if path is not None and not path.is_file():
            raise FileNotFoundError(f"no such file: {path}")
    with column_overrides(parse_column_map(args.columns or [])), date_order(args.date_order):
        history = load_history(args.symbol.upper(), args.candles, timeframe=args.timeframe, **paths)
    if span != (None, None):
        history = restrict(history, *span)
    return history, span


def build_panel(
    history: History, horizon_s: float, costs: Costs, span: tuple[int | None, int | None]
) -> tuple[Panel, Config]:
    """Run the scoring engine once over `history` (the scorer's configuration: SCORER_* env
    or the defaults) and measure, at every scored bar, the net P&L of a LONG and of a SHORT
    at the horizon with the outcomes code (fees, slippage, settled funding); return the
    panel and the current configuration, the search's trial 0 (the judge's minimum
    confidence from JUDGE_* likewise)."""
    import numpy as np

    from perpsignal_cli.backtesting.pipeline import engine_config, rules_judge
    from perpsignal_common.events.market import FundingRateV1
    from perpsignal_common.events.signals import FACTOR_NAMES
    from perpsignal_domain.outcomes.evaluate import evaluate, settled_between, settlement_time
    from perpsignal_domain.research.calibration import Config, Panel, freshness_of
    from perpsignal_domain.scoring.engine import ScoringEngine

    cfg = engine_config(history.primary.timeframe)
    engine = ScoringEngine(cfg)
    lo = -math.inf if span[0] is None else span[0] / 1000
    hi = math.inf if span[1] is None else span[1] / 1000
    paths = [history.path_index(history.base)]
    if history.primary.timeframe != history.base.timeframe:
        paths.append(history.path_index(history.primary))
    funding = sorted(
        (settlement_time(e.observed_at.timestamp()), float(e.rate))
        for e in history.events
        if isinstance(e, FundingRateV1) and e.settled
    )
    f_t, f_r = [t for t, _ in funding], [r for _, r in funding]
    rows: list[tuple[float, list[float], list[bool], float, float, float]] = []
    for ev in history.events:
        for sig in engine.apply(ev):
            t = sig.observed_at.timestamp()
            if not lo <= t < hi:
                continue
            by: dict[str, Any] = {f.name: f for f in sig.factors}
            scores = [by[n].score for n in FACTOR_NAMES]
            ok = [by[n].status == "ok" for n in FACTOR_NAMES]
            fresh = freshness_of(sig.confidence, scores, [by[n].weight for n in FACTOR_NAMES], ok)
            entry_ms, due_ms = round(t * 1000), round((t + horizon_s) * 1000)
            long_pnl = short_pnl = math.nan
            for index in paths:  # finest first, as the backtest's outcomes
                path = index.path(entry_ms, due_ms)
                if path:
                    rates = settled_between(f_t, f_r, t, t + horizon_s)
                    long_ev = evaluate("LONG", sig.price, path, costs=costs, funding_rates=rates)
                    long_pnl = long_ev.net_pnl_pct
                    # a SHORT over the same path: the opposite move, the same fees and
                    # slippage (both legs at the same prices), the funding with its sign
                    # flipped (outcomes.evaluate's rules; a test holds it equal)
                    short_pnl = -long_ev.pnl_pct - long_ev.cost_pct + long_ev.funding_pct
                    break
            rows.append((t, scores, ok, fresh, long_pnl, short_pnl))
    panel = Panel(
        np.array([r[0] for r in rows], dtype=np.float64),
        np.array([r[1] for r in rows], dtype=np.float64).reshape(len(rows), len(FACTOR_NAMES)),
        np.array([r[2] for r in rows], dtype=bool).reshape(len(rows), len(FACTOR_NAMES)),
        np.array([r[3] for r in rows], dtype=np.float64),
        np.array([r[4] for r in rows], dtype=np.float64),
        np.array([r[5] for r in rows], dtype=np.float64),
        horizon_s,
    )
    current = Config(
        tuple(cfg.weights.get(n, 0.0) for n in FACTOR_NAMES),
        cfg.long_threshold,
        cfg.short_threshold,
        rules_judge().config.min_confidence,  # JUDGE_MIN_CONFIDENCE via the judge's settings
    )
    return panel, current


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


def _fig(f: Figures) -> dict[str, Any]:
    return {
        "n": f.n,
        "mean_net_pnl_pct": f.mean_net_pnl_pct,
        "win_rate": f.win_rate,
        "sharpe": f.sharpe,
        "total_net_pnl_pct": f.total_net_pnl_pct,
    }


def report(
    result: Calibration, space: Any, args: argparse.Namespace, history: History, gap_s: float
) -> dict[str, Any]:
    """Return calibration.json's content."""
    return {
        "headline": result.headline,
        "skill": result.skill,
        "recommendation": "apply calibrated.env" if result.skill else "keep the defaults",
        "run": {
            "symbol": history.symbol,
            "timeframe": history.primary.timeframe,
            "horizon": args.horizon,
            "objective": result.objective,
            "train_s": args.train,
            "test_s": args.test,
            "gap_s": gap_s,
            "anchored": args.anchored,
            "fee_bp": args.fee_bp,
            "slippage_bp": args.slippage_bp,
            "min_signals": args.min_signals,
            "win_rate": "share of taken signals with net P&L > 0",
        },
        "search_space": space.as_json(),
        "trials": result.trials,
        "searched_factors": list(result.searched),
        "folds": [
            {
                "fold": r.fold.index,
                "train": [_iso(r.fold.train_start), _iso(r.fold.train_end)],
                "test": [_iso(r.fold.test_start), _iso(r.fold.test_end)],
                "train_bars": r.train_bars,
                "test_bars": r.test_bars,
                "selected": r.best.as_json(),
                "in_sample": _fig(r.in_sample),
                "out_of_sample": _fig(r.out_of_sample),
                "current_out_of_sample": _fig(r.current_out_of_sample),
                "deflated_sharpe": r.deflated_sharpe,
            }
            for r in result.folds
        ],
        "pooled_out_of_sample": _fig(result.pooled),
        "pooled_current_out_of_sample": _fig(result.pooled_current),
        "oos_probabilistic_sharpe": result.oos_psr,
        "oos_block": result.oos_block,
        "final": {
            "config": result.final.as_json(),
            "in_sample": _fig(result.final_in_sample),
            "deflated_sharpe": result.final_deflated_sharpe,
        },
    }


def env_lines(config: Config) -> dict[str, str]:
    """Return the scorer/judge settings of `config` (names the settings classes read)."""
    from perpsignal_common.events.signals import FACTOR_NAMES

    weights = ",".join(f"{n}={w:g}" for n, w in zip(FACTOR_NAMES, config.weights, strict=True))
    return {
        "SCORER_WEIGHTS": weights,
        "SCORER_LONG_THRESHOLD": f"{config.long_threshold:g}",
        "SCORER_SHORT_THRESHOLD": f"{config.short_threshold:g}",
        "JUDGE_MIN_CONFIDENCE": f"{config.min_confidence:g}",
    }


def env_file(result: Calibration) -> str:
    """Return calibrated.env: a verdict comment first, then the settings."""
    head = ["# perpsignal calibrate: " + result.headline]
    if not result.skill:
        head.append("# RECOMMENDATION: keep the defaults (do not apply this file).")
    head.append("# Fitted on the most recent training window; see calibration.json.")
    return "\n".join([*head, *(f"{k}={v}" for k, v in env_lines(result.final).items())]) + "\n"


def _pct(x: float | None, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:+.{digits}f}"


def _rate(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.0f}%"


def terminal(result: Calibration, args: argparse.Namespace) -> str:
    """Return the terminal summary, the verdict in words first."""
    lines = [result.headline, ""]
    lines.append(
        f"objective: {result.objective} of net P&L per signal at {args.horizon}; "
        f"{result.trials} configurations per training window; weights searched for "
        f"{', '.join(result.searched) or 'no factor'} (the others have no input: kept)"
    )
    lines.append(
        "fold  test window (UTC)                    in-sample n / mean / win   "
        "out-of-sample n / mean / win   current OOS n / mean   DSR"
    )
    for r in result.folds:
        i, o, c = r.in_sample, r.out_of_sample, r.current_out_of_sample
        lines.append(
            f"{r.fold.index:>4}  {_iso(r.fold.test_start)[:16]} - {_iso(r.fold.test_end)[:16]}"
            f"   {i.n:>4} / {_pct(i.mean_net_pnl_pct)} / {_rate(i.win_rate):>4}"
            f"        {o.n:>4} / {_pct(o.mean_net_pnl_pct)} / {_rate(o.win_rate):>4}"
            f"       {c.n:>4} / {_pct(c.mean_net_pnl_pct)}"
            f"   {'n/a' if r.deflated_sharpe is None else f'{r.deflated_sharpe:.2f}'}"
        )
    p, c = result.pooled, result.pooled_current
    lines.append(
        f"pooled out-of-sample: n={p.n}, mean net {_pct(p.mean_net_pnl_pct)} %, win "
        f"{_rate(p.win_rate)}, total {p.total_net_pnl_pct:+.2f} %; current configuration "
        f"on the same windows: n={c.n}, mean net {_pct(c.mean_net_pnl_pct)} %"
    )
    psr = "n/a" if result.oos_psr is None else f"{result.oos_psr:.2f}"
    lines.append(f"P(out-of-sample Sharpe > 0) = {psr} (blocks of {result.oos_block} signals)")
    env = env_lines(result.final)
    lines.append(
        "fitted on the most recent window: " + " ".join(f"{k}={v}" for k, v in env.items())
    )
    if not result.skill:
        lines.append("recommendation: keep the defaults")
    return "\n".join(lines)


__all__ = ["build_parser", "main", "write_pair"]
