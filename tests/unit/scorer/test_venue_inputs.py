"""Open interest and funding of one venue per symbol, never Binance's and Coinglass's mixed.

Binance counts open interest in contracts, Coinglass's all-exchange total in USD; mixed in
one series, a change between the two reads as a jump of several thousand percent. Each
venue's recorded response (Binance `openInterestHist` and `premiumIndex`, Coinglass
aggregated OI and OI-weighted funding OHLC), moved onto the candles' two hours, goes through
the connector's schemas and parser; the scorer is the engine built from `ScorerSettings`.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from perpsignal_common.events.base import Event
from perpsignal_common.events.market import CandleClosedV1, FundingRateV1, OpenInterestV1
from perpsignal_connectors.binance_usdm import schemas as binance_s
from perpsignal_connectors.binance_usdm.parsing import (
    parse_open_interest_hist,
    parse_premium_index,
)
from perpsignal_connectors.coinglass import schemas as cg_s
from perpsignal_connectors.coinglass.parsing import parse_funding_ohlc, parse_oi_ohlc
from perpsignal_domain.scoring.engine import ScoringEngine
from perpsignal_scorer.settings import ScorerSettings
from tests.unit.scorer.test_venue_series import BARS, MIN_MS, T0_MS, binance_candles

FIVE_MIN_MS = 5 * MIN_MS
END = datetime.fromtimestamp((T0_MS + BARS * MIN_MS) / 1000, UTC)


def _api(shared_data: Path, rel: str) -> Any:
    return json.loads((shared_data / "api" / rel).read_text())


def _walk(seed: int, n: int, step: float) -> list[float]:
    rng, level, out = random.Random(seed), 1.0, []
    for _ in range(n):
        level *= 1 + rng.gauss(0, step)
        out.append(level)
    return out


def binance_inputs(shared_data: Path) -> list[Event]:
    """Open interest every 5 minutes and the predicted funding every minute."""
    recorded = _api(shared_data, "binance_usdm/futures_data_openInterestHist.doc_example.json")
    walk, rows = _walk(3, BARS // 5, 0.01), []
    for k in range(BARS // 5):
        r = dict(recorded[k % len(recorded)])
        r["timestamp"] = str(T0_MS + k * FIVE_MIN_MS)
        r["sumOpenInterest"] = f"{float(r['sumOpenInterest']) * walk[k]:.3f}"
        r["sumOpenInterestValue"] = f"{float(r['sumOpenInterestValue']) * walk[k]:.2f}"
        rows.append(r)
    events: list[Event] = [
        *parse_open_interest_hist(binance_s.OPEN_INTEREST_HIST.validate_python(rows), "5m")
    ]
    premium = _api(shared_data, "binance_usdm/fapi_v1_premiumIndex.doc_example.json")
    rates = _walk(4, BARS, 0.05)
    for i in range(BARS):
        item = {**premium, "time": T0_MS + i * MIN_MS + 30_000}
        item["lastFundingRate"] = f"{float(premium['lastFundingRate']) * rates[i]:.8f}"
        events.append(parse_premium_index(binance_s.PREMIUM_INDEX_ONE.validate_python(item)))
    return events


def coinglass_inputs(shared_data: Path) -> list[Event]:
    """All-exchange open interest (USD) and OI-weighted funding (percent), 15m intervals."""
    oi = _api(shared_data, "coinglass/open-interest__oi-ohlc-aggregated-history.json")["data"]
    fr = _api(shared_data, "coinglass/funding-rate__oi-weight-ohlc-history.json")["data"]
    n = BARS // 15
    oi_rows = [{**oi[k % len(oi)], "time": T0_MS + k * 15 * MIN_MS} for k in range(n)]
    fr_rows = [{**fr[k % len(fr)], "time": T0_MS + k * 15 * MIN_MS} for k in range(n)]
    return [
        *parse_oi_ohlc(cg_s.OHLC.validate_python(oi_rows), "BTC", "15m", END),
        *parse_funding_ohlc(cg_s.OHLC.validate_python(fr_rows), "BTC", "15m", END),
    ]


def _by_time(*streams: Sequence[Event], first: str) -> list[Event]:
    """Merge by observed time; at equal times `first`'s event comes first."""
    rank = {"binance": 0, "coinglass": 1} if first == "binance" else {"coinglass": 0, "binance": 1}
    merged = [e for s in streams for e in s]
    return sorted(merged, key=lambda e: (e.observed_at, rank.get(e.source, 2)))


def _signals(events: Sequence[Event]) -> list[dict[str, Any]]:
    settings = ScorerSettings(scorer_primary_timeframe="1m", scorer_smc_timeframes="1m,5m")
    engine = ScoringEngine(settings.engine_config(), venues=settings.primary_venues())
    return [s.model_dump(exclude={"produced_at"}) for e in events for s in engine.apply(e)]


def _factor(signal: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(f for f in signal["factors"] if f["name"] == name)
    return found


@pytest.mark.parametrize("first", ["binance", "coinglass"])
def test_coinglass_totals_never_mix_into_binance_open_interest_and_funding(
    shared_data: Path, first: str
) -> None:
    candles: list[CandleClosedV1] = binance_candles(shared_data)
    binance, coinglass = binance_inputs(shared_data), coinglass_inputs(shared_data)
    assert {type(e) for e in coinglass} == {OpenInterestV1, FundingRateV1}
    assert {e.venue for e in coinglass} == {"coinglass"}  # type: ignore[attr-defined]
    alone = _signals(_by_time(candles, binance, first="binance"))
    assert len(alone) == BARS
    ok = [s for s in alone if _factor(s, "oi_trend")["status"] == "ok"]
    assert len(ok) > BARS // 3  # the hour of OI history is there for the later signals
    assert all(abs(_factor(s, "oi_trend")["inputs"]["oi_change"]) < 0.2 for s in ok)
    assert _signals(_by_time(candles, binance, coinglass, first=first)) == alone


def test_coinglass_open_interest_is_used_when_the_price_venue_sends_none(
    shared_data: Path,
) -> None:
    candles = binance_candles(shared_data)
    coinglass = coinglass_inputs(shared_data)
    signals = _signals(_by_time(candles, coinglass, first="binance"))
    assert any(_factor(s, "oi_trend")["status"] == "ok" for s in signals)
    usd = [e.open_interest_usd for e in coinglass if isinstance(e, OpenInterestV1)]
    assert _factor(signals[-1], "oi_trend")["inputs"]["open_interest"] in usd
