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
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from perpsignal_cli.backtesting import baselines, diagnostics
from perpsignal_cli.backtesting.importers import ms_to_dt
from perpsignal_cli.backtesting.pipeline import History, PathIndex, RunResult, SignalRecord
from perpsignal_common.events.signals import FACTOR_NAMES
from perpsignal_domain.outcomes.evaluate import HORIZON_SECONDS, NO_COSTS, Costs
from perpsignal_domain.research import stats as rstats

SMALL_SAMPLE = 30
Z95 = 1.959963984540054
VERDICTS = ("CONFIRM", "DOWNSIZE", "SKIP", "WAIT")
DIRECTIONS = ("LONG", "SHORT", "NEUTRAL")
LEAN = 5.0


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


def _measured(records: Iterable[SignalRecord], horizon: str) -> list[tuple[SignalRecord, Any]]:
    out = []
    for rec in records:
        o = rec.outcomes.get(horizon)
        if o is not None:
            out.append((rec, o))
    return out


def performance(records: Sequence[SignalRecord], horizons: Sequence[str]) -> list[dict[str, Any]]:
    """Return one row per verdict (and ALL) and horizon."""
    rows = []
    for h in horizons:
        measured = _measured(records, h)
        for verdict in ("ALL", *VERDICTS):
            grp = [
                (r, o)
                for r, o in measured
                if verdict == "ALL" or r.judged.ai_verdict_layer.verdict == verdict
            ]
            ev = [o.evaluation for _, o in grp]
            stats = group_stats(
                [e.pnl_pct for e in ev],
                [e.result for e in ev],
                [e.max_adverse_pct for e in ev],
                times_s=[r.judged.observed_at.timestamp() for r, _ in grp],
                horizon_s=HORIZON_SECONDS[h],
                net=[e.net_pnl_pct for e in ev],
            )
            stats["target_first"] = sum(1 for e in ev if e.first_hit == "target")
            stats["stop_first"] = sum(1 for e in ev if e.first_hit == "stop")
            rows.append({"verdict": verdict, "horizon": h, **stats})
    return rows


