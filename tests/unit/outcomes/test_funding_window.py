"""Funding of a live window counts only when the stored settlements prove it complete."""

from __future__ import annotations

import pytest

from perpsignal_domain.outcomes.evaluate import settled_between, settled_if_complete

H = 3600.0
EIGHT = [k * 8 * H for k in range(6)]  # settlements at 0, 8, 16, 24, 32, 40 h
RATES = [0.0001, 0.0002, -0.0003, 0.0004, 0.0005, 0.0006]


def test_a_bracketed_window_gets_the_rates_settled_inside_it() -> None:
    got = settled_if_complete(EIGHT, RATES, 1 * H, 25 * H)
    assert list(got or []) == [0.0002, -0.0003, 0.0004]
    # the same rates as the backtest's rule (entry < t <= due)
    assert list(got or []) == list(settled_between(EIGHT, RATES, 1 * H, 25 * H))
    # none settled inside, but the bracket proves it: a known 0
    assert settled_if_complete(EIGHT, RATES, 1 * H, 2 * H) == []
    # a settlement exactly at the due time was paid
    assert list(settled_if_complete(EIGHT, RATES, 1 * H, 8 * H) or []) == [0.0002]


@pytest.mark.parametrize(
    ("start", "end", "why"),
    [
        (-1 * H, 2 * H, "no settlement recorded at or before the entry"),
        (33 * H, 41 * H, "no settlement recorded yet at or after the due time"),
    ],
)
def test_an_unbracketed_window_is_unknown(start: float, end: float, why: str) -> None:
    assert settled_if_complete(EIGHT, RATES, start, end) is None, why


def test_a_missing_settlement_makes_the_windows_across_it_unknown() -> None:
    times = [t for t in EIGHT if t != 16 * H]
    rates = [r for t, r in zip(EIGHT, RATES, strict=True) if t != 16 * H]
    assert settled_if_complete(times, rates, 9 * H, 20 * H) is None  # spans the hole
    assert settled_if_complete(times, rates, 25 * H, 33 * H) is not None  # after it
    assert settled_if_complete([0.0], [0.0001], -1.0, 1.0) is None  # one point: no interval
