"""The backtest report: summary tables as JSON-ready data, the terminal table, report.json.

Definitions (also in BACKTEST.md):

* win rate = WIN outcomes / all measured outcomes (NEUTRAL counts as not a win), with a 95 %
  Wilson interval (`win_rate_ci95`, naive: it treats overlapping windows as independent) and a
  block-bootstrap one (`win_rate_ci95_overlap`, blocks spanning one horizon of signals); any
  group with fewer than `SMALL_SAMPLE` outcomes is flagged `small_sample`.
* net P&L: after the run's `costs` (fees and slippage per side, funding over the window).
* `statistics` and `factor_diagnostics`: see `diagnostics.py` (skill tests, judge lift, IC).
* max adverse excursion: the worst (largest) MAE of the group, plus its mean.
* calibration: directional signals bucketed by score (10 points wide), win rate per bucket.
* factor attribution: per factor, a signal's lean = (sub-score - 50) x (+1 LONG, -1 SHORT);
  outcomes of signals whose factor leaned with the trade (lean >= 5), against it (<= -5) or
  neither, and the Pearson correlation of lean with P&L.
* equity: cumulative P&L in percentage points of one unit per trade, trades ordered by exit.
  CONFIRM follows the recommended size (verdict position multiplier x volatility multiplier);
  "all signals", random and momentum trade one unit at the same times; buy-and-hold is one
  unit held from the first signal.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from perpsignal_cli.backtesting import baselines, diagnostics
from perpsignal_cli.backtesting.columns import (
    DIRECTIONS,
    FIRST_HITS,
    SIGNALS_FILE,
    VERDICTS,
    SignalTable,
    result_names,
    signal_row,
    write_signals,
)
from perpsignal_cli.backtesting.importers import ms_to_dt
from perpsignal_cli.backtesting.pipeline import History, PathIndex, RunResult
from perpsignal_common.events.signals import FACTOR_NAMES
from perpsignal_domain.outcomes.evaluate import HORIZON_SECONDS, NO_COSTS, Costs
from perpsignal_domain.research import stats as rstats

SMALL_SAMPLE = 30
Z95 = 1.959963984540054
LEAN = 5.0
_V = {v: i for i, v in enumerate(VERDICTS)}
_D = {d: i for i, d in enumerate(DIRECTIONS)}
_HIT = {f: i for i, f in enumerate(FIRST_HITS)}
__all__ = ["SIGNALS_FILE", "build_report", "signal_row", "terminal_table", "write_signals"]


def wilson(wins: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """Return the Wilson score interval of a proportion, or None when n is 0."""
    if n == 0:
        return None
    p = wins / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def _r(x: float | None, nd: int = 4) -> float | None:
    return None if x is None else round(x, nd)


def group_stats(
    pnls: Sequence[float],
    results: Sequence[str],
    maes: Sequence[float] = (),
    *,
    times_s: Sequence[float] = (),
    horizon_s: float = 0.0,
    net: Sequence[float] = (),
) -> dict[str, Any]:
    """Return n, wins, win rate (+ Wilson CI), mean/median P&L and MAE of one group.

    With `times_s` (observation times) and `horizon_s`, also the overlap-aware win-rate
    interval; with `net`, the mean net P&L.
    """
    n = len(pnls)
    wins = sum(1 for r in results if r == "WIN")
    ci = wilson(wins, n)
    out: dict[str, Any] = {
        "n": n,
        "wins": wins,
        "losses": sum(1 for r in results if r == "LOSS"),
        "win_rate": _r(wins / n) if n else None,
        "win_rate_ci95": [_r(ci[0]), _r(ci[1])] if ci else None,
        "avg_pnl_pct": _r(statistics.fmean(pnls)) if n else None,
        "median_pnl_pct": _r(statistics.median(pnls)) if n else None,
        "total_pnl_pct": _r(sum(pnls)) if n else 0.0,
        "small_sample": n < SMALL_SAMPLE,
    }
    if times_s:
        block = rstats.overlap_block_length(times_s, horizon_s)
        wins01 = [1.0 if r == "WIN" else 0.0 for r in results]
        oci = rstats.mean_ci(wins01, block=block) if n >= 3 else None
        out["win_rate_ci95_overlap"] = [_r(oci[0]), _r(oci[1])] if oci else None
        out["overlap_block"] = block
    if net:
        out["avg_net_pnl_pct"] = _r(statistics.fmean(net))
        out["total_net_pnl_pct"] = _r(sum(net))
    if maes:
        out["max_adverse_pct"] = _r(max(maes))
        out["avg_adverse_pct"] = _r(statistics.fmean(maes))
    return out


def _grp_stats(table: SignalTable, h: str, g: Any, **kw: Any) -> dict[str, Any]:
    oc = table.outcome(h)
    return group_stats(oc["pnl"][g].tolist(), result_names(oc["result"][g]), **kw)


def performance(table: SignalTable, horizons: Sequence[str]) -> list[dict[str, Any]]:
    """Return one row per verdict (and ALL) and horizon."""
    rows = []
    verdict = table.col("verdict")
    t_s = table.col("t_s")
    for h in horizons:
        oc = table.outcome(h)
        for name in ("ALL", *VERDICTS):
            g = oc["measured"] if name == "ALL" else oc["measured"] & (verdict == _V[name])
            stats = group_stats(
                oc["pnl"][g].tolist(),
                result_names(oc["result"][g]),
                oc["mae"][g].tolist(),
                times_s=t_s[g].tolist(),
                horizon_s=HORIZON_SECONDS[h],
                net=oc["net"][g].tolist(),
            )
            hits = oc["first_hit"][g]
            stats["target_first"] = int(np.count_nonzero(hits == _HIT["target"]))
            stats["stop_first"] = int(np.count_nonzero(hits == _HIT["stop"]))
            rows.append({"verdict": name, "horizon": h, **stats})
    return rows


def calibration(table: SignalTable, horizons: Sequence[str]) -> list[dict[str, Any]]:
    """Return win rate with Wilson intervals per 10-point score bucket and horizon."""
    rows = []
    bucket = np.minimum(9, np.floor_divide(table.col("score"), 10)).astype(np.int64)
    for h in horizons:
        m = table.outcome(h)["measured"]
        for b in sorted(set(bucket[m].tolist())):
            stats = _grp_stats(table, h, m & (bucket == b))
            rows.append({"horizon": h, "score_from": b * 10, "score_to": b * 10 + 10, **stats})
    return rows


def _pearson(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    if len(xs) < 3:
        return None
    try:
        return statistics.correlation(xs, ys)
    except statistics.StatisticsError:  # no variance
        return None


def attribution(table: SignalTable, horizons: Sequence[str]) -> list[dict[str, Any]]:
    """Return, per factor and horizon, outcomes when the factor leaned with/against the trade."""
    rows = []
    sign = np.where(table.col("direction") == _D["LONG"], 1.0, -1.0)
    for h in horizons:
        oc = table.outcome(h)
        for name in FACTOR_NAMES:
            score, ok = table.factor(name)
            have = oc["measured"] & ~np.isnan(score)
            lean = (score - 50.0) * sign
            groups = {
                "with": have & (lean >= LEAN),
                "against": have & (lean <= -LEAN),
                "neutral": have & (lean > -LEAN) & (lean < LEAN),
            }
            used = have & ok
            row: dict[str, Any] = {"factor": name, "horizon": h, "n_with_data": int(used.sum())}
            for k, g in groups.items():
                st = _grp_stats(table, h, g)
                row[k] = {key: st[key] for key in ("n", "win_rate", "avg_pnl_pct", "small_sample")}
            row["lean_pnl_correlation"] = _r(
                _pearson(lean[used].tolist(), oc["pnl"][used].tolist())
            )
            rows.append(row)
    return rows


def _curve(trades: Sequence[tuple[int, float]]) -> dict[str, Any]:
    """Return the cumulative curve of (exit ms, P&L) trades with its drawdown."""
    cum = peak = dd = 0.0
    points = []
    for t, pnl in sorted(trades, key=lambda x: x[0]):
        cum += pnl
        peak = max(peak, cum)
        dd = max(dd, peak - cum)
        points.append([ms_to_dt(t).isoformat(), round(cum, 4)])
    return {
        "trades": len(points),
        "final_pct": round(cum, 4),
        "max_drawdown_pct": round(dd, 4),
        "points": points,
    }


def _entries(table: SignalTable, g: Any) -> list[tuple[int, float]]:
    return list(zip(table.t_ms()[g].tolist(), table.col("price")[g].tolist(), strict=True))


def equity(
    table: SignalTable,
    history: History,
    horizon: str,
    seed: int,
    index: PathIndex | None = None,
) -> dict[str, Any]:
    """Return the equity curves of CONFIRM (sized), all signals and the baselines."""
    oc = table.outcome(horizon)
    m = oc["measured"]
    h_ms = _h_ms(horizon)
    entries = _entries(table, m)
    exits = (table.t_ms()[m] + h_ms).tolist()
    everything = list(zip(exits, oc["pnl"][m].tolist(), strict=True))
    c = m & (table.col("verdict") == _V["CONFIRM"])
    confirm = list(
        zip(
            (table.t_ms()[c] + h_ms).tolist(),
            (oc["pnl"][c] * table.col("size")[c]).tolist(),
            strict=True,
        )
    )
    index = index or PathIndex(history.base)
    rnd = baselines.random_direction(index, entries, horizon, seed)
    mom = baselines.momentum(history.base, index, entries, horizon)
    hold = baselines.buy_and_hold(history.base, entries[0][0]) if entries else []
    out = {
        "horizon": horizon,
        "confirm_sized": _curve(confirm),
        "all_signals": _curve(everything),
        "random_direction": _curve([(t.entry_ms + h_ms, t.evaluation.pnl_pct) for t in rnd]),
        "momentum": _curve([(t.entry_ms + h_ms, t.evaluation.pnl_pct) for t in mom]),
    }
    # buy-and-hold is a price curve, not a sum of trades: thin it to at most ~500 points
    stride = max(1, len(hold) // 500)
    thin = hold[::stride] + ([hold[-1]] if hold and (len(hold) - 1) % stride else [])
    out["buy_and_hold"] = {
        "trades": 1 if hold else 0,
        "final_pct": round(hold[-1][1], 4) if hold else 0.0,
        "points": [[ms_to_dt(t).isoformat(), round(v, 4)] for t, v in thin],
    }
    return out


def _h_ms(horizon: str) -> int:
    return int(HORIZON_SECONDS[horizon]) * 1000


def baseline_table(
    table: SignalTable,
    history: History,
    horizons: Sequence[str],
    seed: int,
    index: PathIndex | None = None,
) -> list[dict[str, Any]]:
    """Return per-trade stats of the signals and each baseline at the same times."""
    rows = []
    index = index or PathIndex(history.base)
    verdict = table.col("verdict")
    for h in horizons:
        oc = table.outcome(h)
        m = oc["measured"]
        entries = _entries(table, m)
        groups: dict[str, tuple[list[float], list[str]]] = {
            "all_signals": (oc["pnl"][m].tolist(), result_names(oc["result"][m])),
            "confirm": (
                oc["pnl"][m & (verdict == _V["CONFIRM"])].tolist(),
                result_names(oc["result"][m & (verdict == _V["CONFIRM"])]),
            ),
        }
        for name, trades in (
            ("random_direction", baselines.random_direction(index, entries, h, seed)),
            ("momentum", baselines.momentum(history.base, index, entries, h)),
            ("always_long", baselines.always_long(index, entries, h)),
        ):
            groups[name] = (
                [t.evaluation.pnl_pct for t in trades],
                [t.evaluation.result for t in trades],
            )
        for name, (pnls, results) in groups.items():
            rows.append({"strategy": name, "horizon": h, **group_stats(pnls, results)})
    return rows


def build_report(
    result: RunResult,
    history: History,
    *,
    horizons: Sequence[str],
    equity_horizon: str,
    seed: int = baselines.DEFAULT_SEED,
    costs: Costs = NO_COSTS,
    table: SignalTable | None = None,
) -> dict[str, Any]:
    """Return the summary report as JSON-ready data (deterministic apart from `generated`).

    From `table` (what a streamed run's `SignalWriter` kept) or else `result.records`; the
    per-signal rows are signals.jsonl's (`columns.SignalWriter`, `write_signals`), not here.
    """
    if table is None:
        table = SignalTable.from_records(result.records, horizons)
    index = history.path_index(history.base)  # built once: 45k candles cost ~0.3 s each
    return {
        "generated": {
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "elapsed_s": round(result.elapsed_s, 3),
        },
        "run": {
            "symbol": history.symbol,
            "mode": result.mode,
            "timeframe": history.primary.timeframe,
            "candle_timeframe": history.base.timeframe,
            "candles": len(history.base),
            "events": result.events_total,
            "events_processed": result.events_done,
            "interrupted": result.interrupted,
            "signals": len(table),
            "signals_file": SIGNALS_FILE,
            "judges": dict(sorted(table.judges.items())),
            "horizons": list(horizons),
            "seed": seed,
            "small_sample_below": SMALL_SAMPLE,
            "costs": {
                "taker_fee_bp_per_side": costs.taker_fee_bp,
                "slippage_bp_per_side": costs.slippage_bp,
                "funding": "settled rates of the funding history over each holding window"
                if any(s.name == "funding" and s.events for s in history.sources)
                else "not charged: no funding history given (--funding); net P&L is gross "
                "minus fees and slippage, the funding paid is unknown",
            },
        },
        "statistics": diagnostics.statistics_block(table, history.base, index, horizons, seed),
        "factor_diagnostics": diagnostics.factor_diagnostics(table, index, horizons, seed),
        "sources": [asdict(s) for s in history.sources],
        "notes": list(history.notes),
        "signals_by_direction_verdict": table.by_direction_verdict,
        "performance": performance(table, horizons),
        "calibration": calibration(table, horizons),
        "factor_attribution": attribution(table, horizons),
        "baselines": baseline_table(table, history, horizons, seed, index),
        "equity": equity(table, history, equity_horizon, seed, index),
    }


def write_json(report: dict[str, Any], out: Path) -> Path:
    """Write report.json (sorted keys, so equal reports are equal files)."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "report.json"
    path.write_text(json.dumps(report, indent=1, sort_keys=True, allow_nan=False) + "\n")
    return path


def _fmt(x: Any, pct: bool = False) -> str:
    if x is None:
        return "-"
    if pct:
        return f"{x * 100:5.1f}%"
    return f"{x:+.3f}" if isinstance(x, float) else str(x)


def _factor_lines(diag: dict[str, Any], horizons: Sequence[str]) -> list[str]:
    if not diag:
        return []
    lines = [
        "",
        f"{'factor':<14} {'mean':>6} "
        + " ".join(f"{'IC ' + h + ' [95% CI]':>22}" for h in horizons),
    ]
    for name, row in diag.items():
        cells = []
        for h in horizons:
            ic = row["ic"].get(h) or {}
            ci = ic.get("ci95")
            cells.append(
                f"{ic['ic']:+.3f} [{ci[0]:+.2f},{ci[1]:+.2f}]"
                if ci and ic.get("ic") is not None
                else "-"
            )
        mean = "-" if row["mean_score"] is None else f"{row['mean_score']:.1f}"
        lines.append(f"{name:<14} {mean:>6} " + " ".join(f"{c:>22}" for c in cells))
    return lines


def terminal_table(report: dict[str, Any]) -> str:
    """Return the human summary printed at the end of a run."""
    run = report["run"]
    lines = [
        f"backtest {run['symbol']} {run['timeframe']} ({run['mode']}): {run['signals']} signals "
        f"from {run['candles']} {run['candle_timeframe']} candles"
        + ("  [INTERRUPTED: partial results]" if run["interrupted"] else ""),
    ]
    lines += [f"  {h}" for h in report.get("statistics", {}).get("headline", [])]
    lines += [f"  note: {n}" for n in report["notes"]]
    lines.append("")
    lines.append(f"{'direction':<9} " + " ".join(f"{v:>8}" for v in VERDICTS))
    for d, row in report["signals_by_direction_verdict"].items():
        lines.append(f"{d:<9} " + " ".join(f"{row[v]:>8}" for v in VERDICTS))
    lines.append("")
    lines.append(
        f"{'verdict':<9} {'h':>4} {'n':>6} {'win':>7} {'95% CI*':>15} "
        f"{'avg P&L%':>9} {'net P&L%':>9} {'max MAE%':>9}"
    )
    for r in report["performance"]:
        if r["n"] == 0:
            continue
        ci = r.get("win_rate_ci95_overlap") or r["win_rate_ci95"]
        ci_s = f"{ci[0] * 100:.0f}-{ci[1] * 100:.0f}%" if ci else "-"
        lines.append(
            f"{r['verdict']:<9} {r['horizon']:>4} {r['n']:>6} {_fmt(r['win_rate'], True):>7} "
            f"{ci_s:>15} {_fmt(r['avg_pnl_pct']):>9} {_fmt(r.get('avg_net_pnl_pct')):>9} "
            f"{_fmt(r.get('max_adverse_pct')):>9}"
            + ("  (small sample)" if r["small_sample"] else "")
        )
    lines.append("")
    lines.append(f"{'strategy':<17} {'h':>4} {'n':>6} {'win':>7} {'avg P&L%':>9} {'total':>10}")
    for r in report["baselines"]:
        lines.append(
            f"{r['strategy']:<17} {r['horizon']:>4} {r['n']:>6} {_fmt(r['win_rate'], True):>7} "
            f"{_fmt(r['avg_pnl_pct']):>9} {_fmt(r['total_pnl_pct']):>10}"
            + ("  (small sample)" if r["small_sample"] and r["n"] else "")
        )
    lines.append("* block bootstrap: overlapping outcome windows are not counted as independent")
    lines += _factor_lines(report.get("factor_diagnostics", {}), report["run"]["horizons"])
    eq = report["equity"]
    lines.append("")
    lines.append(
        f"equity @{eq['horizon']}: CONFIRM sized {eq['confirm_sized']['final_pct']:+.2f} pts "
        f"({eq['confirm_sized']['trades']} trades), all signals "
        f"{eq['all_signals']['final_pct']:+.2f} pts ({eq['all_signals']['trades']}), "
        f"random {eq['random_direction']['final_pct']:+.2f}, momentum "
        f"{eq['momentum']['final_pct']:+.2f}, buy-and-hold {eq['buy_and_hold']['final_pct']:+.2f}%"
    )
    return "\n".join(lines)
