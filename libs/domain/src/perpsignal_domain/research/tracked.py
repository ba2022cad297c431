"""Factor information and judge lift over tracked outcomes (the live side of the backtest's
`factor_diagnostics` and `judge_lift`; the arithmetic is `stats`).

Input: one horizon's measured outcomes of directional signals, in any order (sorted here by
entry time, which the block bootstrap needs), possibly of many symbols at once.

* Block length: `stats.overlap_block_length` of the pooled entry times over the horizon, so
  outcomes whose windows overlap, of one symbol or of several (crypto moves together), fall
  in one block and are never counted as independent.
* Factor information: Spearman IC of the factor's sub-score - 50 with the long return over
  the horizon (the signal's gross P&L times its side), over outcomes where the factor was
  `ok`; block-bootstrap 95 % interval. Mean sub-score over the same outcomes.
* Judge lift: mean gross P&L % and win rate of CONFIRM minus SKIP, and CONFIRM minus every
  directional outcome, with block-bootstrap intervals (`stats.group_difference_ci`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from perpsignal_domain.research import stats

MIN_OUTCOMES = 10  # below this an IC or a lift is not reported (None)


@dataclass(frozen=True, slots=True)
class FactorInfo:
    """One factor at one horizon."""

    factor: str
    n: int  # outcomes where the factor had data
    mean_score: float | None
    ic: float | None
    ic_ci: tuple[float, float] | None

    @property
    def excludes_zero(self) -> bool:
        """True when the interval lies wholly on one side of 0 (measurable information)."""
        return stats.excludes_zero(self.ic_ci)


@dataclass(frozen=True, slots=True)
class Difference:
    """Group A minus group B: mean P&L % and win rate (fraction), with 95 % intervals."""

    n_a: int
    n_b: int
    pnl_pct: float | None
    pnl_ci: tuple[float, float] | None
    win_rate: float | None
    win_rate_ci: tuple[float, float] | None


@dataclass(frozen=True, slots=True)
class HorizonResearch:
    """Everything measured at one horizon."""

    n: int
    block: int
    factors: list[FactorInfo]
    confirm_minus_skip: Difference
    confirm_minus_all: Difference


def _order(times_s: Sequence[float]) -> np.ndarray:
    return np.argsort(np.asarray(times_s, dtype=np.float64), kind="stable")


def research_horizon(
    times_s: Sequence[float],
    horizon_s: float,
    sides: Sequence[int],
    pnl_pct: Sequence[float],
    wins: Sequence[bool],
    verdicts: Sequence[str],
    scores: Mapping[str, Sequence[float | None]],
    *,
    reps: int = 1000,
    seed: int = stats.DEFAULT_SEED,
) -> HorizonResearch:
    """Return factor information and judge lift of one horizon's outcomes (see module doc)."""
    order = _order(times_s)
    t = np.asarray(times_s, dtype=np.float64)[order]
    pnl = np.asarray(pnl_pct, dtype=np.float64)[order]
    long_ret = pnl * np.asarray(sides, dtype=np.float64)[order]
    win = np.asarray(wins, dtype=np.float64)[order]
    verdict = np.asarray(verdicts, dtype=object)[order]
    n = int(t.size)
    block = stats.overlap_block_length(t, horizon_s)
    factors = []
    for name, column in scores.items():
        s = [column[i] for i in order]
        ok = np.array([v is not None for v in s], dtype=bool)
        x = np.array([v if v is not None else math.nan for v in s], dtype=np.float64)[ok]
        mean = float(x.mean()) if x.size else None
        ic: float | None = None
        ci = None
        if x.size >= MIN_OUTCOMES:
            b = stats.overlap_block_length(t[ok], horizon_s)
            ic, ci = stats.information_coefficient(
                x - 50.0, long_ret[ok], block=b, reps=reps, seed=seed
            )
        factors.append(FactorInfo(name, int(x.size), mean, ic, ci))
    confirm = (verdict == "CONFIRM").astype(np.float64)
    skip = (verdict == "SKIP").astype(np.float64)
    everyone = np.ones(n)

    def diff(other: np.ndarray) -> Difference:
        n_a, n_b = int(confirm.sum()), int(other.sum())
        if n < MIN_OUTCOMES or n_a == 0 or n_b == 0:
            return Difference(n_a, n_b, None, None, None, None)
        d_pnl, ci_pnl = stats.group_difference_ci(
            pnl, confirm, other, block=block, reps=reps, seed=seed
        )
        d_win, ci_win = stats.group_difference_ci(
            win, confirm, other, block=block, reps=reps, seed=seed
        )
        return Difference(n_a, n_b, d_pnl, ci_pnl, d_win, ci_win)

    return HorizonResearch(n, block, factors, diff(skip), diff(everyone))
