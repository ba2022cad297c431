"""Honest statistics for overlapping signal outcomes (pure numpy; deterministic by seed).

Why not the textbook formulas: a 4h outcome measured every 15 minutes shares most of its path
with the next 15 outcomes, so n outcomes carry far fewer than n independent observations, and
Wilson or t intervals are too narrow. Everything here resamples or permutes *blocks* of
consecutive observations whose length covers the overlap, so the dependence survives:

* `overlap_block_length`: the mean number of observations inside one horizon window from each
  observation (= horizon / bar for an every-bar series); never below 1.
* `block_bootstrap_ci`: circular moving-block bootstrap (Politis & Romano 1992), percentile
  interval, of any statistic of paired columns.
* `spearman`, `information_coefficient`: rank correlation with tie-averaged ranks; the IC
  interval resamples the pairs of ranks by blocks.
* `placebo_p_value`: the signals' sides permuted in blocks against the market's returns (a
  placebo that keeps the sides' own runs and the returns' overlap); one-sided p of the mean
  directional return.
* `paired_p_value`: block sign-flip test of a paired difference (signals minus a baseline at
  the same times); one-sided p that the signals do better.
* `group_difference_ci`: difference of a group mean against another (CONFIRM - SKIP) under
  the same block bootstrap of the whole sequence.
* `hac_mean_ci`: Newey-West (Bartlett kernel) interval of a mean, a closed-form cross-check.

A NaN or infinite input makes a figure undefined (None), never a number: every comparison
with NaN is False, so a permutation test counted "no placebo did as well" and reported
p = 1/(1 + reps), the strongest evidence of skill it can give.

numpy only: scipy and arch are not in the lock, and arch's block bootstraps would bring
pandas, scipy and statsmodels into every image that ships the domain for ~60 lines of
arithmetic that the unit tests pin (a known-information factor is detected, a shuffled one is
not; overlapping intervals are wider than naive ones).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

Z95 = 1.959963984540054
DEFAULT_REPS = 2000
DEFAULT_SEED = 7
CHUNK_CELLS = 250_000

Array = NDArray[np.float64]
Interval = tuple[float, float]


def overlap_block_length(times_s: ArrayLike, horizon_s: float) -> int:
    """Return the mean count of observations within one horizon from each observation (>= 1)."""
    t = np.sort(np.asarray(times_s, dtype=np.float64))
    if t.size == 0:
        return 1
    inside = np.searchsorted(t, t + horizon_s, side="left") - np.arange(t.size)
    return max(1, math.ceil(float(inside.mean())))


def block_indices(n: int, block: int, reps: int, rng: np.random.Generator) -> NDArray[np.intp]:
    """Return `reps` rows of `n` circular moving-block bootstrap indices into 0..n-1."""
    block = max(1, min(block, n))
    per_row = -(-n // block)
    starts = rng.integers(0, n, size=(reps, per_row))
    idx = (starts[:, :, None] + np.arange(block)) % n
    return idx.reshape(reps, per_row * block)[:, :n]


def _finite(*arrays: Array) -> bool:
    return all(bool(np.isfinite(a).all()) for a in arrays)


def _percentile(values: Array, level: float = 0.95) -> Interval | None:
    ok = values[np.isfinite(values)]
    if ok.size < max(10, values.size // 2):  # the statistic is undefined in most resamples
        return None
    lo, hi = np.percentile(ok, [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)


def block_bootstrap_ci(
    columns: Sequence[ArrayLike],
    statistic: Callable[..., Array],
    *,
    block: int,
    reps: int = DEFAULT_REPS,
    seed: int = DEFAULT_SEED,
    level: float = 0.95,
) -> Interval | None:
    """Return the percentile interval of `statistic` under a circular block bootstrap.

    `statistic` takes the resampled columns, each shaped (reps, n), and returns (reps,)
    values (NaN where undefined). `block=1` is the ordinary (naive, i.i.d.) bootstrap.
    """
    cols = [np.asarray(c, dtype=np.float64) for c in columns]
    n = cols[0].size
    if n < 3:
        return None
    rng = np.random.default_rng(seed)
    # in chunks of about CHUNK_CELLS resampled values: memory stays flat for long histories
    values = []
    for size in _chunks(reps, n):
        idx = block_indices(n, block, size, rng)
        values.append(np.asarray(statistic(*(c[idx] for c in cols)), dtype=np.float64))
    return _percentile(np.concatenate(values), level)


def _window_sums(v: Array, length: int) -> Array:
    """Sums of `length` consecutive values from each index, wrapping around (circular)."""
    c = np.concatenate([[0.0], np.cumsum(np.concatenate([v, v[:length]]))])
    return np.asarray(c[length : length + v.size] - c[: v.size])


def block_bootstrap_sums_ci(
    columns: Sequence[ArrayLike],
    statistic: Callable[..., Array],
    *,
    block: int,
    reps: int = DEFAULT_REPS,
    seed: int = DEFAULT_SEED,
    level: float = 0.95,
) -> Interval | None:
    """`block_bootstrap_ci` of a statistic of column *sums*, without materialising resamples.

    The same resamples (same seed, same block starts), but each column's sum over a resample
    is the sum of its blocks' precomputed circular window sums: O(reps x n / block) instead of
    O(reps x n). `statistic` takes each column's (reps,) resample sums and `n`.
    """
    cols = [np.asarray(c, dtype=np.float64) for c in columns]
    n = cols[0].size
    if n < 3:
        return None
    block = max(1, min(block, n))
    per_row = -(-n // block)
    last = n - (per_row - 1) * block  # the final block is cut to n values
    full = [_window_sums(c, block) for c in cols]
    part = [_window_sums(c, last) for c in cols]
    rng = np.random.default_rng(seed)
    # block starts drawn in chunks of rows (the generator fills rows in order, so the
    # starts are the ones one draw of (reps, per_row) gives): memory stays flat for a
    # symbol-year of 1m signals (540k signals, 1h blocks: 9,000 starts per resample)
    chunks: list[list[Array]] = [[] for _ in cols]
    for size in _chunks(reps, per_row):
        starts = rng.integers(0, n, size=(size, per_row))
        for out, f, p in zip(chunks, full, part, strict=True):
            out.append(f[starts[:, :-1]].sum(axis=1) + p[starts[:, -1]])
    sums = [np.concatenate(c) for c in chunks]
    with np.errstate(invalid="ignore", divide="ignore"):
        return _percentile(np.asarray(statistic(*sums, n), dtype=np.float64), level)


def mean_ci(
    values: ArrayLike, *, block: int, reps: int = DEFAULT_REPS, seed: int = DEFAULT_SEED
) -> Interval | None:
    """Return the block-bootstrap 95 % interval of the mean of `values`."""
    return block_bootstrap_sums_ci([values], lambda s, n: s / n, block=block, reps=reps, seed=seed)


def _corr_of_sums(sx: Array, sy: Array, sxx: Array, syy: Array, sxy: Array, n: int) -> Array:
    cov = sxy - sx * sy / n
    den = np.sqrt(np.maximum(sxx - sx * sx / n, 0.0) * np.maximum(syy - sy * sy / n, 0.0))
    return np.where(den > 0, cov / np.where(den > 0, den, 1.0), np.nan)


def hac_mean_ci(values: ArrayLike, lags: int) -> Interval | None:
    """Return the Newey-West (Bartlett, `lags`) 95 % interval of the mean of `values`."""
    x = np.asarray(values, dtype=np.float64)
    n = x.size
    if n < 3 or not _finite(x):
        return None
    e = x - x.mean()
    var = float(e @ e) / n
    for k in range(1, min(lags, n - 1) + 1):
        var += 2.0 * (1.0 - k / (lags + 1)) * float(e[k:] @ e[:-k]) / n
    se = math.sqrt(max(var, 0.0) / n)
    m = float(x.mean())
    return m - Z95 * se, m + Z95 * se


def _avg_ranks_rows(values: Array) -> Array:
    """Tie-averaged ranks (1-based) of each row of `values` (reps, n)."""
    uniq, codes = np.unique(values, return_inverse=True)
    return _ranks_of_codes(codes.reshape(values.shape), uniq.size)


def _ranks_of_codes(codes: NDArray[np.intp], k: int) -> Array:
    """Tie-averaged ranks of rows of value codes 0..k-1 (codes keep the values' order)."""
    reps = codes.shape[0]
    flat = (codes + np.arange(reps)[:, None] * k).ravel()
    counts = np.bincount(flat, minlength=reps * k).reshape(reps, k).astype(np.float64)
    below = np.cumsum(counts, axis=1) - counts
    rank_of = below + (counts + 1.0) / 2.0
    return np.take_along_axis(rank_of, codes, axis=1)


def _row_corr(a: Array, b: Array) -> Array:
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    den = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (a * b).sum(axis=1) / np.where(den > 0, den, 1.0), np.nan)


