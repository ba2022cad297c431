"""Funding of a live window counts only when the stored settlements prove it complete."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from perpsignal_cli.backtesting.pipeline import OutcomeMeter, _measure, load_history
from perpsignal_domain.outcomes.evaluate import Costs, settled_between, settled_if_complete

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


def test_a_settlement_stamped_after_its_hour_belongs_to_the_window_ending_on_it(
    shared_data: Path,
) -> None:
    """The backtest reads the recorded Binance settlements as the outcomes service does:
    one stamped 00:00:00.017 is paid by the window ending at 00:00, not the next one."""
    market = shared_data / "market"
    history = load_history(
        "XRPUSDT",
        market / "XRP_USDT_USDT-5m-futures.csv",
        funding=market / "XRP_USDT_USDT-8h-funding_rate.csv",
    )
    costs = Costs(taker_fee_bp=0.0, slippage_bp=0.0)
    meter = OutcomeMeter(history, ["1h"], 0.1, costs)
    hour = datetime(2021, 11, 18, tzinfo=UTC)  # the file's first settlement: 1637193600017
    assert meter.funding[0][0] == hour.timestamp()

    def funding_of(entry: datetime) -> float:
        row = {
            "horizon": "1h",
            "direction": "LONG",
            "entry_price": 1.0,
            "stop_loss_price": None,
            "take_profit_price": None,
            "entry_at": entry,
            "due_at": entry + timedelta(hours=1),
        }
        out = _measure(row, meter.paths, 0.1, costs, meter.funding)
        assert out is not None
        return out.evaluation.funding_pct

    assert funding_of(hour - timedelta(hours=1)) == pytest.approx(0.0001 * 100)
    assert funding_of(hour) == 0.0
