"""One venue's candles per symbol series: Binance and OKX candles of one symbol never mix.

The candles are what the ingestor publishes: each venue's recorded REST response, extended
to a two-hour path (its rows repeated onto consecutive minutes, prices moved along a seeded
walk) and parsed by the connector's own schemas and parser. The scorer is the engine built
from `ScorerSettings` as the service builds it.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from perpsignal_common.events.market import CandleClosedV1, FundingRateV1
from perpsignal_common.events.signals import SignalScoredV1
from perpsignal_connectors.binance_usdm import schemas as binance_s
from perpsignal_connectors.binance_usdm.parsing import parse_klines
from perpsignal_connectors.okx.parsing import parse_candles
from perpsignal_connectors.okx.schemas import CANDLES
from perpsignal_domain.scoring.engine import ScoringEngine
from perpsignal_scorer.settings import ScorerSettings

SYMBOL = "BTCUSDT"
BARS = 120
T0_MS = 1_712_736_000_000  # 2024-04-10 08:00 UTC, the day of the Binance recording
MIN_MS = 60_000


def _walk(seed: int) -> list[float]:
    rng, level, out = random.Random(seed), 1.0, []
    for _ in range(BARS):
        level *= 1 + rng.gauss(0, 0.002)
        out.append(level)
    return out


def binance_candles(shared_data: Path) -> list[CandleClosedV1]:
    """The recorded klines response (BTCUSDT 1m) as rows of a 2-hour response."""
    recorded = json.loads(
        (shared_data / "api/binance_usdm/fapi_v1_klines.recorded.json").read_text()
    )
    walk, rows = _walk(1), []
    for i in range(BARS):
        r = list(recorded[i % len(recorded)])
        r[0], r[6] = T0_MS + i * MIN_MS, T0_MS + (i + 1) * MIN_MS - 1
        r[1:5] = [f"{float(x) * walk[i]:.1f}" for x in r[1:5]]
        rows.append(r)
    klines = binance_s.KLINES.validate_python(rows)
    now = datetime.fromtimestamp((T0_MS + BARS * MIN_MS) / 1000, UTC)
    return parse_klines(klines, SYMBOL, "1m", now)


def okx_candles(shared_data: Path, level: float) -> list[CandleClosedV1]:
    """The recorded candles response (BTC-USDT-SWAP 1m, newest first) as a 2-hour one, its
    prices brought to Binance's level (the two recordings are a year apart)."""
    body: dict[str, Any] = json.loads(
        (shared_data / "api/okx/api_v5_market_candles.recorded.json").read_text()
    )
    recorded = body["data"]
    scale = level / float(recorded[0][4])
    walk, rows = _walk(2), []
    for i in range(BARS):
        r = list(recorded[i % len(recorded)])
        r[0] = str(T0_MS + i * MIN_MS)
        r[1:5] = [f"{float(x) * scale * walk[i]:.1f}" for x in r[1:5]]
        rows.append(r)
    parsed = CANDLES.validate_python({**body, "data": rows[::-1]})
    return parse_candles(parsed.data, SYMBOL, "1m")


def interleaved(
    binance: Sequence[CandleClosedV1], okx: Sequence[CandleClosedV1], first: str
) -> list[CandleClosedV1]:
    """Both venues' candle of each minute, which one arrives first alternating."""
    out: list[CandleClosedV1] = []
    for i, (b, o) in enumerate(zip(binance, okx, strict=True)):
        pair = [b, o] if (i % 2 == 0) == (first == "binance") else [o, b]
        out += pair
    return out


def _signals(candles: Sequence[CandleClosedV1], primary_venues: str = "") -> list[dict[str, Any]]:
    settings = ScorerSettings(
        scorer_primary_timeframe="1m",
        scorer_smc_timeframes="1m,5m",
        scorer_primary_venues=primary_venues,
    )
    engine = ScoringEngine(settings.engine_config(), venues=settings.primary_venues())
    out = [s for c in candles for s in engine.apply(c)]
    return [s.model_dump(exclude={"produced_at"}) for s in out]


