"""Fixtures of the outcomes integration tests: a session factory and event builders."""

from __future__ import annotations

import csv
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from perpsignal_common.db.engine import create_engine, create_sessionmaker
from perpsignal_common.events.signals import SignalJudgedV1, VerdictLayer, VolatilityMetrics
from perpsignal_common.settings import DatabaseSettings

XRP_5M = "XRP_USDT_USDT-5m-futures.csv"


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(DatabaseSettings(database_url=database_url))
    try:
        yield create_sessionmaker(engine)
    finally:
        await engine.dispose()


def judged(
    *,
    symbol: str = "XRPUSDT",
    direction: str = "LONG",
    price: float = 1.1941,
    observed_at: datetime | None = None,
    verdict: str = "CONFIRM",
    risk_mode: str = "NORMAL",
    judge: str = "rules",
    score: float = 72.0,
    stop: float | None = None,
    target: float | None = None,
    signal_id: str | None = None,
) -> SignalJudgedV1:
    """Build a judged signal as the judge publishes it."""
    sid = signal_id or uuid.uuid4().hex
    return SignalJudgedV1(
        event_id=f"ev-{sid}",
        source="judge",
        symbol=symbol,
        observed_at=observed_at or datetime(2021, 11, 15, 0, 5, tzinfo=UTC),
        signal_id=sid,
        timeframe="5m",
        direction=direction,  # type: ignore[arg-type]
        score=score,
        confidence=60.0,
        price=price,
        ai_verdict_layer=VerdictLayer(
            verdict=verdict,  # type: ignore[arg-type]
            risk_mode=risk_mode,  # type: ignore[arg-type]
            position_multiplier=1.0,
            ai_summary="test",
            judge=judge,  # type: ignore[arg-type]
            volatility_metrics=VolatilityMetrics(stop_loss_price=stop, take_profit_price=target),
        ),
    )


def xrp_candle_rows(shared_data: Path) -> list[dict[str, object]]:
    """The recorded XRPUSDT 5m candles as `outcome_candles` rows."""
    path = shared_data / "market" / XRP_5M
    if not path.exists():
        pytest.skip(f"{path} missing")
    with path.open() as f:
        return [
            {
                "symbol": "XRPUSDT",
                "timeframe": "5m",
                "open_time": datetime.fromtimestamp(int(r["open_time"]) / 1000, tz=UTC),
                "open": float(r["open"]),
                "high": float(r["high"]),
                "low": float(r["low"]),
                "close": float(r["close"]),
                "source": "stream",
            }
            for r in csv.DictReader(f)
        ]