def calibration(records: Sequence[SignalRecord], horizons: Sequence[str]) -> list[dict[str, Any]]:
    """Return win rate with Wilson intervals per 10-point score bucket and horizon."""
    rows = []
    for h in horizons:
        buckets: dict[int, list[Any]] = {}
        for rec, o in _measured(records, h):
            b = min(9, int(rec.judged.score // 10))
            buckets.setdefault(b, []).append(o.evaluation)
        for b in sorted(buckets):
            ev = buckets[b]
            stats = group_stats([e.pnl_pct for e in ev], [e.result for e in ev])
            rows.append({"horizon": h, "score_from": b * 10, "score_to": b * 10 + 10, **stats})
    return rows


def _pearson(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    if len(xs) < 3:
        return None
    try:
        return statistics.correlation(xs, ys)
    except statistics.StatisticsError:  # no variance
        return None


def attribution(records: Sequence[SignalRecord], horizons: Sequence[str]) -> list[dict[str, Any]]:
    """Return, per factor and horizon, outcomes when the factor leaned with/against the trade."""
    rows = []
    for h in horizons:
        measured = _measured(records, h)
        for name in FACTOR_NAMES:
            groups: dict[str, tuple[list[float], list[str]]] = {
                k: ([], []) for k in ("with", "against", "neutral")
            }
            leans: list[float] = []
            pnls: list[float] = []
            ok = 0
            for rec, o in measured:
                f = next((f for f in rec.judged.factors if f.name == name), None)
                if f is None:
                    continue
                sign = 1.0 if rec.judged.direction == "LONG" else -1.0
                lean = (f.score - 50.0) * sign
                key = "with" if lean >= LEAN else "against" if lean <= -LEAN else "neutral"
                groups[key][0].append(o.evaluation.pnl_pct)
                groups[key][1].append(o.evaluation.result)
                if f.status == "ok":
                    ok += 1
                    leans.append(lean)
                    pnls.append(o.evaluation.pnl_pct)
            row: dict[str, Any] = {"factor": name, "horizon": h, "n_with_data": ok}
            for k, (p, r) in groups.items():
                s = group_stats(p, r)
                row[k] = {key: s[key] for key in ("n", "win_rate", "avg_pnl_pct", "small_sample")}
            row["lean_pnl_correlation"] = _r(_pearson(leans, pnls))
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


def equity(
    records: Sequence[SignalRecord],
    history: History,
    horizon: str,
    seed: int,
    index: PathIndex | None = None,
) -> dict[str, Any]:
    """Return the equity curves of CONFIRM (sized), all signals and the baselines."""
    measured = _measured(records, horizon)
    confirm, everything, entries = [], [], []
    for rec, o in measured:
        j = rec.judged
        t0 = round(j.observed_at.timestamp() * 1000)
        exit_ms = t0 + _h_ms(horizon)
        everything.append((exit_ms, o.evaluation.pnl_pct))
        entries.append((t0, j.price))
        layer = j.ai_verdict_layer
        if layer.verdict == "CONFIRM":
            vol = layer.volatility_metrics.recommended_position_multiplier or 1.0
            confirm.append((exit_ms, o.evaluation.pnl_pct * layer.position_multiplier * vol))
    index = index or PathIndex(history.base)
    rnd = baselines.random_direction(index, entries, horizon, seed)
    mom = baselines.momentum(history.base, index, entries, horizon)
    h_ms = _h_ms(horizon)
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
    from perpsignal_domain.outcomes.evaluate import HORIZON_SECONDS

    return int(HORIZON_SECONDS[horizon]) * 1000


def baseline_table(
    records: Sequence[SignalRecord],
    history: History,
    horizons: Sequence[str],
    seed: int,
    index: PathIndex | None = None,
) -> list[dict[str, Any]]:
    """Return per-trade stats of the signals and each baseline at the same times."""
    rows = []
    index = index or PathIndex(history.base)
    for h in horizons:
        measured = _measured(records, h)
        entries = [
            (round(r.judged.observed_at.timestamp() * 1000), r.judged.price) for r, _ in measured
        ]
        confirm = [
            o.evaluation for r, o in measured if r.judged.ai_verdict_layer.verdict == "CONFIRM"
        ]
        groups = {
            "all_signals": [o.evaluation for _, o in measured],
            "confirm": confirm,
            "random_direction": [
                t.evaluation for t in baselines.random_direction(index, entries, h, seed)
            ],
            "momentum": [t.evaluation for t in baselines.momentum(history.base, index, entries, h)],
            "always_long": [t.evaluation for t in baselines.always_long(index, entries, h)],
        }
        for name, ev in groups.items():
            rows.append(
                {
                    "strategy": name,
                    "horizon": h,
                    **group_stats([e.pnl_pct for e in ev], [e.result for e in ev]),
                }
            )
    return rows


def signal_row(rec: SignalRecord) -> dict[str, Any]:
    """Return the compact, deterministic record of one signal for report.json."""
    j = rec.judged
    layer = j.ai_verdict_layer
    vol = layer.volatility_metrics
    return {
        "signal_id": j.signal_id,
        "observed_at": j.observed_at.isoformat(),
        "direction": j.direction,
        "score": j.score,
        "confidence": j.confidence,
        "price": j.price,
        # the whole verdict layer, as the live product publishes it
        "verdict": layer.verdict,
        "risk_mode": layer.risk_mode,
        "judge": layer.judge,
        "model": layer.model,
        "fallback_reason": layer.fallback_reason,
        "suppressed": layer.suppressed,
        "ai_summary": layer.ai_summary,
        "agreements": list(layer.layer_checks.agreements),
        "conflicts": list(layer.layer_checks.conflicts),
        "position_multiplier": layer.position_multiplier,
        "atr": vol.atr,
        "atr_pct": vol.atr_pct,
        "volatility_class": vol.volatility_class,
        "volatility_multiplier": vol.recommended_position_multiplier,
        "stop_loss_price": vol.stop_loss_price,
        "take_profit_price": vol.take_profit_price,
        "risk_reward": vol.risk_reward,
        "trade_plan_summary": vol.trade_plan_summary,
        "top_factors": list(j.top_factors),
        "factors": {f.name: {"score": f.score, "status": f.status} for f in j.factors},
        "outcomes": {
            h: None
            if o is None
            else {
                "pnl_pct": round(o.evaluation.pnl_pct, 6),
                "net_pnl_pct": round(o.evaluation.net_pnl_pct, 6),
                "cost_pct": round(o.evaluation.cost_pct, 6),
                "funding_pct": round(o.evaluation.funding_pct, 6),
                "result": o.evaluation.result,
                "exit_price": o.evaluation.exit_price,
                "max_favorable_pct": round(o.evaluation.max_favorable_pct, 6),
                "max_adverse_pct": round(o.evaluation.max_adverse_pct, 6),
                "first_hit": o.evaluation.first_hit,
                "path_timeframe": o.path_timeframe,
            }
            for h, o in rec.outcomes.items()
        },
    }


def build_report(
    result: RunResult,
    history: History,
    *,
    horizons: Sequence[str],
    equity_horizon: str,
    seed: int = baselines.DEFAULT_SEED,
    costs: Costs = NO_COSTS,
) -> dict[str, Any]:
    """Return the whole report as JSON-ready data (deterministic apart from `generated`)."""
    records = result.records
    by_dv: dict[str, dict[str, int]] = {d: dict.fromkeys(VERDICTS, 0) for d in DIRECTIONS}
    for rec in records:
        by_dv[rec.judged.direction][rec.judged.ai_verdict_layer.verdict] += 1
    judges = Counter(r.judged.ai_verdict_layer.judge for r in records)
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
            "signals": len(records),
            "judges": dict(sorted(judges.items())),
            "horizons": list(horizons),
            "seed": seed,
            "small_sample_below": SMALL_SAMPLE,
            "costs": {
                "taker_fee_bp_per_side": costs.taker_fee_bp,
                "slippage_bp_per_side": costs.slippage_bp,
                "funding": "settled rates of the funding history over each holding window",
            },
        },
        "statistics": diagnostics.statistics_block(records, history.base, index, horizons, seed),
        "factor_diagnostics": diagnostics.factor_diagnostics(records, index, horizons, seed),
        "sources": [asdict(s) for s in history.sources],
        "notes": list(history.notes),
        "signals_by_direction_verdict": by_dv,
        "performance": performance(records, horizons),
        "calibration": calibration(records, horizons),
        "factor_attribution": attribution(records, horizons),
        "baselines": baseline_table(records, history, horizons, seed, index),
        "equity": equity(records, history, equity_horizon, seed, index),
        "signals": [signal_row(r) for r in records],
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
