"""The live research's statistics: a factor with known information is detected, a shuffled one
is not; a judge whose CONFIRM outcomes really are better shows a lift interval above 0."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from perpsignal_common.db.analytics import TrackedOutcome, TrackedOutcomes
from perpsignal_gateway.research import compute


def _outcomes(seed: int = 3, n: int = 1500) -> TrackedOutcomes:
    rng = np.random.default_rng(seed)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    rows = []
    informed = rng.uniform(0, 100, n)
    long_ret = 0.02 * (informed - 50) + rng.normal(0, 1.0, n)  # the factor predicts returns
    shuffled = rng.permutation(informed)
    for i in range(n):
        side = 1 if i % 3 else -1
        verdict = "CONFIRM" if side * long_ret[i] > 0.3 else "SKIP" if i % 2 else "WAIT"
        pnl = float(long_ret[i] * side)
        rows.append(
            TrackedOutcome(
                entry_at=t0 + timedelta(minutes=15 * i),
                direction="LONG" if side > 0 else "SHORT",
                verdict=verdict,
                pnl_pct=pnl,
                result="WIN" if pnl > 0.1 else "LOSS" if pnl < -0.1 else "NEUTRAL",
                scores={"momentum": float(informed[i]), "funding": float(shuffled[i])},
            )
        )
    return TrackedOutcomes("1h", 3600, None, 20_000, False, rows)


def test_known_information_is_detected_and_noise_is_not() -> None:
    out = compute(_outcomes())
    f = {x.factor: x for x in out.factors}
    assert f["momentum"].ic is not None and f["momentum"].ic > 0.4
    assert f["momentum"].informative and f["momentum"].ic_low > 0  # type: ignore[operator]
    assert not f["funding"].informative
    assert f["funding"].ic_low < 0 < f["funding"].ic_high  # type: ignore[operator]
    # factors without data anywhere say so
    assert f["liquidations"].outcomes == 0 and f["liquidations"].ic is None
    assert out.block == 4  # 1h of 15-minute entries
    lift = out.confirm_minus_skip
    assert lift.pnl_pct is not None and lift.pnl_low_pct is not None and lift.pnl_low_pct > 0


def test_too_few_outcomes_give_nulls() -> None:
    few = _outcomes(n=8)
    out = compute(few)
    assert out.outcomes == 8
    assert all(f.ic is None for f in out.factors)
    assert out.confirm_minus_all.pnl_pct is None
