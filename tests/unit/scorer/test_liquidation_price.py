"""A liquidation order priced far from its symbol's market is named as such.

`ScoringEngine.liquidation_mismatch` is what the live scorer dead-letters on
(tests/integration/scorer/test_scorer_liquidation_price.py runs the service).

The liquidations factor weighs each side by notional (full strength at $1 M an hour). An
order of another market under this symbol (a relay's symbol mapping gone wrong, a hostile
producer: Binance's documented BTC order at 9,910 as XRPUSDT) counted as a liquidation of
this symbol at a notional thousands of times its real size. Orders come from the Binance
forceOrder parser on the documented message; candles from the klines parser on the
recorded XRPUSDT rows.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from perpsignal_common.events.base import utcnow
from perpsignal_domain.scoring.config import EngineConfig
from perpsignal_domain.scoring.engine import ScoringEngine
from tests.poison_helpers import binance_candles, force_order

SYMBOL = "XRPUSDT"
CFG = EngineConfig(primary_timeframe="5m", smc_timeframes=("5m",))


def _engine(shared_data: Path) -> tuple[ScoringEngine, int]:
    csv = shared_data / "market" / "XRP_USDT_USDT-5m-futures.csv"
    candles = binance_candles(csv, SYMBOL, "5m", 30)
    engine = ScoringEngine(CFG, clock=utcnow)
    for c in candles:
        engine.apply(c)
    return engine, int(candles[-1].observed_at.timestamp() * 1000)


@pytest.mark.parametrize("price", ["9910.0", "0.0001", "3.5"])
def test_an_order_far_from_the_symbols_price_is_named(shared_data: Path, price: str) -> None:
    engine, at_ms = _engine(shared_data)
    order = force_order(shared_data / "api", SYMBOL, at_ms + 10_000, price=price)
    reason = engine.liquidation_mismatch(order)
    assert reason is not None and "last close" in reason and f"{float(price):g}" in reason


@pytest.mark.parametrize("price", ["1.19", "1.0", "1.5"])
def test_an_order_near_the_symbols_price_is_counted(shared_data: Path, price: str) -> None:
    engine, at_ms = _engine(shared_data)
    order = force_order(shared_data / "api", SYMBOL, at_ms + 10_000, price=price)
    assert engine.liquidation_mismatch(order) is None
    engine.apply(order)
    t = order.observed_at.timestamp()
    assert sum(engine.state(SYMBOL).liquidations.totals(t - 3600, t)) == pytest.approx(
        order.notional_usd
    )


def test_an_order_before_any_candle_is_counted(shared_data: Path) -> None:
    engine = ScoringEngine(CFG, clock=utcnow)
    order = force_order(shared_data / "api", SYMBOL, 1_637_000_000_000, price="9910.0")
    assert engine.liquidation_mismatch(order) is None  # nothing to compare with
    engine.apply(order)
    t = order.observed_at.timestamp()
    assert sum(engine.state(SYMBOL).liquidations.totals(t - 3600, t)) > 0