def spearman_rows(x: Array, y: Array) -> Array:
    """Return the Spearman correlation of each row pair of `x` and `y` (NaN without variance)."""
    return _row_corr(_avg_ranks_rows(x), _avg_ranks_rows(y))


def spearman(x: ArrayLike, y: ArrayLike) -> float | None:
    """Return Spearman's rank correlation of `x` and `y`, or None without variance or data."""
    return _spearman_ranked(x, y)[0]


def _spearman_ranked(x: ArrayLike, y: ArrayLike) -> tuple[float | None, Array, Array]:
    """Return `spearman(x, y)` and the tie-averaged ranks of `x` and `y` it used."""
    a = np.asarray(x, dtype=np.float64)[None, :]
    b = np.asarray(y, dtype=np.float64)[None, :]
    if a.size < 3 or not _finite(a, b):
        return None, a[0], b[0]
    ra, rb = _avg_ranks_rows(a), _avg_ranks_rows(b)
    r = float(_row_corr(ra, rb)[0])
    return (None if math.isnan(r) else r), ra[0], rb[0]


def information_coefficient(
    signal: ArrayLike,
    forward: ArrayLike,
    *,
    block: int,
    reps: int = 1000,
    seed: int = DEFAULT_SEED,
) -> tuple[float | None, Interval | None]:
    """Return the Spearman IC of `signal` with `forward` returns and its block-bootstrap CI."""
    ic, ranks, franks = _spearman_ranked(signal, forward)
    if ic is None:
        return None, None
    # the interval resamples the pairs of full-sample ranks (the usual shortcut: a resample's
    # own ranks differ only by the ties its duplicates add, O(1/n)); a gather per resample
    return ic, block_bootstrap_sums_ci(
        [ranks, franks, ranks * ranks, franks * franks, ranks * franks],
        _corr_of_sums,
        block=block,
        reps=reps,
        seed=seed,
    )


