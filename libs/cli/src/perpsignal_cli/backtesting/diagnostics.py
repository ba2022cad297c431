"""Factor diagnostics and honest statistics of a backtest (report.json `factor_diagnostics`,
`statistics`); the arithmetic is `perpsignal_domain.research.stats` (definitions in BACKTEST.md).

* Forward return of a scored bar: the long P&L % from the signal's price to the close at
  `observed_at + horizon` (the outcomes' path), for every signal, NEUTRAL ones included.
* Information coefficient (IC) of a factor at a horizon: Spearman correlation of its
  sub-score - 50 with the forward return, over the signals where the factor was `ok`; its
  95 % interval is a circular block bootstrap with blocks of `overlap_block_length` signals.
* Skill at a horizon: the directional signals' mean P&L interval lies above 0 *and* the block
  placebo (sides permuted in blocks against the same market returns) gives p < 0.05.
* Judge lift: mean P&L (and win rate) of CONFIRM minus SKIP, and CONFIRM minus every
  directional signal, with block-bootstrap intervals of the difference.
"""

from __future__ import annotations

import statistics as pystats
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import numpy as np

from perpsignal_cli.backtesting import baselines
from perpsignal_cli.backtesting.pipeline import PathIndex, SignalRecord
from perpsignal_common.events.signals import FACTOR_NAMES
from perpsignal_domain.outcomes.evaluate import HORIZON_SECONDS, pnl_pct, window_sorted
from perpsignal_domain.research import stats

ALPHA = 0.05
IC_REPS = 1000


def _r(x: float | None, nd: int = 4) -> float | None:
    return None if x is None else round(x, nd)


def _ci(ci: tuple[float, float] | None, nd: int = 4) -> list[float | None] | None:
    return None if ci is None else [_r(ci[0], nd), _r(ci[1], nd)]


def _t_s(rec: SignalRecord) -> float:
    return rec.judged.observed_at.timestamp()


def forward_returns(
    records: Sequence[SignalRecord], index: PathIndex, horizon: str
) -> list[float | None]:
    """Return each signal's long return % over `horizon` (None where the path is incomplete)."""
    h = timedelta(seconds=HORIZON_SECONDS[horizon])
    out: list[float | None] = []
    for rec in records:
        at = rec.judged.observed_at
        # the outcomes' path window (two binary searches); its last close is the exit
        found = window_sorted(index.times, at, at + h, index.step)
        exit_price = None if found is None else index.candles[found[1] - 1].close
        out.append(None if exit_price is None else pnl_pct("LONG", rec.judged.price, exit_price))
    return out


def factor_diagnostics(
    records: Sequence[SignalRecord],
    index: PathIndex,
    horizons: Sequence[str],
    seed: int = stats.DEFAULT_SEED,
) -> dict[str, Any]:
    """Return per factor its mean sub-score (when `ok`) and IC per horizon with interval."""
    forwards = {h: forward_returns(records, index, h) for h in horizons}
    out: dict[str, Any] = {}
    for name in FACTOR_NAMES:
        scores: list[float | None] = []
        for rec in records:
            f = next((f for f in rec.judged.factors if f.name == name), None)
            scores.append(f.score if f is not None and f.status == "ok" else None)
        ok = [s for s in scores if s is not None]
        row: dict[str, Any] = {
            "mean_score": _r(pystats.fmean(ok), 2) if ok else None,
            "n_ok": len(ok),
            "n_signals": len(records),
            "ic": {},
        }
        for h in horizons:
            pairs = [
                (_t_s(rec), s - 50.0, fwd)
                for rec, s, fwd in zip(records, scores, forwards[h], strict=True)
                if s is not None and fwd is not None
            ]
            row["ic"][h] = _ic_entry(pairs, h, seed)
        out[name] = row
    return out


def _ic_entry(pairs: list[tuple[float, float, float]], horizon: str, seed: int) -> dict[str, Any]:
    n = len(pairs)
    if n < 10:
        return {"ic": None, "ci95": None, "n": n, "block": None, "excludes_zero": False}
    t, x, y = (np.array(c) for c in zip(*pairs, strict=True))
    block = stats.overlap_block_length(t, HORIZON_SECONDS[horizon])
    ic, ci = stats.information_coefficient(x, y, block=block, reps=IC_REPS, seed=seed)
    return {
        "ic": _r(ic),
        "ci95": _ci(ci),
        "n": n,
        "block": block,
        "excludes_zero": stats.excludes_zero(ci),
    }


def _directional(records: Sequence[SignalRecord], horizon: str) -> list[tuple[SignalRecord, Any]]:
    out = []
    for rec in sorted(records, key=_t_s):
        o = rec.outcomes.get(horizon)
        if o is not None and rec.judged.direction in ("LONG", "SHORT"):
            out.append((rec, o.evaluation))
    return out


