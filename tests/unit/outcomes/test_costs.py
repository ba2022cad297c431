"""Net P&L: fees, slippage and funding subtract exactly the configured amounts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from perpsignal_domain.outcomes.evaluate import (
    NO_COSTS,
    Candle,
    Costs,
    Series,
    evaluate,
    evaluate_window,
    settled_between,
    venue_costs,
)

T0 = datetime(2024, 1, 1, tzinfo=UTC)
PATH = [
    Candle(T0, 100.0, 104.0, 99.0, 103.0),
    Candle(T0 + timedelta(hours=1), 103.0, 111.0, 102.0, 110.0),
]
COSTS = Costs(taker_fee_bp=5.0, slippage_bp=2.0)


def test_a_long_pays_fees_and_slippage_on_both_legs_and_positive_funding() -> None:
    ev = evaluate("LONG", 100.0, PATH, costs=COSTS, funding_rates=[0.0001, 0.0002])
    assert ev.pnl_pct == pytest.approx(10.0)
    # entry leg 7 bp of 100 = 0.07 %; exit leg 7 bp of 110 = 0.077 % of the entry notional
    assert ev.cost_pct == pytest.approx(0.147)
    # two settlements of 0.01 % and 0.02 % of notional, paid by the long
    assert ev.funding_pct == pytest.approx(0.03)
    assert ev.net_pnl_pct == pytest.approx(10.0 - 0.147 - 0.03)
    assert ev.result == "WIN"  # the call is judged gross


def test_a_short_receives_positive_funding() -> None:
    ev = evaluate("SHORT", 100.0, PATH, costs=COSTS, funding_rates=[0.0001, 0.0002])
    assert ev.pnl_pct == pytest.approx(-10.0)
    assert ev.funding_pct == pytest.approx(-0.03)
    assert ev.net_pnl_pct == pytest.approx(-10.0 - 0.147 + 0.03)


def test_no_costs_keeps_net_equal_to_gross_and_the_window_evaluator_agrees() -> None:
    gross = evaluate("LONG", 100.0, PATH)
    assert gross.net_pnl_pct == gross.pnl_pct
    assert gross.cost_pct == 0.0
    windowed = evaluate_window(
        "LONG", 100.0, Series.of(PATH), 0, 2, costs=COSTS, funding_rates=[0.0001]
    )
    assert windowed.net_pnl_pct == pytest.approx(10.0 - 0.147 - 0.01)
    assert evaluate("LONG", 100.0, PATH, costs=NO_COSTS, funding_rates=[0.01]) == gross
    fees_only = Costs(5.0, 2.0, funding=False)
    assert evaluate("LONG", 100.0, PATH, costs=fees_only, funding_rates=[0.01]).funding_pct == 0


def test_funding_counts_settlements_after_entry_up_to_exit() -> None:
    times = [0.0, 8.0, 16.0, 24.0]
    rates = [0.1, 0.2, 0.3, 0.4]
    assert list(settled_between(times, rates, 0.0, 16.0)) == [0.2, 0.3]
    assert list(settled_between(times, rates, 1.0, 7.0)) == []


def test_venue_defaults() -> None:
    assert venue_costs("BINANCE") == Costs(5.0, 2.0, funding=True)
    assert venue_costs("bybit").taker_fee_bp == 5.5
    assert venue_costs("unknown") == Costs()
