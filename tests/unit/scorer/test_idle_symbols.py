"""A symbol without events for `idle_s` is forgotten, and starts afresh when it returns.

Symbols were never forgotten (0.5-4 MB each): a long-running scorer's memory grew with every
symbol ever sent, delisted and untracked ones included. Now a symbol idle longer than
`SCORER_SYMBOL_IDLE_S` (event time) is dropped from every per-symbol map, so memory follows
the symbols still sent; its next events build it exactly as a fresh start would. Inputs: the
recorded XRPUSDT 5m candles and 8h funding, and the recorded fear & greed readings; the
active symbol is the same recorded candles under a real Binance perpetual's non-Latin name.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from perpsignal_common.errors import PoisonMessage
from perpsignal_common.events.base import Event, deterministic_id
from perpsignal_common.events.market import CandleClosedV1, FundingRateV1
from perpsignal_domain.scoring.config import EngineConfig
from perpsignal_domain.scoring.engine import ScoringEngine
from perpsignal_scorer.service import ScorerService
from perpsignal_scorer.settings import ScorerSettings
from tests.unit.scorer import recorded

CFG = EngineConfig(primary_timeframe="5m", smc_timeframes=("5m", "15m"))
IDLE_S = 4 * 3600.0
GONE, ACTIVE = "XRPUSDT", "币安人生USDT"


def _clock() -> datetime:
    return datetime(2024, 1, 1, tzinfo=UTC)  # produced_at only: signals compare whole


def _as(symbol: str, events: list[Any]) -> list[Event]:
    return [
        e.model_copy(update={"symbol": symbol, "event_id": deterministic_id(symbol, e.event_id)})
        for e in events
    ]


@pytest.fixture(scope="module")
def market(shared_data: Path) -> dict[str, list[Event]]:
    data = shared_data / "market"
    candles = recorded.candles(data / "XRP_USDT_USDT-5m-futures.csv", GONE, "5m")[:480]
    start, end = candles[0].observed_at, candles[-1].observed_at
    funding = [
        e
        for e in recorded.funding(data / "XRP_USDT_USDT-8h-funding_rate.csv", GONE)
        if start <= e.observed_at <= end
    ]
    fng = recorded.fear_greed(data / "alternative_me-fear_greed-1d.csv")
    fng = [e for e in fng if e.observed_at <= end]
    back_at = candles[400].observed_at
    return {
        "fng": fng,  # type: ignore[dict-item]
        # the symbol's first 100 candles (8 h) and funding, then nothing for ~25 h
        "before": recorded.merged(candles[:100], [f for f in funding if f.observed_at < back_at]),  # type: ignore[arg-type]
        "after": recorded.merged(candles[400:], [f for f in funding if f.observed_at >= back_at]),  # type: ignore[arg-type]
        "active": _as(ACTIVE, candles[:400]),
    }


class _Wall:
    """The processing clock: live, events are handled as they happen."""

    now = 0.0

    def __call__(self) -> float:
        return self.now


def _run(
    engine: ScoringEngine, events: list[Event], wall: _Wall | None = None
) -> list[dict[str, Any]]:
    out = []
    for e in events:
        if wall is not None:
            wall.now = e.observed_at.timestamp()
        out += [s.model_dump() for s in engine.apply(e) if s.symbol == GONE]
    return out


def test_an_idle_symbol_is_forgotten_and_returns_as_a_fresh_start(
    market: dict[str, list[Event]],
) -> None:
    wall = _Wall()
    engine = ScoringEngine(CFG, clock=_clock, idle_s=IDLE_S, wall=wall)
    first = _run(engine, recorded.merged(market["fng"], market["before"], market["active"]), wall)
    assert len(first) == 100
    # memory follows the symbols still sent: nothing of the idle one is left
    assert set(engine.states) == set(engine.smc) == set(engine.venue_of) == {ACTIVE}
    held = [engine._aggs, engine._biases, engine._windows, engine._summaries, engine._seen]
    assert all(GONE not in d for d in held)
    assert len(engine._details) == len(engine._levels) == len(engine.smc[ACTIVE])

    back = _run(engine, market["after"], wall)
    fresh = ScoringEngine(CFG, clock=_clock)
    expected = _run(fresh, recorded.merged(market["fng"], market["after"]))
    assert len(back) == 80
    assert back == expected

    # without forgetting, the returning symbol carries its day-old history (the comparison
    # above can tell the two apart)
    keeps = ScoringEngine(CFG, clock=_clock)
    _run(keeps, recorded.merged(market["fng"], market["before"], market["active"]))
    assert _run(keeps, market["after"]) != expected


def test_a_symbol_days_behind_the_others_but_still_sent_is_kept(
    market: dict[str, list[Event]],
) -> None:
    """A partition replayed from further back than the others, or lagging behind them:
    its symbol's events are days behind the newest event, yet handled all along. It is
    not idle, and scores as it would alone."""
    ahead = [
        e.model_copy(update={"observed_at": e.observed_at + timedelta(days=4)})
        for e in market["active"]
    ]
    start = market["before"][0].observed_at
    behind = recorded.merged([e for e in market["fng"] if e.observed_at >= start], market["before"])
    wall = _Wall()
    engine = ScoringEngine(CFG, clock=_clock, idle_s=IDLE_S, wall=wall)
    for e in market["fng"]:
        if e.observed_at < start:
            engine.apply(e)
    got = []
    for k in range(len(behind)):  # the two partitions interleaved, 4 days apart
        for e in (ahead[k], behind[k]):
            wall.now = k * 10.0  # handled one after the other, seconds apart
            got += [s.model_dump() for s in engine.apply(e) if s.symbol == GONE]
    assert engine._newest_s - behind[-1].observed_at.timestamp() > 3 * 86_400
    alone = _run(ScoringEngine(CFG, clock=_clock), recorded.merged(market["fng"], market["before"]))
    assert len(got) == 100
    assert got == alone


def test_a_failed_event_of_a_returning_symbol_leaves_its_state(
    market: dict[str, list[Event]],
) -> None:
    """apply() is atomic: the poisoned event finds the symbol forgotten, fails, and the
    symbol's old state is back; its next good event starts it afresh."""
    engine = ScoringEngine(CFG, clock=_clock, idle_s=IDLE_S)
    _run(engine, recorded.merged(market["fng"], market["before"]))
    state = engine.states[GONE]
    first_back = market["after"][0]
    assert isinstance(first_back, CandleClosedV1)
    bad = FundingRateV1(
        event_id="bad",
        source="binance",
        symbol=GONE,
        observed_at=first_back.observed_at,
        rate=0.0001,
        interval_h=0.1,  # no settlement interval: refused before any state changes
    )
    with pytest.raises(PoisonMessage):
        engine.apply(bad)
    assert engine.states[GONE] is state
    engine.apply(first_back)
    assert engine.states[GONE] is not state
    assert len(engine.states[GONE].bars("5m")) == 1


def test_the_setting_reaches_the_engine_and_refuses_a_short_idle() -> None:
    assert ScorerService(ScorerSettings()).engine.idle_s == 3 * 86_400.0
    assert ScorerService(ScorerSettings(scorer_symbol_idle_s=0)).engine.idle_s == 0
    with pytest.raises(ValidationError, match="SCORER_SYMBOL_IDLE_S"):
        ScorerSettings(scorer_symbol_idle_s=3600)
