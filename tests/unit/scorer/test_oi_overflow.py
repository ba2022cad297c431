"""Open interest whose change overflows is no change read, not a full pull.

The contract takes any amount from 0 to 1e30; against an hour-earlier reading of 5e-324 the
OI change is infinite. `oi_trend` scored that as full conviction behind the price move and
carried `oi_change: inf` in its inputs (written as null on the wire). Input: the recorded
Binance BTCUSDT open-interest history (through the recorded-data reader) moved onto the
recorded XRPUSDT candles' hours and renamed; one reading set by hand to 5e-324, the
smallest positive double (no vendor sends it; the contract accepts it).
"""

from __future__ import annotations

import math
from pathlib import Path

from perpsignal_common.events.market import OpenInterestV1
from perpsignal_domain.scoring.config import EngineConfig
from perpsignal_domain.scoring.engine import ScoringEngine
from tests.unit.scorer import recorded

SYMBOL = "XRPUSDT"


def test_an_overflowing_open_interest_change_is_missing(shared_data: Path) -> None:
    market = shared_data / "market"
    candles = recorded.candles(market / "XRP_USDT_USDT-5m-futures.csv", SYMBOL, "5m")[:110]
    history = recorded.oi_long_short(
        market / "binance-BTCUSDT-5m-oi_longshort_basis.csv", "BTCUSDT"
    )
    oi = [e for e in history if isinstance(e, OpenInterestV1)]
    shift = candles[0].observed_at - oi[0].observed_at
    moved = [
        e.model_copy(
            update={
                "symbol": SYMBOL,
                "observed_at": e.observed_at + shift,
                "open_interest": 5e-324 if i == 0 else e.open_interest,
            }
        )
        for i, e in enumerate(oi)
    ]
    engine = ScoringEngine(EngineConfig(primary_timeframe="5m", smc_timeframes=("5m",)))
    signals = [s for e in recorded.merged(moved, candles) for s in engine.apply(e)]
    factors = [next(f for f in s.factors if f.name == "oi_trend") for s in signals]
    for f in factors:
        assert all(math.isfinite(v) for v in f.inputs.values() if isinstance(v, float)), f
    tiny_base = [f for f in factors if f.reason and "overflows" in f.reason]
    assert tiny_base and all(f.status == "missing" and f.score == 50.0 for f in tiny_base)
    assert any(f.status == "ok" for f in factors)  # once the tiny reading is an hour old
