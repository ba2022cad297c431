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
from typing import Any

import numpy as np
from numpy.typing import NDArray

from perpsignal_cli.backtesting import baselines
from perpsignal_cli.backtesting.columns import DIRECTIONS, RESULTS, VERDICTS, SignalTable
from perpsignal_cli.backtesting.pipeline import PathIndex
from perpsignal_common.events.signals import FACTOR_NAMES
from perpsignal_domain.outcomes.evaluate import HORIZON_SECONDS
from perpsignal_domain.research import stats

ALPHA = 0.05
IC_REPS = 1000


def _r(x: float | None, nd: int = 4) -> float | None:
    return None if x is None else round(x, nd)


def _ci(ci: tuple[float, float] | None, nd: int = 4) -> list[float | None] | None:
    return None if ci is None else [_r(ci[0], nd), _r(ci[1], nd)]


def forward_returns(table: SignalTable, index: PathIndex, horizon: str) -> NDArray[np.float64]:
    """Return each signal's long return % over `horizon` (NaN where the path is incomplete).

    The outcomes' path window (`window_sorted`: a complete run of candles from the signal
    to the horizon), vectorised: two binary searches per signal over the candles' open
    times, and the count the aligned steps require; the exit is the window's last close.
    """
    t_ms = table.t_ms()
    n = t_ms.size
    out = np.full(n, np.nan)
    if n == 0 or not len(index):
        return out
    step = index.step_ms
    due = t_ms + int(HORIZON_SECONDS[horizon]) * 1000
    opens = np.asarray(index.open_ms, dtype=np.int64)
    lo = np.searchsorted(opens, t_ms, side="left")
    hi = np.searchsorted(opens, due - step, side="right")
    expected = np.maximum(0, due // step - (-(-t_ms // step)))
    ok = (expected >= 1) & (hi - lo == expected)
    closes = np.asarray(index.closes, dtype=np.float64)
    exit_price = closes[np.where(ok, hi - 1, 0)]
    price = table.col("price")
    # pnl_pct("LONG", entry, exit) for every complete window: the same IEEE operations in
    # the same order, element-wise (the tests hold it equal to pnl_pct bit for bit)
    out[ok] = (exit_price[ok] - price[ok]) / price[ok] * 100.0
    return out


def factor_diagnostics(
    table: SignalTable,
    index: PathIndex,
    horizons: Sequence[str],
    seed: int = stats.DEFAULT_SEED,
) -> dict[str, Any]:
    """Return per factor its mean sub-score (when `ok`) and IC per horizon with interval."""
    forwards = {h: forward_returns(table, index, h) for h in horizons}
    t_s = table.col("t_s")
    out: dict[str, Any] = {}
    for name in FACTOR_NAMES:
        score, ok = table.factor(name)
        row: dict[str, Any] = {
            "mean_score": _r(pystats.fmean(score[ok].tolist()), 2) if ok.any() else None,
            "n_ok": int(ok.sum()),
            "n_signals": len(table),
            "ic": {},
        }
        for h in horizons:
            use = ok & ~np.isnan(forwards[h])
            row["ic"][h] = _ic_entry(t_s[use], score[use] - 50.0, forwards[h][use], h, seed)
        out[name] = row
    return out


def _ic_entry(
    t: NDArray[np.float64],
    x: NDArray[np.float64],
    y: NDArray[np.float64],
    horizon: str,
    seed: int,
) -> dict[str, Any]:
    n = int(t.size)
    if n < 10:
        return {"ic": None, "ci95": None, "n": n, "block": None, "excludes_zero": False}
    block = stats.overlap_block_length(t, HORIZON_SECONDS[horizon])
    ic, ci = stats.information_coefficient(x, y, block=block, reps=IC_REPS, seed=seed)
    return {
        "ic": _r(ic),
        "ci95": _ci(ci),
        "n": n,
        "block": block,
        "excludes_zero": stats.excludes_zero(ci),
    }


def _directional(table: SignalTable, horizon: str) -> NDArray[np.intp]:
    """Indices of the directional signals measured at `horizon`, in time order."""
    d = table.col("direction")
    m = table.outcome(horizon)["measured"] & (d != DIRECTIONS.index("NEUTRAL"))
    idx = np.flatnonzero(m)
    order = np.argsort(table.col("t_s")[idx], kind="stable")
    return idx[order]


def horizon_statistics(
    table: SignalTable,
    history_base: Any,
    index: PathIndex,
    horizon: str,
    seed: int = stats.DEFAULT_SEED,
) -> dict[str, Any]:
    """Return win rate, mean P&L, placebo/paired p-values and judge lift at one horizon."""
    rows = _directional(table, horizon)
    n = int(rows.size)
    out: dict[str, Any] = {"horizon": horizon, "n": n}
    if n < 10:
        out["skill"] = None
        out["note"] = f"{n} directional outcomes: too few to test"
        return out
    oc = table.outcome(horizon)
    t = table.col("t_s")[rows]
    block = stats.overlap_block_length(t, HORIZON_SECONDS[horizon])
    pnl = oc["pnl"][rows]
    net = oc["net"][rows]
    win = (oc["result"][rows] == RESULTS.index("WIN")).astype(np.float64)
    sides = np.where(table.col("direction")[rows] == DIRECTIONS.index("LONG"), 1.0, -1.0)
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
            **_paired(table, rows, pnl, history_base, index, horizon, block, seed),
        },
        judge_lift=_lift(table.col("verdict")[rows], pnl, win, block, seed),
    )
    out["skill"] = bool(
        placebo is not None and placebo < ALPHA and mean_ci is not None and mean_ci[0] > 0
    )
    return out


def _paired(
    table: SignalTable,
    rows: NDArray[np.intp],
    pnl: Any,
    history_base: Any,
    index: PathIndex,
    horizon: str,
    block: int,
    seed: int,
) -> dict[str, float | None]:
    """One-sided p that the signals beat each baseline traded at the same times."""
    entries = list(zip(table.t_ms()[rows].tolist(), table.col("price")[rows].tolist(), strict=True))
    at = {t: i for i, (t, _) in enumerate(entries)}
    out: dict[str, float | None] = {}
    for name, trades in (
        ("momentum", baselines.momentum(history_base, index, entries, horizon)),
        ("always_long", baselines.always_long(index, entries, horizon)),
    ):
        diffs = [pnl[at[tr.entry_ms]] - tr.evaluation.pnl_pct for tr in trades]
        out[name] = _r(stats.paired_p_value(diffs, block=block, seed=seed))
    return out


def _lift(verdicts: Any, pnl: Any, win: Any, block: int, seed: int) -> dict[str, Any]:
    confirm = (verdicts == VERDICTS.index("CONFIRM")).astype(float)
    skip = (verdicts == VERDICTS.index("SKIP")).astype(float)
    everyone = np.ones(len(verdicts))
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
    table: SignalTable,
    history_base: Any,
    index: PathIndex,
    horizons: Sequence[str],
    seed: int = stats.DEFAULT_SEED,
) -> dict[str, Any]:
    """Return the per-horizon statistics and the plain-words verdict for the top of the report."""
    per = [horizon_statistics(table, history_base, index, h, seed) for h in horizons]
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