def horizon_statistics(
    records: Sequence[SignalRecord],
    history_base: Any,
    index: PathIndex,
    horizon: str,
    seed: int = stats.DEFAULT_SEED,
) -> dict[str, Any]:
    """Return win rate, mean P&L, placebo/paired p-values and judge lift at one horizon."""
    rows = _directional(records, horizon)
    n = len(rows)
    out: dict[str, Any] = {"horizon": horizon, "n": n}
    if n < 10:
        out["skill"] = None
        out["note"] = f"{n} directional outcomes: too few to test"
        return out
    t = np.array([_t_s(r) for r, _ in rows])
    block = stats.overlap_block_length(t, HORIZON_SECONDS[horizon])
    pnl = np.array([e.pnl_pct for _, e in rows])
    net = np.array([e.net_pnl_pct for _, e in rows])
    win = np.array([1.0 if e.result == "WIN" else 0.0 for _, e in rows])
    sides = np.array([1.0 if r.judged.direction == "LONG" else -1.0 for r, _ in rows])
    mean_ci = stats.mean_ci(pnl, block=block, seed=seed)
    placebo = stats.placebo_p_value(sides, pnl * sides, block=block, seed=seed)
    out.update(
        block=block,
        win_rate=_r(float(win.mean())),
        win_rate_ci95_overlap=_ci(stats.mean_ci(win, block=block, seed=seed)),
        win_rate_ci95_naive=_ci(stats.mean_ci(win, block=1, seed=seed)),
        mean_pnl_pct=_r(float(pnl.mean())),
        mean_pnl_ci95=_ci(mean_ci),
        mean_pnl_hac_ci95=_ci(stats.hac_mean_ci(pnl, lags=block)),
        mean_net_pnl_pct=_r(float(net.mean())),
        mean_net_pnl_ci95=_ci(stats.mean_ci(net, block=block, seed=seed)),
        p_values={
            "random_direction": _r(placebo),
            **_paired(rows, pnl, history_base, index, horizon, block, seed),
        },
        judge_lift=_lift(rows, pnl, win, block, seed),
    )
    out["skill"] = bool(
        placebo is not None and placebo < ALPHA and mean_ci is not None and mean_ci[0] > 0
    )
    return out


def _paired(
    rows: list[tuple[SignalRecord, Any]],
    pnl: Any,
    history_base: Any,
    index: PathIndex,
    horizon: str,
    block: int,
    seed: int,
) -> dict[str, float | None]:
    """One-sided p that the signals beat each baseline traded at the same times."""
    entries = [(round(_t_s(r) * 1000), r.judged.price) for r, _ in rows]
    at = {t: i for i, (t, _) in enumerate(entries)}
    out: dict[str, float | None] = {}
    for name, trades in (
        ("momentum", baselines.momentum(history_base, index, entries, horizon)),
        ("always_long", baselines.always_long(index, entries, horizon)),
    ):
        diffs = [pnl[at[tr.entry_ms]] - tr.evaluation.pnl_pct for tr in trades]
        out[name] = _r(stats.paired_p_value(diffs, block=block, seed=seed))
    return out


def _lift(
    rows: list[tuple[SignalRecord, Any]], pnl: Any, win: Any, block: int, seed: int
) -> dict[str, Any]:
    verdict = np.array([r.judged.ai_verdict_layer.verdict for r, _ in rows])
    confirm = (verdict == "CONFIRM").astype(float)
    skip = (verdict == "SKIP").astype(float)
    everyone = np.ones(len(rows))
    out: dict[str, Any] = {"n_confirm": int(confirm.sum()), "n_skip": int(skip.sum())}
    for label, other in (("confirm_minus_skip", skip), ("confirm_minus_all", everyone)):
        d_pnl, ci_pnl = stats.group_difference_ci(pnl, confirm, other, block=block, seed=seed)
        d_win, ci_win = stats.group_difference_ci(win, confirm, other, block=block, seed=seed)
        out[label] = {
            "pnl_pct": _r(d_pnl),
            "pnl_ci95": _ci(ci_pnl),
            "win_rate": _r(d_win),
            "win_rate_ci95": _ci(ci_win),
        }
    return out


def statistics_block(
    records: Sequence[SignalRecord],
    history_base: Any,
    index: PathIndex,
    horizons: Sequence[str],
    seed: int = stats.DEFAULT_SEED,
) -> dict[str, Any]:
    """Return the per-horizon statistics and the plain-words verdict for the top of the report."""
    per = [horizon_statistics(records, history_base, index, h, seed) for h in horizons]
    return {"alpha": ALPHA, "horizons": per, "headline": headline(per)}


def _evidence(p: dict[str, Any]) -> str:
    text = f"{p['horizon']}: placebo p={p['p_values']['random_direction']}"
    ci = p["mean_pnl_ci95"]
    if ci:
        text += f", mean P&L {p['mean_pnl_pct']:+.3f}% [{ci[0]:+.3f}, {ci[1]:+.3f}]"
    return text


def headline(per: Sequence[dict[str, Any]]) -> list[str]:
    """Return the report's opening sentences: skill or no skill, and whether CONFIRM occurred."""
    lines = []
    tested = [p for p in per if p.get("skill") is not None]
    skilled = [p["horizon"] for p in tested if p["skill"]]
    unskilled = [p for p in tested if not p["skill"]]
    if unskilled:
        ps = ", ".join(_evidence(p) for p in unskilled)
        lines.append(
            "NO EVIDENCE OF SKILL at "
            + ", ".join(p["horizon"] for p in unskilled)
            + ": the signals' P&L interval includes 0 or a random-direction placebo does as"
            f" well (p >= {ALPHA}) once overlapping windows are allowed for ({ps})."
        )
    if skilled:
        lines.append(
            "Evidence of skill at "
            + ", ".join(skilled)
            + f": mean P&L interval above 0 and placebo p < {ALPHA} (gross of costs; see net)."
        )
    if not tested:
        lines.append("Too few directional outcomes to test for skill at any horizon.")
    if tested and all(p["judge_lift"]["n_confirm"] == 0 for p in tested):
        lines.append(
            "CONFIRM never occurred in this run: the judge's lift cannot be measured "
            "(missing inputs cap the verdict; see the notes)."
        )
    return lines
