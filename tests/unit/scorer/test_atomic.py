"""Atomic state updates (issue 23): an event whose handling raises leaves the engine as it was.

Before, a candle was stored (bars, indicators, SMC) and only then scored; when scoring
raised, the retry of the same candle was taken for a duplicate and silently produced no
signal, and the stored bar skewed every later one. Each test compares an engine that saw
the failure with one that never did, on the recorded XRPUSDT 5m candles.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from perpsignal_common.errors import PermanentError
from perpsignal_common.events.market import CandleClosedV1
from perpsignal_common.events.signals import SignalScoredV1
from perpsignal_domain.scoring.config import EngineConfig
from perpsignal_domain.scoring.engine import ScoringEngine
from tests.unit.scorer import recorded

CFG = EngineConfig(primary_timeframe="5m", smc_timeframes=("5m", "15m", "1h"))


@pytest.fixture(scope="module")
def candles(shared_data: Path) -> list[CandleClosedV1]:
    m = shared_data / "market"
    return recorded.candles(m / "XRP_USDT_USDT-5m-futures.csv", "XRPUSDT", "5m")[:400]


class _Failing(ScoringEngine):
    """The engine with a failure to inject: the next signal, or the next SMC update after
    the analyzer took the bar, raises (a bug's failure, after the candle changed the state).

    A subclass rather than a patched instance: the compiled engine (mypyc, see
    `perpsignal_domain._native`) has no per-instance method attributes."""

    def __init__(self, cfg: EngineConfig) -> None:
        super().__init__(cfg)
        self.fail_signal = False
        self.fail_after_smc_update = False

    def signal(self, *args: Any, **kwargs: Any) -> Any:
        if self.fail_signal:
            self.fail_signal = False
            raise RuntimeError("scoring failed")
        return super().signal(*args, **kwargs)

    def _smc_update(self, *args: Any) -> Any:
        done = super()._smc_update(*args)  # the analyzer took the bar, then something failed
        if self.fail_after_smc_update:
            self.fail_after_smc_update = False
            raise RuntimeError("failed after the analyzer update")
        return done


def _engine(events: list[CandleClosedV1]) -> _Failing:
    engine = _Failing(CFG)
    for ev in events:
        engine.apply(ev)
    return engine


def _same(a: list[SignalScoredV1], b: list[SignalScoredV1]) -> None:
    assert [s.model_dump(exclude={"produced_at"}) for s in a] == [
        s.model_dump(exclude={"produced_at"}) for s in b
    ]


def _fail_once(engine: _Failing) -> None:
    """Make the next signal raise after the candle changed the state (a bug's failure)."""
    engine.fail_signal = True


# 300: a plain bar; 311: closes a 1h bucket (15m and 1h analyzers fed too); 3: warm-up
@pytest.mark.parametrize("at", [300, 311, 3])
def test_a_failed_candle_is_undone_and_its_retry_scores(
    candles: list[CandleClosedV1], at: int
) -> None:
    failed = _engine(candles[:at])
    clean = _engine(candles[:at])
    _fail_once(failed)
    with pytest.raises(RuntimeError):
        failed.apply(candles[at])
    # the retry is scored (not taken for a duplicate), then the stream goes on identically
    for ev in candles[at : at + 30]:
        _same(failed.apply(ev), clean.apply(ev))
    now = candles[at + 29].observed_at.timestamp()
    assert failed.evaluate("XRPUSDT", now) == clean.evaluate("XRPUSDT", now)


def test_a_zero_price_candle_is_refused_before_it_touches_state(
    candles: list[CandleClosedV1],
) -> None:
    """The audit's case: a zero price was stored, then every later return divided by it."""
    failed = _engine(candles[:200])
    clean = _engine(candles[:200])
    zero = candles[200].model_copy(update={"open": 0.0, "high": 0.0, "low": 0.0, "close": 0.0})
    with pytest.raises(PermanentError):  # dead-lettered by the consumer, not retried
        failed.apply(zero)
    for ev in candles[200:240]:
        _same(failed.apply(ev), clean.apply(ev))


def test_a_failed_first_candle_leaves_no_symbol_behind(
    candles: list[CandleClosedV1],
) -> None:
    failed, clean = _Failing(CFG), ScoringEngine(CFG)
    _fail_once(failed)
    with pytest.raises(RuntimeError):
        failed.apply(candles[0])
    assert "XRPUSDT" not in failed.states
    for ev in candles[:60]:
        _same(failed.apply(ev), clean.apply(ev))


def test_a_failed_native_higher_timeframe_candle_is_undone(
    candles: list[CandleClosedV1],
) -> None:
    """A venue's own 1h candle feeds the 1h analyzer directly (and stops its aggregation)."""
    hour = candles[300:312]  # one UTC hour (bar 311 closes it)
    hourly = CandleClosedV1.model_validate(
        {
            **hour[-1].model_dump(),
            "event_id": "native-1h",
            "timeframe": "1h",
            "open_time": hour[0].open_time,
            "open": hour[0].open,
            "high": max(c.high for c in hour),
            "low": min(c.low for c in hour),
        }
    )
    failed, clean = _engine(candles[:300]), _engine(candles[:300])
    failed.fail_after_smc_update = True
    with pytest.raises(RuntimeError):
        failed.apply(hourly)
    assert "1h" not in failed.states["XRPUSDT"].native_tfs
    assert set(failed._aggs["XRPUSDT"]) == set(clean._aggs["XRPUSDT"])
    for ev in [hourly, *candles[300:340]]:
        _same(failed.apply(ev), clean.apply(ev))


def test_the_analyzer_memento_covers_every_field_update_can_change() -> None:
    """A field added to SmcAnalyzer must be restored too (or be a constant listed here)."""
    from perpsignal_domain.scoring.smc import _MUTABLE_NAMES, SmcAnalyzer, SmcMemento

    containers = {"_hs", "_ls", "_highs", "_lows", "_fvgs", "last_by_kind"}
    constants = {"n", "tolerance", "eq_lookback", "fvg_max_age", "_window", "version"}
    # compiled by mypyc (perpsignal_domain._native), the class lists its fields there
    fields = getattr(SmcAnalyzer, "__mypyc_attrs__", None) or SmcAnalyzer.__slots__
    assert set(fields) == set(_MUTABLE_NAMES) | containers | constants
    assert len(SmcMemento._fields) == 2 + len(containers)
