"""Walk-forward calibration of the factor weights and the signal/judge thresholds (pure numpy).

Why it is cheap: the scorer's composite is linear in its factors. `engine.composite` gives
contribution_i = w_i / 100 x (s_i - 50) and score = 50 + sum(contribution_i), so with the
eight sub-scores s_i of every scored bar in a matrix S, the scores of K weightings are one
product `50 + (S - 50) @ W.T / 100`. Confidence is as cheap: completeness = ok-mask @ w / 100,
agreement = |net| / gross of the same contributions, and freshness does not depend on the
weights (it is read back once from each signal). So the engine runs ONCE over the history
(`Panel`: sub-scores, statuses, freshness and each bar's net LONG and SHORT P&L at the
horizon), and every configuration of the search is a few array operations, not a replay.
`tests/unit/backtest/test_calibration.py` holds the re-weighted score, direction and
confidence equal to what the engine gives when it runs with those weights.

What a configuration is (the search space, `SearchSpace`):
* factor weights: a flat Dirichlet draw over the factors the history scored, rounded to
  multiples of `weight_step` (largest remainders), the factors it never scored (no input
  given) keeping their current weights, sum 100; trial 0 is always the current weights;
* a symmetric direction threshold: LONG at score >= 50 + d, SHORT at <= 50 - d
  (SCORER_LONG_THRESHOLD / SCORER_SHORT_THRESHOLD), d from `offsets`;
* the judge's minimum confidence (JUDGE_MIN_CONFIDENCE, rule 2: below it a signal is
  SKIP), from `min_confidences`.
A signal is *taken* when it is directional and its confidence reaches the minimum; its
P&L is the net P&L % (fees, slippage, funding) of that side at the horizon, exactly what
the outcomes code measures. The judge's other rules (conflicts, gaps, volatility) are left
as they are and are not part of the objective: they do not depend on the weights.

Walk-forward (`walk_forward_splits`): consecutive test windows, each after a training window
(rolling: the last `train_s`; anchored: everything from the start), separated by a purge gap
of at least the horizon: a training signal's label (its P&L) ends at t + horizon, so every
training label ends before the test window starts and none overlaps test data. The
objective (mean net P&L per taken signal, or its Sharpe ratio) picks the best configuration
on each training window; only the following test window's figures count as evidence.

Multiple testing: the best of N configurations looks good by chance. `deflated_sharpe`
(Bailey & Lopez de Prado 2014) is the probability that the selected in-sample Sharpe ratio
beats the expected maximum of N skill-less trials; `probabilistic_sharpe` the probability
that the pooled out-of-sample Sharpe is above 0. Both count observations as independent
blocks (`stats.overlap_block_length`): overlapping horizon windows are not n samples.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from perpsignal_common.events.signals import FACTOR_NAMES
from perpsignal_domain.research.stats import overlap_block_length

Array = NDArray[np.float64]
Objective = Literal["sharpe", "mean"]
_N = NormalDist()
EULER_GAMMA = 0.5772156649015329


@dataclass(frozen=True)
class Panel:
    """Every scored bar of a history, once: what any weighting needs.

    `scores` and `ok` are (n, 8) in FACTOR_NAMES order; `long_pnl`/`short_pnl` the net P&L
    % of a LONG/SHORT entered at the bar at the horizon (NaN: no complete path).
    """

    times: Array  # epoch seconds of each bar, ascending
    scores: Array
    ok: NDArray[np.bool_]
    freshness: Array
    long_pnl: Array
    short_pnl: Array
    horizon_s: float

    def __post_init__(self) -> None:
        n = self.times.size
        if self.scores.shape != (n, len(FACTOR_NAMES)) or self.ok.shape != self.scores.shape:
            raise ValueError("scores and ok must be (bars, 8)")
        if not (self.freshness.size == self.long_pnl.size == self.short_pnl.size == n):
            raise ValueError("every column needs one value per bar")
        if n and np.any(np.diff(self.times) < 0):
            raise ValueError("bars must be in time order")

    def __len__(self) -> int:
        return int(self.times.size)

    def take(self, mask: NDArray[np.bool_]) -> Panel:
        """Return the bars where `mask` holds."""
        return Panel(
            self.times[mask],
            self.scores[mask],
            self.ok[mask],
            self.freshness[mask],
            self.long_pnl[mask],
            self.short_pnl[mask],
            self.horizon_s,
        )


def freshness_of(
    confidence: float, scores: Sequence[float], weights: Sequence[float], ok: Sequence[bool]
) -> float:
    """Return the (weight-independent) freshness term a signal's confidence implies.

    confidence = 100 x completeness x (0.4 + 0.6 agreement) x (0.8 + 0.2 freshness)
    (engine.composite), solved for freshness from the signal's own weights and sub-scores;
    0 where nothing is usable (the confidence is 0 whatever the freshness).
    """
    c = [w / 100.0 * (s - 50.0) for s, w in zip(scores, weights, strict=True)]
    gross = sum(abs(x) for x in c)
    agreement = abs(sum(c)) / gross if gross > 1e-12 else 0.0
    completeness = sum(w for w, k in zip(weights, ok, strict=True) if k) / 100.0
    base = 100.0 * completeness * (0.4 + 0.6 * agreement)
    if base <= 1e-9:
        return 0.0
    f = (confidence / base - 0.8) / 0.2
    return min(1.0, max(0.0, f))


@dataclass(frozen=True)
class Config:
    """One point of the search: weights (FACTOR_NAMES order, sum 100) and thresholds."""

    weights: tuple[float, ...]
    long_threshold: float
    short_threshold: float
    min_confidence: float

    def as_json(self) -> dict[str, Any]:
        """Return the configuration with the weights by factor name."""
        return {
            "weights": dict(zip(FACTOR_NAMES, self.weights, strict=True)),
            "long_threshold": self.long_threshold,
            "short_threshold": self.short_threshold,
            "min_confidence": self.min_confidence,
        }


@dataclass(frozen=True)
class SearchSpace:
    """The bounded, seeded random search (see the module doc)."""

    trials: int = 200
    seed: int = 7
    weight_step: float = 5.0
    offsets: tuple[float, ...] = (5.0, 10.0, 15.0, 20.0, 25.0)
    min_confidences: tuple[float, ...] = (0.0, 20.0, 35.0, 50.0, 65.0)

    def configs(self, current: Config, free: Sequence[bool] | None = None) -> list[Config]:
        """Return `trials` configurations, the first one `current`.

        `free`: per factor, whether its weight is searched (default all). A factor the
        history never scored (no input given) keeps its current weight: its sub-score is
        always 50, so the history says nothing about it, and live it will have data.
        """
        rng = np.random.default_rng(self.seed)
        mask = np.array(free if free is not None else [True] * len(FACTOR_NAMES), dtype=bool)
        fixed = np.where(mask, 0.0, np.asarray(current.weights, dtype=np.float64))
        budget = 100.0 - float(fixed.sum())
        units = int(budget // self.weight_step)
        leftover = budget - units * self.weight_step
        out = [current]
        for _ in range(max(0, self.trials - 1)):
            weights = fixed.copy()
            if mask.any():
                raw = rng.dirichlet(np.ones(int(mask.sum()))) * units
                whole = np.floor(raw)
                short = int(units - whole.sum())
                whole[np.argsort(-(raw - whole), kind="stable")[:short]] += 1
                part = whole * self.weight_step
                part[int(np.argmax(raw))] += leftover
                weights[mask] = part
            d = float(rng.choice(self.offsets))
            out.append(
                Config(
                    tuple(float(x) for x in weights),
                    50.0 + d,
                    50.0 - d,
                    float(rng.choice(self.min_confidences)),
                )
            )
        return out

    def as_json(self) -> dict[str, Any]:
        """Describe the space (for calibration.json)."""
        return {
            "method": "seeded random search",
            "trials": self.trials,
            "seed": self.seed,
            "weights": f"100 x Dirichlet(1,...,1) over the factors the history scored, "
            f"rounded to multiples of {self.weight_step:g} (sum 100 with the others' "
            "current weights, kept); trial 0 = the current weights",
            "thresholds": [f"LONG >= {50 + d:g}, SHORT <= {50 - d:g}" for d in self.offsets],
            "min_confidence": list(self.min_confidences),
        }


def evaluate_configs(panel: Panel, configs: Sequence[Config]) -> tuple[Array, Array]:
    """Return, per bar and configuration, the side (+1/-1/0 = not taken) and its net P&L
    (NaN when not taken or unmeasured): arrays of shape (bars, configs)."""
    w = np.array([c.weights for c in configs], dtype=np.float64).T / 100.0  # (8, K)
    dev = panel.scores - 50.0
    net = dev @ w
    gross = np.abs(dev) @ w  # |w dev| = w |dev| for w >= 0
    score = np.clip(50.0 + net, 0.0, 100.0)
    agreement = np.where(gross > 1e-12, np.abs(net) / np.where(gross > 1e-12, gross, 1.0), 0.0)
    completeness = panel.ok.astype(np.float64) @ w
    confidence = np.clip(
        100.0 * completeness * (0.4 + 0.6 * agreement) * (0.8 + 0.2 * panel.freshness[:, None]),
        0.0,
        100.0,
    )
    long_t = np.array([c.long_threshold for c in configs])
    short_t = np.array([c.short_threshold for c in configs])
    min_c = np.array([c.min_confidence for c in configs])
    side = np.where(score >= long_t, 1.0, np.where(score <= short_t, -1.0, 0.0))
    side = np.where(confidence >= min_c, side, 0.0)
    pnl = np.where(
        side > 0, panel.long_pnl[:, None], np.where(side < 0, panel.short_pnl[:, None], np.nan)
    )
    return side, pnl


def score_direction_confidence(panel: Panel, config: Config) -> tuple[Array, Array, Array]:
    """Return the score, direction (+1/-1/0 by the thresholds) and confidence of every bar
    under `config`: what the engine's composite gives with those weights."""
    w = np.asarray(config.weights, dtype=np.float64) / 100.0
    dev = panel.scores - 50.0
    net = dev @ w
    gross = np.abs(dev) @ w
    score = np.clip(50.0 + net, 0.0, 100.0)
    agreement = np.where(gross > 1e-12, np.abs(net) / np.where(gross > 1e-12, gross, 1.0), 0.0)
    confidence = np.clip(
        100.0 * (panel.ok @ w) * (0.4 + 0.6 * agreement) * (0.8 + 0.2 * panel.freshness),
        0.0,
        100.0,
    )
    direction = np.where(
        score >= config.long_threshold, 1, np.where(score <= config.short_threshold, -1, 0)
    )
    return score, direction.astype(np.float64), confidence


