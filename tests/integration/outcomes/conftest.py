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
from perpsignal_common.events.signals import SignalJudgedV1
from perpsignal_common.settings import DatabaseSettings
from tests.producers import real_judged

XRP_5M = "XRP_USDT_USDT-5m-futures.csv"
XRP_FILES = {"5m": XRP_5M, "1h": "XRP_USDT_USDT-1h-futures.csv"}


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
    verdict: str | None = None,
    risk_mode: str | None = None,
    judge: str = "rules",
    score: float | None = None,
    stop: float | None = None,
    target: float | None = None,
    signal_id: str | None = None,
) -> SignalJudgedV1:
    """A judged signal as the judge publishes it (tests/producers.py: the scorer's engine and
    the rule judge), for `symbol` at `price`, with the rule judge's `verdict` (default
    CONFIRM, WAIT for NEUTRAL) in `direction` and its factors, checks, SMC and trade plan.

    WAIT LONG/SHORT only happens on the recorded XRPUSDT week, so such a signal keeps its
    recorded price. Re-keyed: identity (signal and event ids, observed time) and what a test
    sets on purpose because the rule judge cannot give it:
    - `stop` / `target`: levels placed at chosen recorded candle prices, so a test knows
      which one the path hits first (the producer's own plan is kept when not given);
    - `judge="llm"`, a `risk_mode` or `score` outside the rule table (the analytics group
      by them; the LLM judge is not run in these tests).
    """
    sid = signal_id or uuid.uuid4().hex
    verdict = verdict or ("WAIT" if direction == "NEUTRAL" else "CONFIRM")
    plan = direction != "NEUTRAL"
    base = real_judged(verdict, direction, plan, symbol=symbol, price=price, score_near=score)
    layer = base.ai_verdict_layer
    vol = layer.volatility_metrics
    if stop is not None or target is not None:
        vol = vol.model_copy(update={"stop_loss_price": stop, "take_profit_price": target})
    layer_update: dict[str, object] = {"judge": judge, "volatility_metrics": vol}
    if risk_mode is not None:
        layer_update["risk_mode"] = risk_mode
    update: dict[str, object] = {
        "event_id": f"ev-{sid}",
        "signal_id": sid,
        "observed_at": observed_at or datetime(2021, 11, 15, 0, 5, tzinfo=UTC),
        "ai_verdict_layer": layer.model_copy(update=layer_update),
    }
    if score is not None:
        update["score"] = score
    return base.model_copy(update=update)


def xrp_candle_rows(shared_data: Path, timeframe: str = "5m") -> list[dict[str, object]]:
    """The recorded XRPUSDT candles of `timeframe` (5m or 1h) as `outcome_candles` rows."""
    path = shared_data / "market" / XRP_FILES[timeframe]
    if not path.exists():
        pytest.skip(f"{path} missing")
    with path.open() as f:
        return [
            {
                "symbol": "XRPUSDT",
                "timeframe": timeframe,
                "open_time": datetime.fromtimestamp(int(r["open_time"]) / 1000, tz=UTC),
                "open": float(r["open"]),
                "high": float(r["high"]),
                "low": float(r["low"]),
                "close": float(r["close"]),
                "source": "stream",
            }
            for r in csv.DictReader(f)
        ]
