"""A coin quoted far below 1 gets the same signal as one quoted near 1, scaled.

The contract takes prices down to 1e-12 (the cheapest perpetuals trade near 1e-7). The SMC
levels in a signal's `smc.details` (swing highs and lows, BOS/CHoCH, FVG and liquidity
levels, which the gateway serves) were rounded to 10 decimal places: at 1e-7 that kept 3
significant digits, and below 5e-11 every level read 0.0. Input: the recorded XRPUSDT 5m
rows as Binance's klines body, through the Binance parser, once as recorded and once with
every price times 1e-11.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from perpsignal_common.events.signals import SignalScoredV1
from perpsignal_connectors.binance_usdm.parsing import parse_klines
from perpsignal_connectors.binance_usdm.schemas import KLINES
from perpsignal_domain.scoring.config import EngineConfig
from perpsignal_domain.scoring.engine import ScoringEngine
from tests.poison_helpers import NOW, kline_rows

CFG = EngineConfig(primary_timeframe="5m", smc_timeframes=("5m", "15m", "1h"))
SCALE = Decimal("1e-11")


def _signals(shared_data: Path, scale: Decimal | None) -> list[SignalScoredV1]:
    rows = kline_rows(shared_data / "market" / "XRP_USDT_USDT-5m-futures.csv", 300_000, 400)
    if scale is not None:  # the wire's decimal strings, as a venue writes a tiny price
        rows = [[r[0], *(format(Decimal(p) * scale, "f") for p in r[1:5]), *r[5:]] for r in rows]
    candles = parse_klines(KLINES.validate_python(rows), "XRPUSDT", "5m", NOW)
    engine = ScoringEngine(CFG)
    return [s for c in candles for s in engine.apply(c)]


def test_smc_levels_of_a_tiny_price_keep_their_digits(shared_data: Path) -> None:
    plain, tiny = _signals(shared_data, None), _signals(shared_data, SCALE)
    assert len(plain) == len(tiny) == 400
    assert tiny[-1].price == pytest.approx(plain[-1].price * float(SCALE), rel=1e-12)
    levels = 0
    for p, t in zip(plain, tiny, strict=True):
        assert t.smc.details.keys() == p.smc.details.keys()
        for key, value in p.smc.details.items():
            if not key.endswith(("open_fvgs", "combined_bias")) and value is not None:
                levels += 1
                scaled = t.smc.details[key]
                assert isinstance(value, float) and isinstance(scaled, float)
                assert scaled == pytest.approx(value * float(SCALE), rel=1e-7), key
    assert levels > 1000  # every kind of level, on every timeframe, over the run
