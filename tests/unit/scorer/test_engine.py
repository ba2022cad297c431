"""Indicators against TA-Lib, the composite, and the recorded market data replayed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import talib
from hypothesis import given
from hypothesis import strategies as st

from perpsignal_common.events.base import deterministic_id
from perpsignal_common.events.signals import FACTOR_NAMES, SignalScoredV1
from perpsignal_domain.scoring.config import EngineConfig
from perpsignal_domain.scoring.engine import ScoringEngine, composite
from perpsignal_domain.scoring.factors.base import FactorResult
from perpsignal_domain.scoring.state import Aggregator, Bar, Ema, WilderRsi
from tests.unit.scorer import recorded

CFG = EngineConfig(primary_timeframe="5m", smc_timeframes=("5m", "15m", "1h"))


def _closes(shared_data: Path) -> np.ndarray:
    rows = (shared_data / "market" / "XRP_USDT_USDT-5m-futures.csv").read_text().splitlines()[1:]
    return np.array([float(r.split(",")[4]) for r in rows])


def test_incremental_rsi_and_ema_match_talib(shared_data: Path) -> None:
    closes = _closes(shared_data)
    rsi, ema = WilderRsi(14), Ema(20)
    ours_rsi = [rsi.update(c) for c in closes]
    ours_ema = [ema.update(c) for c in closes]
    ref_rsi, ref_ema = talib.RSI(closes, 14), talib.EMA(closes, 20)
    assert ours_rsi[13] is None and ours_rsi[14] is not None
    np.testing.assert_allclose(np.array(ours_rsi[14:], dtype=float), ref_rsi[14:], rtol=1e-9)
    np.testing.assert_allclose(np.array(ours_ema[19:], dtype=float), ref_ema[19:], rtol=1e-9)


def test_aggregator_builds_15m_from_5m() -> None:
    agg = Aggregator(900)
    bars = [
        Bar(900 * 10 + 300 * i, 900 * 10 + 300 * (i + 1), 1 + i, 5 - i, 0.5 + i, 2 + i, 10)
        for i in range(3)
    ]
    out = [b for bar in bars for b in agg.update(bar)]
    assert len(out) == 1
    b = out[0]
    assert (b.open_s, b.close_s, b.open, b.high, b.low, b.close, b.volume) == (
        9000,
        9900,
        1,
        5,
        0.5,
        4,
        30,
    )


def _result(score: float, status: str = "ok", age: float = 0.0) -> FactorResult:
    return FactorResult(score, status, age)  # type: ignore[arg-type]


def test_composite_worked_example() -> None:
    results = {n: _result(50.0, "missing") for n in FACTOR_NAMES}
    results["momentum"] = _result(100.0)  # weight 20 -> +10
    results["funding"] = _result(80.0)  # weight 15 -> +4.5
    results["fear_greed"] = _result(30.0)  # weight 10 -> -2
    ev = composite(results, EngineConfig())
    assert ev.score == pytest.approx(62.5)
    assert ev.direction == "NEUTRAL"
    assert ev.top_factors == ("momentum", "funding", "fear_greed")
    assert set(ev.missing) == set(FACTOR_NAMES) - {"momentum", "funding", "fear_greed"}
    # completeness 45 %, agreement 12.5 / 16.5, all fresh
    assert ev.confidence == pytest.approx(100 * 0.45 * (0.4 + 0.6 * 12.5 / 16.5) * 1.0)


@given(
    st.lists(st.floats(0, 100), min_size=8, max_size=8),
    st.lists(st.booleans(), min_size=8, max_size=8),
)
def test_composite_bounded(scores: list[float], ok: list[bool]) -> None:
    results = {
        n: _result(s if k else 50.0, "ok" if k else "missing")
        for n, s, k in zip(FACTOR_NAMES, scores, ok, strict=True)
    }
    ev = composite(results, EngineConfig())
    assert 0 <= ev.score <= 100 and 0 <= ev.confidence <= 100
    # an input that is present (even if neutral) always counts more than a missing one
    for name in FACTOR_NAMES:
        present = dict(results) | {name: _result(50.0)}
        absent = dict(results) | {name: _result(50.0, "missing")}
        assert composite(absent, EngineConfig()).confidence < composite(
            present, EngineConfig()
        ).confidence or (composite(present, EngineConfig()).confidence == 0)


def _replay(shared_data: Path) -> list[SignalScoredV1]:
    m = shared_data / "market"
    candles = recorded.candles(m / "XRP_USDT_USDT-5m-futures.csv", "XRPUSDT", "5m")
    funding = recorded.funding(m / "XRP_USDT_USDT-8h-funding_rate.csv", "XRPUSDT")
    fng = recorded.fear_greed(m / "alternative_me-fear_greed-1d.csv")
    engine = ScoringEngine(CFG)
    return [s for e in recorded.merged(fng, funding, candles) for s in engine.apply(e)]


def test_recorded_replay_signals_explain_themselves(shared_data: Path) -> None:
    signals = _replay(shared_data)
    assert len(signals) == 1999  # one per closed primary candle
    assert {s.direction for s in signals} == {"LONG", "SHORT", "NEUTRAL"}
    for s in signals:
        assert s.event_id == s.signal_id == deterministic_id(s.causation_id, "scorer")
        assert [f.name for f in s.factors] == list(FACTOR_NAMES)
        # the score is 50 plus the listed contributions, each weight/100 x (sub-score - 50)
        assert s.score == pytest.approx(50 + sum(f.contribution for f in s.factors), abs=1e-3)
        for f in s.factors:
            assert f.contribution == pytest.approx(f.weight / 100 * (f.score - 50), abs=1e-3)
            if f.status != "ok":
                assert f.score == 50 and f.reason
        by_pull = sorted(s.factors, key=lambda f: -abs(f.contribution))
        assert abs(by_pull[2].contribution) <= min(
            (abs(f.contribution) for f in s.factors if f.name in s.top_factors), default=0.0
        )
        assert set(s.missing_factors) == {f.name for f in s.factors if f.status == "missing"}
        expected = "LONG" if s.score >= 65 else "SHORT" if s.score <= 35 else "NEUTRAL"
        assert s.direction == expected
        assert s.price == s.candles[-1].close and len(s.candles) <= 30
    # this data has no liquidations, ratios, OI or social: never invented
    assert all(
        {"liquidations", "long_short", "oi_trend", "social"} <= set(s.missing_factors)
        for s in signals
    )
    # funding starts on 2021-11-18: missing before, used after
    first = signals[0]
    assert "funding" in first.missing_factors
    late = signals[-1]
    assert next(f for f in late.factors if f.name == "funding").status == "ok"
    assert late.smc is not None and late.smc.by_timeframe


def test_recorded_replay_is_deterministic(shared_data: Path) -> None:
    a, b = _replay(shared_data), _replay(shared_data)
    dump = lambda s: s.model_dump(exclude={"produced_at"})  # noqa: E731
    assert [dump(s) for s in a] == [dump(s) for s in b]


def test_recorded_positioning_drives_long_short_and_smart_money(shared_data: Path) -> None:
    m = shared_data / "market"
    events = recorded.oi_long_short(m / "binance-BTCUSDT-5m-oi_longshort_basis.csv", "BTCUSDT")
    engine = ScoringEngine(CFG)
    for e in events:
        engine.apply(e)
    last = events[-1].observed_at.timestamp()
    ev = engine.evaluate("BTCUSDT", last)
    ls = ev.results["long_short"]
    # worked from the file: last row and the row one hour (12 x 5m) earlier
    rows = (m / "binance-BTCUSDT-5m-oi_longshort_basis.csv").read_text().splitlines()
    head = rows[0].split(",")
    last_row = dict(zip(head, rows[-1].split(","), strict=True))
    hour_ago = dict(zip(head, rows[-13].split(","), strict=True))
    g, t = float(last_row["globallongAccount"]), float(last_row["toplongAccount"])

    def rank(col: str, x: float) -> float:  # mid-rank among every row up to the last
        values = [float(dict(zip(head, r.split(","), strict=True))[col]) for r in rows[1:]]
        return (
            2 * (sum(v < x for v in values) + 0.5 * sum(v == x for v in values)) / len(values) - 1
        )

    crowd = 0.6 * rank("globallongAccount", g) + 0.4 * rank("toplongAccount", t)
    change = max(-1.0, min(1.0, (g - float(hour_ago["globallongAccount"])) / 0.05))
    assert ls.status == "ok"
    assert ls.score == pytest.approx(50 - 50 * (0.7 * crowd + 0.3 * change))
    # about two thirds of accounts long throughout, the symbol's normal: the level is judged
    # against that (the old 50 % neutral called every bar crowded and scored it ~30)
    assert ls.inputs["global_long_share"] == g > 0.6
    assert ev.results["smart_money"].status == "ok"
    assert ev.results["oi_trend"].status == "missing"  # no BTC candles: price change unknown
    assert ev.results["momentum"].status == "missing"


def test_duplicate_candle_emits_nothing_and_on_demand_needs_state(shared_data: Path) -> None:
    from datetime import timedelta

    from perpsignal_common.events.market import TrackCommandV1

    m = shared_data / "market"
    candles = recorded.candles(m / "XRP_USDT_USDT-5m-futures.csv", "XRPUSDT", "5m")[:40]
    engine = ScoringEngine(CFG)
    cmd = TrackCommandV1(
        event_id="c1",
        source="gateway",
        symbol="XRPUSDT",
        observed_at=candles[-1].observed_at + timedelta(seconds=10),
    )
    assert engine.apply(cmd) == []
    assert sum(len(engine.apply(c)) for c in candles) == 40
    assert engine.apply(candles[-1]) == []
    (sig,) = engine.apply(cmd)
    assert sig.trigger == "on_demand" and sig.observed_at == cmd.observed_at


def test_signals_built_without_validation_equal_validated_ones(shared_data: Path) -> None:
    """The engine skips re-validation of its own values: the result must be what
    validation gives (same values, field order, fields set), and valid."""
    signals = _replay(shared_data)
    for s in signals[:: len(signals) // 40] + signals[-3:]:
        explicit = s.model_dump(exclude={"type", "schema_version", "produced_at"})
        validated = SignalScoredV1(**explicit, produced_at=s.produced_at)
        assert validated == s
        assert validated.model_fields_set - {"produced_at"} == s.model_fields_set
        assert list(s.__dict__) == list(SignalScoredV1.model_fields)
        assert s.model_dump_json() == validated.model_dump_json()
        for ours, theirs in zip(
            (*s.factors, s.smc, *s.candles),
            (*validated.factors, validated.smc, *validated.candles),
            strict=True,
        ):
            assert ours == theirs
            assert ours.model_fields_set == theirs.model_fields_set
            assert list(ours.__dict__) == list(type(ours).model_fields)


def test_top_factors_are_factors_that_pull(shared_data: Path) -> None:
    """A missing or stale factor (or one at 50) contributes nothing, so it explains nothing:
    the alert's and the API's "top factors" named `liquidations` and `funding` on signals
    whose liquidations and funding were never received, whenever fewer than three factors
    pulled (a symbol warming up, a feed down). Input: the recorded XRPUSDT week."""
    signals = _replay(shared_data)
    short = 0
    for s in signals:
        pulling = [f for f in s.factors if f.contribution != 0.0]
        ranked = sorted(pulling, key=lambda f: -abs(f.contribution))  # stable: FACTOR_NAMES
        assert s.top_factors == tuple(f.name for f in ranked[:3]), s.event_id
        by_name = {f.name: f for f in s.factors}
        assert all(by_name[n].status == "ok" for n in s.top_factors), s.event_id
        short += len(pulling) < 3
    assert short > 0  # the recorded run has signals with fewer than three pulling factors