def block_permutations(n: int, block: int, reps: int, rng: np.random.Generator) -> NDArray[np.intp]:
    """Return `reps` rows of 0..n-1 with consecutive blocks of `block` shuffled as wholes."""
    block = max(1, min(block, n))
    starts = np.arange(0, n, block)
    order = np.argsort(rng.random((reps, starts.size)), axis=1)
    idx = (starts[order][:, :, None] + np.arange(block)).reshape(reps, -1)
    # the last block may be short: drop its overhang, every row keeps exactly n indices
    return idx[idx < n].reshape(reps, n)


def placebo_p_value(
    sides: ArrayLike,
    market_returns: ArrayLike,
    *,
    block: int,
    reps: int = DEFAULT_REPS,
    seed: int = DEFAULT_SEED,
) -> float | None:
    """Return the one-sided p of mean(side x return) against block-permuted sides.

    `sides` are +1 (LONG) / -1 (SHORT), `market_returns` the long return over the horizon
    from each signal. p is (1 + #placebo >= observed) / (1 + reps), never 0.
    """
    s = np.asarray(sides, dtype=np.float64)
    r = np.asarray(market_returns, dtype=np.float64)
    if s.size < 3 or not _finite(s, r):
        return None
    observed = float((s * r).mean())
    rng = np.random.default_rng(seed)
    at_least = 0
    for size in _chunks(reps, s.size):
        placebo = (s[block_permutations(s.size, block, size, rng)] * r).mean(axis=1)
        at_least += int(np.count_nonzero(placebo >= observed - 1e-12))
    return (1 + at_least) / (1 + reps)


def _chunks(reps: int, n: int) -> list[int]:
    per = max(1, CHUNK_CELLS // max(1, n))
    return [min(per, reps - done) for done in range(0, reps, per)]


def paired_p_value(
    differences: ArrayLike,
    *,
    block: int,
    reps: int = DEFAULT_REPS,
    seed: int = DEFAULT_SEED,
) -> float | None:
    """Return the one-sided p that mean(differences) > 0, by block sign flips.

    Under the null the two strategies are exchangeable at each time; flipping whole blocks
    keeps the overlap of neighbouring windows.
    """
    d = np.asarray(differences, dtype=np.float64)
    n = d.size
    if n < 3 or not _finite(d):
        return None
    block = max(1, min(block, n))
    blocks = -(-n // block)
    rng = np.random.default_rng(seed)
    observed = float(d.mean())
    at_least = 0
    for size in _chunks(reps, n):
        signs = np.repeat(rng.choice([-1.0, 1.0], size=(size, blocks)), block, axis=1)[:, :n]
        at_least += int(np.count_nonzero((signs * d).mean(axis=1) >= observed - 1e-12))
    return (1 + at_least) / (1 + reps)


def group_difference_ci(
    values: ArrayLike,
    in_a: ArrayLike,
    in_b: ArrayLike,
    *,
    block: int,
    reps: int = DEFAULT_REPS,
    seed: int = DEFAULT_SEED,
) -> tuple[float | None, Interval | None]:
    """Return mean(values | a) - mean(values | b) and its block-bootstrap interval.

    The groups are subsets of one time-ordered sequence (e.g. CONFIRM vs SKIP verdicts);
    the whole sequence is resampled, so both groups keep their shared market path.
    """
    v = np.asarray(values, dtype=np.float64)
    a = np.asarray(in_a, dtype=np.float64)
    b = np.asarray(in_b, dtype=np.float64)
    if a.sum() < 1 or b.sum() < 1 or not _finite(v, a, b):
        return None, None
    point = float((v * a).sum() / a.sum() - (v * b).sum() / b.sum())

    def diff(sva: Array, sa: Array, svb: Array, sb: Array, _n: int) -> Array:
        return np.asarray(sva / sa - svb / sb)

    return point, block_bootstrap_sums_ci(
        [v * a, a, v * b, b], diff, block=block, reps=reps, seed=seed
    )


def excludes_zero(ci: Interval | None) -> bool:
    """Return True when the interval lies wholly above or wholly below 0."""
    return ci is not None and (ci[0] > 0 or ci[1] < 0)
