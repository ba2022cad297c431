"""A reading so small that its change overflows is no reading of a change, not a crash.

The contract takes any amount from 0 to 1e30, so a day-earlier social volume or open
interest of 1e-300 is a valid record; against a later 1e25 its change overflowed to
infinity. The social factor then carried `inf` in its inputs (written as null), and MSS put
it in its result, which the contract refuses: every scan raised while that reading was in
its 24 h window, failing the market record that started it and publishing no MSS for any
coin. Inputs: the recorded LunarCrush coins list and Binance open-interest history through
the connector's parser and the recorded-data reader; the tiny readings are set by hand (no
vendor sends them; the contract accepts them).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from perpsignal_common.events.market import OpenInterestV1
from perpsignal_domain.scoring.engine import ScoringEngine
from perpsignal_domain.scoring.factors import FACTORS, EvalContext
from perpsignal_domain.scoring.mss import MssConfig, MssScanner
from tests.unit.scorer import recorded
from tests.unit.scorer.test_social_volume_change import DAY, _snapshot


def _engine() -> ScoringEngine:
    engine = ScoringEngine()
    engine.mss = MssScanner(MssConfig(threshold=0.0))
    return engine


def test_an_overflowing_social_volume_change_is_missing(shared_data: Path) -> None:
    api = shared_data / "api"
    engine = _engine()
    for shift, scale in ((0, 1e-300), (DAY, 1e20)):  # 1e-300 x the volume, then 1e20 x
        for ev in _snapshot(api, shift, scale):
            engine.apply(ev)
    now = _snapshot(api, DAY, 1e20)[0].observed_at.timestamp()
    r = FACTORS["social"](engine.state("BTCUSDT"), EvalContext(now), engine.cfg)
    assert r.inputs.get("social_volume_change_pct") is None
    assert engine.mss.due(now) == []
    (result,) = engine.mss.due(now + engine.mss.cfg.interval_s)
    assert "social_volume_growth" in result.social_momentum.missing


def test_an_overflowing_open_interest_growth_is_missing(shared_data: Path) -> None:
    api, market = shared_data / "api", shared_data / "market"
    engine = _engine()
    for ev in _snapshot(api, 0, 1.0):  # BTC in the MSS universe (LunarCrush)
        engine.apply(ev)
    oi = [
        e
        for e in recorded.oi_long_short(
            market / "binance-BTCUSDT-5m-oi_longshort_basis.csv", "BTCUSDT"
        )
        if isinstance(e, OpenInterestV1)
    ]
    day_before = oi[0].model_copy(
        update={"observed_at": oi[0].observed_at - timedelta(days=1), "open_interest_usd": 1e-300}
    )
    for ev in (day_before, *oi):
        engine.apply(ev)
    now = oi[-1].observed_at.timestamp()
    assert engine.mss.due(now) == []
    (result,) = engine.mss.due(now + engine.mss.cfg.interval_s)
    assert "oi_growth" in result.institutional_validation.missing
    assert result.institutional_validation.inputs["oi_growth_24h"] is None