@pytest.fixture
def venues(shared_data: Path) -> tuple[list[CandleClosedV1], list[CandleClosedV1]]:
    binance = binance_candles(shared_data)
    okx = okx_candles(shared_data, binance[0].close)
    assert len(binance) == len(okx) == BARS
    assert {c.venue for c in binance} == {"binance"} and {c.venue for c in okx} == {"okx"}
    assert [c.open_time for c in binance] == [c.open_time for c in okx]  # same minutes
    assert all(b.close != o.close for b, o in zip(binance, okx, strict=True))
    return binance, okx


@pytest.mark.parametrize("first", ["binance", "okx"])
def test_interleaved_venues_give_the_binance_series(
    venues: tuple[list[CandleClosedV1], list[CandleClosedV1]], first: str
) -> None:
    binance, okx = venues
    alone = _signals(binance)
    assert len(alone) == BARS
    assert _signals(interleaved(binance, okx, first)) == alone
    assert {s["venue"] for s in alone} == {"binance"}
    assert [s["price"] for s in alone] == [c.close for c in binance]


@pytest.mark.parametrize("first", ["binance", "okx"])
def test_the_okx_override_gives_the_okx_series(
    venues: tuple[list[CandleClosedV1], list[CandleClosedV1]], first: str
) -> None:
    binance, okx = venues
    alone = _signals(okx, f"{SYMBOL}:okx")
    assert len(alone) == BARS
    assert _signals(interleaved(binance, okx, first), f"{SYMBOL}:okx") == alone
    assert {s["venue"] for s in alone} == {"okx"}
    assert [s["price"] for s in alone] == [c.close for c in okx]


def test_a_symbol_the_primary_does_not_send_is_driven_by_another_venue(
    venues: tuple[list[CandleClosedV1], list[CandleClosedV1]],
) -> None:
    """OKX stands in after `candle_stale_bars` candles without Binance, its waiting candles
    replayed; Binance takes over (a series of its own) once it sends."""
    binance, okx = venues
    settings = ScorerSettings(scorer_primary_timeframe="1m", scorer_smc_timeframes="1m,5m")
    engine = ScoringEngine(settings.engine_config(), venues=settings.primary_venues())
    funding = FundingRateV1(
        event_id="f1", source="binance", symbol=SYMBOL, observed_at=okx[0].observed_at, rate=1e-4
    )
    engine.apply(funding)
    standing_in = [s for c in okx[:60] for s in engine.apply(c)]
    stale_bars = settings.scorer_candle_stale_bars
    assert len(standing_in) == 60 - (stale_bars - 1)  # the first bars wait for the primary
    assert {s.venue for s in standing_in} == {"okx"}
    only_okx = ScoringEngine(settings.engine_config())  # no primary: OKX drives at once
    only_okx.apply(funding)
    expected = [s for c in okx[:60] for s in only_okx.apply(c)][stale_bars - 1 :]
    assert [_dump(s) for s in standing_in] == [_dump(s) for s in expected]
    after = [s for c in interleaved(binance[60:], okx[60:], "okx") for s in engine.apply(c)]
    # OKX's candle of minute 60 came before Binance's first one
    assert [s.venue for s in after] == ["okx"] + ["binance"] * (BARS - 60)
    taken_over = after[1:]
    assert [s.price for s in taken_over] == [c.close for c in binance[60:]]
    # the series restarted with Binance's candles only; the funding input was kept
    assert len(taken_over[0].candles) == 1
    # (one rate is too little history to rank, so the factor is missing for that reason,
    # not for want of a rate)
    funding_factor = next(f for f in taken_over[0].factors if f.name == "funding")
    assert funding_factor.reason is not None and "fewer than" in funding_factor.reason


def _dump(s: SignalScoredV1) -> dict[str, Any]:
    return s.model_dump(exclude={"produced_at"})


def test_primary_venue_settings() -> None:
    s = ScorerSettings(scorer_primary_venue="OKX", scorer_primary_venues="ethusdt:Binance, ")
    venues = s.primary_venues()
    assert (venues.of("BTCUSDT"), venues.of("ETHUSDT")) == ("okx", "binance")
    assert ScorerSettings(scorer_primary_venue="").primary_venues().of("BTCUSDT") is None
    with pytest.raises(Exception, match="SYMBOL:venue"):
        ScorerSettings(scorer_primary_venues="BTCUSDT").primary_venues()
