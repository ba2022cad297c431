"""Builders for judge tests: scored signals over real recorded candles."""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta
from pathlib import Path

from perpsignal_common.events.base import deterministic_id
from perpsignal_common.events.signals import (
    FACTOR_NAMES,
    FactorScore,
    Ohlc,
    SignalScoredV1,
    SmcSummary,
)

XRP_1H = "market/XRP_USDT_USDT-1h-futures.csv"
T0 = datetime(2021, 11, 21, 4, tzinfo=UTC)


def load_candles(shared_data: Path, name: str = XRP_1H) -> list[Ohlc]:
    """Read a recorded candle CSV (`open_time` ms, OHLCV) into Ohlc, oldest first."""
    with (shared_data / name).open() as fh:
        return [
            Ohlc(
                open_time=datetime.fromtimestamp(int(r["open_time"]) / 1000, UTC),
                open=float(r["open"]),
                high=float(r["high"]),
                low=float(r["low"]),
                close=float(r["close"]),
                volume=float(r.get("volume") or 0),
            )
            for r in csv.DictReader(fh)
        ]


def signal(
    *,
    symbol: str = "XRPUSDT",
    direction: str = "LONG",
    score: float = 70,
    confidence: float = 60,
    factors: dict[str, float] | None = None,
    missing: tuple[str, ...] = (),
    stale: tuple[str, ...] = (),
    smc: str = "NEUTRAL",
    funding_rate: float | None = None,
    ls_ratio: float | None = None,
    candles: list[Ohlc] | tuple[Ohlc, ...] = (),
    price: float | None = None,
    seq: int = 0,
    social_topic: str | None = None,
) -> SignalScoredV1:
    """Return a scored signal; factors not named score 50 (neutral), `missing` ones too."""
    scores = factors or {}
    built = []
    for name in FACTOR_NAMES:
        status = "missing" if name in missing else "stale" if name in stale else "ok"
        inputs: dict[str, float | str | None] = {}
        if name == "funding" and funding_rate is not None:
            inputs["funding_rate"] = funding_rate
        if name == "long_short" and ls_ratio is not None:
            inputs["long_short_ratio"] = ls_ratio
        if name == "social" and social_topic is not None:
            inputs["top_topic"] = social_topic
        s = 50.0 if status != "ok" else scores.get(name, 50.0)
        built.append(
            FactorScore(
                name=name,  # type: ignore[arg-type]
                score=s,
                weight=12.5,
                contribution=0.125 * (s - 50),
                status=status,  # type: ignore[arg-type]
                inputs=inputs,
            )
        )
    at = T0 + timedelta(hours=seq)
    return SignalScoredV1(
        event_id=deterministic_id("test-signal", symbol, seq),
        source="scorer",
        symbol=symbol,
        observed_at=at,
        signal_id=deterministic_id("sig", symbol, seq),
        timeframe="1h",
        direction=direction,  # type: ignore[arg-type]
        score=score,
        confidence=confidence,
        price=price if price is not None else (candles[-1].close if candles else 1.0),
        factors=tuple(built),
        missing_factors=missing,
        stale_factors=stale,
        smc=SmcSummary(bias=smc),  # type: ignore[arg-type]
        candles=tuple(candles),
    )