def objective_values(pnl: Array, objective: Objective, min_signals: int) -> Array:
    """Return each configuration's objective over its taken signals (-inf with fewer than
    `min_signals`): mean net P&L %, or mean / standard deviation (per-signal Sharpe)."""
    taken = np.isfinite(pnl)
    n = taken.sum(axis=0)
    filled = np.where(taken, pnl, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = filled.sum(axis=0) / n
        if objective == "mean":
            value = mean
        else:
            var = (np.where(taken, pnl - mean, 0.0) ** 2).sum(axis=0) / np.maximum(n - 1, 1)
            sd = np.sqrt(var)
            value = np.where(sd > 1e-12, mean / np.where(sd > 1e-12, sd, 1.0), 0.0)
    return np.where((n >= max(2, min_signals)) & np.isfinite(value), value, -np.inf)


@dataclass(frozen=True)
class Fold:
    """One walk-forward split in epoch seconds: train [train_start, train_end), a purge
    gap, then test [test_start, test_end)."""

    index: int
    train_start: float
    train_end: float
    test_start: float
    test_end: float

    def train_mask(self, times: Array, horizon_s: float) -> NDArray[np.bool_]:
        """Training bars: inside the training window and labelled before the test starts."""
        return (
            (times >= self.train_start)
            & (times < self.train_end)
            & (times + horizon_s <= self.test_start)
        )

    def test_mask(self, times: Array) -> NDArray[np.bool_]:
        """Test bars."""
        return (times >= self.test_start) & (times < self.test_end)


def walk_forward_splits(
    start: float,
    end: float,
    *,
    train_s: float,
    test_s: float,
    gap_s: float,
    folds: int = 0,
    anchored: bool = False,
) -> list[Fold]:
    """Return consecutive folds over [start, end): test windows of `test_s` one after the
    other from `start + train_s + gap_s`, each after its training window and a purge gap of
    `gap_s` (>= the longest outcome horizon). `folds` > 0 keeps the last `folds` of them
    (the most recent market); 0 keeps all that fit."""
    if train_s <= 0 or test_s <= 0 or gap_s < 0:
        raise ValueError("train and test must be positive, the gap >= 0")
    out: list[Fold] = []
    test_start = start + train_s + gap_s
    while test_start + test_s <= end + 1e-9:
        train_end = test_start - gap_s
        out.append(
            Fold(
                len(out),
                start if anchored else train_end - train_s,
                train_end,
                test_start,
                test_start + test_s,
            )
        )
        test_start += test_s
    if folds > 0:
        out = out[-folds:]
    return [
        Fold(i, f.train_start, f.train_end, f.test_start, f.test_end) for i, f in enumerate(out)
    ]


def sharpe(values: Array) -> float | None:
    """Per-observation Sharpe ratio (mean / sample standard deviation); None below 2 values
    or without dispersion."""
    v = values[np.isfinite(values)]
    if v.size < 2:
        return None
    sd = float(v.std(ddof=1))
    return float(v.mean()) / sd if sd > 1e-12 else None


def _moments(values: Array) -> tuple[float, float]:
    """Return skewness and (non-excess) kurtosis of `values` (normal: 0 and 3)."""
    v = values - values.mean()
    m2 = float((v**2).mean())
    if m2 <= 0:
        return 0.0, 3.0
    return float((v**3).mean()) / m2**1.5, float((v**4).mean()) / m2**2


def probabilistic_sharpe(
    values: Array, benchmark: float = 0.0, n_eff: float | None = None
) -> float | None:
    """Probability that the true Sharpe ratio exceeds `benchmark` (Bailey & Lopez de Prado
    2012), with skewness and kurtosis of the returns; `n_eff` the effective number of
    independent observations (default: all)."""
    v = values[np.isfinite(values)]
    sr = sharpe(v)
    if sr is None:
        return None
    skew, kurt = _moments(v)
    t = float(n_eff if n_eff is not None else v.size)
    if t <= 1:
        return None
    denom = 1.0 - skew * sr + (kurt - 1.0) / 4.0 * sr * sr
    if denom <= 0:
        return None
    return _N.cdf((sr - benchmark) * math.sqrt(t - 1.0) / math.sqrt(denom))


def expected_max_sharpe(trial_sharpes: Array) -> float:
    """The Sharpe ratio the best of N skill-less trials reaches by chance (False Strategy
    Theorem): sqrt(V) ((1 - gamma) z(1 - 1/N) + gamma z(1 - 1/(N e)))."""
    s = trial_sharpes[np.isfinite(trial_sharpes)]
    n = s.size
    if n < 2:
        return 0.0
    sd = float(s.std(ddof=1))
    return sd * (
        (1.0 - EULER_GAMMA) * _N.inv_cdf(1.0 - 1.0 / n)
        + EULER_GAMMA * _N.inv_cdf(1.0 - 1.0 / (n * math.e))
    )


def deflated_sharpe(
    selected: Array, trial_sharpes: Array, n_eff: float | None = None
) -> float | None:
    """Deflated Sharpe ratio: the probability that the selected configuration's Sharpe
    beats the expected best of the trials' (Bailey & Lopez de Prado 2014)."""
    return probabilistic_sharpe(selected, expected_max_sharpe(trial_sharpes), n_eff)


@dataclass
class Figures:
    """Taken signals' figures in one window."""

    n: int
    mean_net_pnl_pct: float | None
    win_rate: float | None  # share with net P&L > 0
    sharpe: float | None
    total_net_pnl_pct: float

    @classmethod
    def of(cls, pnl: Array) -> Figures:
        """Figures of the taken signals' net P&L (NaN = not taken)."""
        v = pnl[np.isfinite(pnl)]
        return cls(
            int(v.size),
            float(v.mean()) if v.size else None,
            float((v > 0).mean()) if v.size else None,
            sharpe(v),
            float(v.sum()),
        )


@dataclass
class FoldResult:
    """One fold: its windows, the selected configuration, in-sample and test figures."""

    fold: Fold
    best: Config
    in_sample: Figures
    out_of_sample: Figures
    current_out_of_sample: Figures  # the current (trial 0) configuration on the same window
    deflated_sharpe: float | None
    train_bars: int
    test_bars: int
    oos_pnl: Array = field(repr=False)
    oos_times: Array = field(repr=False)
    current_oos_pnl: Array = field(repr=False)


@dataclass
class Calibration:
    """A walk-forward calibration's outcome."""

    folds: list[FoldResult]
    trials: int
    objective: Objective
    pooled: Figures
    pooled_current: Figures
    oos_psr: float | None  # P(pooled OOS Sharpe > 0), overlap-aware
    oos_block: int
    searched: tuple[str, ...]  # factors whose weights were searched (the others kept)
    final: Config  # fitted on the most recent training window: what to apply
    final_in_sample: Figures
    final_deflated_sharpe: float | None
    skill: bool
    headline: str


def _fit(
    panel: Panel, configs: Sequence[Config], objective: Objective, min_signals: int
) -> tuple[int, Array, Array]:
    """Return the index of the best configuration, every trial's objective and P&L."""
    _, pnl = evaluate_configs(panel, configs)
    values = objective_values(pnl, objective, min_signals)
    best = int(np.argmax(values)) if np.isfinite(values).any() else 0
    return best, values, pnl


def _deflated(panel: Panel, pnl: Array, best: int) -> float | None:
    taken = np.isfinite(pnl[:, best])
    if taken.sum() < 2:
        return None
    sharpes = [sharpe(pnl[:, k]) for k in range(pnl.shape[1])]
    trial = np.array([np.nan if s is None else s for s in sharpes], dtype=np.float64)
    block = overlap_block_length(panel.times[taken], panel.horizon_s)
    return deflated_sharpe(pnl[taken, best], trial, taken.sum() / block)


def calibrate(
    panel: Panel,
    folds: Sequence[Fold],
    space: SearchSpace,
    current: Config,
    *,
    objective: Objective = "sharpe",
    min_signals: int = 10,
    final_train_s: float | None = None,
) -> Calibration:
    """Fit on each fold's (purged) training bars, measure on its test bars; pool the test
    windows; fit once more on the most recent training window (`final_train_s`, or all
    bars) for the configuration to apply."""
    if not folds:
        raise ValueError("no fold fits: the history is shorter than train + gap + test")
    searched = [bool(panel.ok[:, k].any()) for k in range(len(FACTOR_NAMES))]
    configs = space.configs(current, searched)
    results: list[FoldResult] = []
    for fold in folds:
        train = panel.take(fold.train_mask(panel.times, panel.horizon_s))
        test = panel.take(fold.test_mask(panel.times))
        best, _, pnl = _fit(train, configs, objective, min_signals)
        _, test_pnl = evaluate_configs(test, [configs[best], configs[0]])
        results.append(
            FoldResult(
                fold,
                configs[best],
                Figures.of(pnl[:, best]),
                Figures.of(test_pnl[:, 0]),
                Figures.of(test_pnl[:, 1]),
                _deflated(train, pnl, best),
                len(train),
                len(test),
                test_pnl[:, 0],
                test.times,
                test_pnl[:, 1],
            )
        )
    oos = np.concatenate([r.oos_pnl for r in results])
    oos_t = np.concatenate([r.oos_times for r in results])
    cur = np.concatenate([r.current_oos_pnl for r in results])
    taken = np.isfinite(oos)
    block = overlap_block_length(oos_t[taken], panel.horizon_s) if taken.any() else 1
    psr = probabilistic_sharpe(oos[taken], 0.0, taken.sum() / block) if taken.any() else None
    pooled = Figures.of(oos)
    # the configuration to apply: fitted on the newest training window (labels complete)
    end = float(panel.times[-1]) if len(panel) else 0.0
    start = end - final_train_s if final_train_s else -math.inf
    recent = panel.take((panel.times >= start) & np.isfinite(panel.long_pnl))
    best, _, pnl = _fit(recent, configs, objective, min_signals)
    skill = bool(
        psr is not None
        and psr >= 0.95
        and pooled.mean_net_pnl_pct is not None
        and pooled.mean_net_pnl_pct > 0
    )
    headline = _headline(skill, pooled, psr, len(configs), len(results))
    return Calibration(
        results,
        len(configs),
        objective,
        pooled,
        Figures.of(cur),
        psr,
        block,
        tuple(n for n, k in zip(FACTOR_NAMES, searched, strict=True) if k),
        configs[best],
        Figures.of(pnl[:, best]),
        _deflated(recent, pnl, best),
        skill,
        headline,
    )


def _headline(skill: bool, pooled: Figures, psr: float | None, trials: int, folds: int) -> str:
    mean = "n/a" if pooled.mean_net_pnl_pct is None else f"{pooled.mean_net_pnl_pct:+.3f} %"
    p = "n/a" if psr is None else f"{psr:.2f}"
    if skill:
        return (
            f"OUT-OF-SAMPLE SKILL: over {folds} unseen test windows the fitted configurations "
            f"made {mean} net per signal (n={pooled.n}), P(Sharpe > 0) = {p} after "
            f"{trials} configurations tried per fold."
        )
    return (
        f"NO EVIDENCE OF SKILL out of sample: over {folds} unseen test windows the fitted "
        f"configurations made {mean} net per signal (n={pooled.n}), P(Sharpe > 0) = {p} "
        f"(needs >= 0.95) after {trials} configurations tried per fold. Keep the defaults; "
        "calibrated.env is written for the record, not to be applied."
    )
