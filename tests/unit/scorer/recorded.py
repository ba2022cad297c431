"""Turn the recorded CSVs in ../shared/data/market into market events (test input only)."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from perpsignal_common.events.base import Event, deterministic_id
from perpsignal_common.events.market import (
    TIMEFRAME_SECONDS,
    CandleClosedV1,
    FearGreedV1,
    FundingRateV1,
    LongShortRatioV1,
    OpenInterestV1,
)


def _dt(ms: str) -> datetime:
    return datetime.fromtimestamp(int(ms) / 1000, UTC)


def _rows(path: Path) -> Iterator[dict[str, str]]:
    with path.open(newline="") as f:
        yield from csv.DictReader(f)


def candles(path: Path, symbol: str, tf: str) -> list[CandleClosedV1]:
    step = timedelta(seconds=TIMEFRAME_SECONDS[tf])
    out = []
    for r in _rows(path):
        opened = _dt(r["open_time"])
        out.append(
            CandleClosedV1(
                event_id=deterministic_id("binance", "candle", symbol, tf, r["open_time"]),
                source="binance",
                symbol=symbol,
                observed_at=opened + step,
                timeframe=tf,  # type: ignore[arg-type]
                open_time=opened,
                open=float(r["open"]),
                high=float(r["high"]),
                low=float(r["low"]),
                close=float(r["close"]),
                volume=float(r.get("volume") or 0.0),
            )
        )
    return out


def funding(path: Path, symbol: str) -> list[FundingRateV1]:
    return [
        FundingRateV1(
            event_id=deterministic_id("binance", "funding", symbol, r["time"]),
            source="binance",
            symbol=symbol,
            observed_at=_dt(r["time"]),
            rate=float(r["rate"]),
            interval_h=8,
            settled=True,
        )
        for r in _rows(path)
    ]


def fear_greed(path: Path) -> list[FearGreedV1]:
    return [
        FearGreedV1(
            event_id=deterministic_id("alternative_me", "fng", r["time"]),
            source="alternative_me",
            symbol="fear_greed",
            observed_at=_dt(r["time"]),
            value=int(r["value"]),
        )
        for r in _rows(path)
    ]


def oi_long_short(path: Path, symbol: str) -> list[Event]:
    out: list[Event] = []
    for r in _rows(path):
        at = _dt(r["time"])
        out.append(
            OpenInterestV1(
                event_id=deterministic_id("binance", "oi", symbol, r["time"]),
                source="binance",
                symbol=symbol,
                observed_at=at,
                open_interest=float(r["sumOpenInterest"]),
                open_interest_usd=float(r["sumOpenInterestValue"]),
                period="5m",
            )
        )
        for kind, long_col, short_col, ratio_col in (
            ("global_account", "globallongAccount", "globalshortAccount", "globallongShortRatio"),
            ("top_account", "toplongAccount", "topshortAccount", "topacclongShortRatio"),
            ("top_position", "longPosition", "shortPosition", "topposlongShortRatio"),
        ):
            out.append(
                LongShortRatioV1(
                    event_id=deterministic_id("binance", "ls", kind, symbol, r["time"]),
                    source="binance",
                    symbol=symbol,
                    observed_at=at,
                    kind=kind,  # type: ignore[arg-type]
                    long_share=float(r[long_col]),
                    short_share=float(r[short_col]),
                    ratio=float(r[ratio_col]),
                    period="5m",
                )
            )
    return out


def merged(*streams: list[Event]) -> list[Event]:
    """Merge event lists by observed time (stable: ties keep stream order)."""
    tagged = [(e.observed_at, k, i, e) for k, s in enumerate(streams) for i, e in enumerate(s)]
    tagged.sort(key=lambda x: (x[0], x[1], x[2]))
    return [e for *_, e in tagged]
