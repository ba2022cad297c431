"""The research statistics: detection power, honest width under overlap, permutation tests."""

from __future__ import annotations

import numpy as np
import pytest

from perpsignal_domain.research import stats

BARS = 1500
H = 16  # a 4h horizon on 15m bars: each forward return shares 15 of 16 bars with the next


def _market(seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Per-bar returns and the overlapping forward H-bar return from each bar."""
    rng = np.random.default_rng(seed)
    bars = rng.normal(0.0, 0.3, BARS + H)
    forward = np.array([bars[t + 1 : t + 1 + H].sum() for t in range(BARS)])
    return bars, forward


def _informed_factor(forward: np.ndarray, seed: int = 4) -> np.ndarray:
    """A 0-100 sub-score that knows a little of the future (IC about 0.3) plus noise."""
    rng = np.random.default_rng(seed)
    z = forward / forward.std() * 0.3 + rng.normal(0.0, 1.0, forward.size)
    return np.asarray(
        np.clip(50.0 + 10.0 * z, 0.0, 100.0).round()
    )  # integer scores: ties, as in the scorer


def test_a_factor_with_information_is_detected_and_a_shuffled_one_is_not() -> None:
    _, forward = _market()
    factor = _informed_factor(forward)
    block = stats.overlap_block_length(np.arange(BARS) * 900.0, H * 900.0)
    assert block == H

    ic, ci = stats.information_coefficient(factor - 50, forward, block=block, reps=500)
    assert ic is not None
    assert ci is not None
    assert 0.2 < ic < 0.4
    assert stats.excludes_zero(ci)
    assert ci[0] > 0

    shuffled = np.random.default_rng(11).permutation(factor)
    ic_s, ci_s = stats.information_coefficient(shuffled - 50, forward, block=block, reps=500)
    assert ic_s is not None
    assert abs(ic_s) < 0.1
    assert ci_s is not None
    assert not stats.excludes_zero(ci_s)


def test_overlapping_window_intervals_are_wider_than_naive_ones() -> None:
    _, forward = _market()
    naive = stats.mean_ci(forward, block=1, reps=1000)
    honest = stats.mean_ci(forward, block=H, reps=1000)
    assert naive is not None
    assert honest is not None
    # overlapping sums of H bars: the true standard error is about sqrt(H) times the naive one
    assert honest[1] - honest[0] > 2.0 * (naive[1] - naive[0])
    hac = stats.hac_mean_ci(forward, lags=H)
    assert hac is not None
    assert hac[1] - hac[0] > 2.0 * (naive[1] - naive[0])


def test_spearman_averages_tied_ranks() -> None:
    # ranks of x: 1, 2.5, 2.5, 4; of y: 1, 2, 3, 4 -> Pearson of those ranks
    r = stats.spearman([1, 2, 2, 3], [10, 20, 30, 40])
    assert r == pytest.approx(np.corrcoef([1, 2.5, 2.5, 4], [1, 2, 3, 4])[0, 1])
    assert stats.spearman([5, 5, 5, 5], [1, 2, 3, 4]) is None


def test_placebo_p_value_separates_skill_from_luck() -> None:
    _, forward = _market()
    rng = np.random.default_rng(5)
    skilled = np.where(forward + rng.normal(0, forward.std() * 2, BARS) > 0, 1.0, -1.0)
    coin = np.where(rng.random(BARS) < 0.5, 1.0, -1.0)
    p_skill = stats.placebo_p_value(skilled, forward, block=H, reps=999)
    p_coin = stats.placebo_p_value(coin, forward, block=H, reps=999)
    assert p_skill is not None
    assert p_coin is not None
    assert p_skill < 0.01
    assert p_coin > 0.05


def test_paired_p_value_and_group_difference() -> None:
    _, forward = _market()
    better = np.abs(forward) * 0.2 + np.random.default_rng(8).normal(0, 0.1, BARS)
    assert stats.paired_p_value(better, block=H, reps=999) == pytest.approx(1 / 1000)
    rng = np.random.default_rng(9)
    coin_a, coin_b = (np.where(rng.random(BARS) < 0.5, 1.0, -1.0) for _ in range(2))
    p_null = stats.paired_p_value((coin_a - coin_b) * forward, block=H, reps=999)
    assert p_null is not None
    assert p_null > 0.05

    in_a = np.zeros(BARS)
    in_a[::5] = 1.0
    values = forward + in_a * 5.0  # the "CONFIRM" rows earn 5 more
    diff, ci = stats.group_difference_ci(values, in_a, 1.0 - in_a, block=H, reps=500)
    assert diff is not None
    assert ci is not None
    assert ci[0] < diff < ci[1]
    assert ci[0] > 3.0
    assert stats.group_difference_ci(values, np.zeros(BARS), in_a, block=H) == (None, None)


def test_block_resampling_keeps_consecutive_runs() -> None:
    rng = np.random.default_rng(0)
    idx = stats.block_indices(10, 4, 3, rng)
    assert idx.shape == (3, 10)
    steps = np.diff(idx, axis=1) % 10
    assert (steps[:, :3] == 1).all()  # the first block is 4 consecutive (circular) indices
    perm = stats.block_permutations(10, 4, 5, rng)
    assert sorted(perm[0].tolist()) == list(range(10))


def test_the_sums_shortcut_gives_the_resampling_interval_exactly() -> None:
    _, forward = _market()
    x = forward[:301]  # n not a multiple of the block: the last block is cut
    by_sums = stats.mean_ci(x, block=H, reps=300, seed=5)
    by_index = stats.block_bootstrap_ci([x], lambda r: r.mean(axis=1), block=H, reps=300, seed=5)
    assert by_sums is not None
    assert by_index is not None
    assert by_sums == pytest.approx(by_index, rel=1e-9)


def test_a_nan_outcome_makes_the_figures_undefined_not_significant() -> None:
    """Every comparison with NaN is False: one NaN return made the placebo and the paired
    tests count "no placebo did as well" and report p = 1/(1 + reps) = 0.0005, the
    strongest evidence of skill they give, for random sides; the IC came out a number."""
    rng = np.random.default_rng(3)
    returns = rng.normal(0.0, 1.0, 300)
    sides = np.where(rng.random(300) < 0.5, 1.0, -1.0)  # random: no skill
    clean = stats.placebo_p_value(sides, sides * returns, block=4)
    assert clean is not None and clean > 0.05
    returns[120] = np.nan
    assert stats.placebo_p_value(sides, sides * returns, block=4) is None
    assert stats.paired_p_value(returns, block=4) is None
    assert stats.information_coefficient(sides, returns, block=4) == (None, None)
    assert stats.spearman(sides, returns) is None
    assert stats.hac_mean_ci(returns, lags=4) is None
    assert stats.mean_ci(returns, block=4) is None
    assert stats.group_difference_ci(returns, sides > 0, sides < 0, block=4) == (None, None)
    returns[120] = np.inf
    assert stats.placebo_p_value(sides, sides * returns, block=4) is None
