"""Funding is normalised to 8 h by the symbol's own settlement interval, not assumed 8 h.

Binance settles many USDⓈ-M perpetuals every 4 h (some every hour), and its premium index
gives the rate per that interval with no interval field: the ingestor publishes it as is
(`interval_h` unset). Read as an 8 h rate, a 4 h symbol's carry was half what it is (an
hourly one's an eighth): `rate_8h`, the change part of the factor and the judge's
"extreme funding" check (0.05 % per 8 h) all read it low. The interval shows in the data:
the premium index's `nextFundingTime` steps by it at each settlement, and settled rates are
that far apart. Events here come from the Binance connector's parsers on the recorded
response shapes (../shared/data/api/binance_usdm), with a symbol's own times and rate.
"""

from __future__ import annotations

import json
import math
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from perpsignal_common.errors import PoisonMessage
from perpsignal_common.events.base import Event, utcnow
from perpsignal_common.events.factors import FundingInputs, factor_inputs
from perpsignal_common.events.signals import SignalScoredV1
from perpsignal_connectors.binance_usdm.parsing import parse_funding_history, parse_premium_index
from perpsignal_connectors.binance_usdm.schemas import FUNDING_RATES, PREMIUM_INDEX_ONE
from perpsignal_domain.scoring.config import EngineConfig
from perpsignal_domain.scoring.engine import ScoringEngine
from tests.unit.scorer import recorded

SYMBOL = "XRPUSDT"
RATE = 0.0001  # per settlement interval
CFG = EngineConfig(primary_timeframe="5m", smc_timeframes=("5m",))
HOUR_MS = 3_600_000


def _doc(api: Path, name: str) -> Any:
    return json.loads((api / "binance_usdm" / name).read_text())


def _market(shared_data: Path, interval_h: int, settled: bool) -> list[Event]:
    """A day of the recorded XRPUSDT 5m candles with a premium-index poll after each (the
    rate per `interval_h`, nextFundingTime the next settlement) and, when `settled`, the
    settled rate at each settlement."""
    api = shared_data / "api"
    candles = recorded.candles(
        shared_data / "market" / "XRP_USDT_USDT-5m-futures.csv", SYMBOL, "5m"
    )[:288]
    premium = _doc(api, "fapi_v1_premiumIndex.doc_current.json")
    row = _doc(api, "fapi_v1_fundingRate.doc_current.json")[0]
    step = interval_h * HOUR_MS
    events: list[Event] = []
    last_settled = None
    for c in candles:
        now_ms = int(c.observed_at.timestamp() * 1000)
        settle_ms = (now_ms // step) * step
        if settled and last_settled != settle_ms:
            last_settled = settle_ms
            rows = FUNDING_RATES.validate_python(
                [{**row, "symbol": SYMBOL, "fundingRate": str(RATE), "fundingTime": settle_ms}]
            )
            events.extend(parse_funding_history(rows))
        events.append(c)
        item = PREMIUM_INDEX_ONE.validate_python(
            {
                **premium,
                "symbol": SYMBOL,
                "lastFundingRate": str(RATE),
                "nextFundingTime": settle_ms + step,
                "time": now_ms + 1_000,
            }
        )
        events.append(parse_premium_index(item))
    return sorted(events, key=lambda e: e.observed_at)


def _signals(events: list[Event]) -> list[SignalScoredV1]:
    engine = ScoringEngine(CFG, clock=utcnow)
    return [s for e in events for s in engine.apply(e)]


def _funding(s: SignalScoredV1) -> tuple[float, FundingInputs]:
    f = next(f for f in s.factors if f.name == "funding")
    inputs = factor_inputs(f, FundingInputs)
    assert inputs is not None, f.reason
    return f.score, inputs


@pytest.mark.parametrize("settled", [False, True], ids=["premium-index", "with-settled"])
@pytest.mark.parametrize(("interval_h", "per_8h"), [(8, RATE), (4, 2 * RATE), (1, 8 * RATE)])
def test_rate_8h_uses_the_symbols_settlement_interval(
    shared_data: Path, interval_h: int, per_8h: float, settled: bool
) -> None:
    signals = _signals(_market(shared_data, interval_h, settled))
    score, inputs = _funding(signals[-1])
    assert inputs.rate_8h == pytest.approx(per_8h)
    # a rate held all day is this symbol's normal: neutral, not "higher than every earlier
    # rate" because the rates before the first settlement were read per 8 h
    assert inputs.rate_rank == pytest.approx(0.0)
    assert score == pytest.approx(50.0)


@pytest.mark.parametrize("hours", [5e-324, 1e-9, 1e6])
def test_a_rate_naming_no_settlement_interval_is_refused(shared_data: Path, hours: float) -> None:
    """`interval_h` is any amount to the contract; per 8 h, a rate over 5e-324 h was
    infinite: the funding sub-score became NaN, the clamped signal score 0.0 (a SHORT) and
    every signal of the symbol was refused downstream while that rate stayed in its
    history. Such a record is refused before it touches state (dead-lettered by the
    service); the signals are those without it. Input: the recorded Binance settled rates
    (`interval_h` set by hand: no vendor sends it so)."""
    market = shared_data / "market"
    candles = recorded.candles(market / "XRP_USDT_USDT-5m-futures.csv", SYMBOL, "5m")
    rates = recorded.funding(market / "XRP_USDT_USDT-8h-funding_rate.csv", SYMBOL)
    events = recorded.merged(rates, candles)
    bad = rates[3].model_copy(update={"interval_h": hours, "event_id": "bogus-interval"})
    engine = ScoringEngine(CFG, clock=utcnow)
    signals = []
    for e in events:
        signals.extend(engine.apply(e))
        if e is rates[3]:
            with pytest.raises(PoisonMessage, match="no settlement interval"):
                engine.apply(bad)
    clean = _signals(events)
    assert [s.model_dump(exclude={"produced_at"}) for s in signals] == [
        s.model_dump(exclude={"produced_at"}) for s in clean
    ]
    assert all(math.isfinite(f.score) for s in signals for f in s.factors)


def test_one_far_ahead_next_funding_time_does_not_stop_the_interval_being_learnt(
    shared_data: Path,
) -> None:
    """`next_funding_at` may be up to 30 days ahead to the contract. The clock kept the
    largest one seen and learnt only from a later one, so a single poll naming a settlement
    29 days ahead stopped it learning for 29 days: a 4-hourly symbol's rates were read per
    8 h, half their size. The clock now follows the newest poll's time. Input: the recorded
    premium-index polls of a 4-hourly day (one poll's nextFundingTime set by hand)."""
    events = _market(shared_data, 4, settled=False)
    polls = [i for i, e in enumerate(events) if e.type == "market.funding"]
    first = events[polls[0]]
    ahead = first.model_copy(
        update={
            "event_id": "far-ahead",
            "next_funding_at": first.observed_at + timedelta(days=29),
        }
    )
    events.insert(polls[0] + 1, ahead)
    score, inputs = _funding(_signals(events)[-1])
    assert inputs.rate_8h == pytest.approx(2 * RATE)
    assert score == pytest.approx(50.0)  # the rates kept before were rescaled: no step
