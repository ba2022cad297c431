"""OUTCOMES_CLOCK=event: a replayed horizon is due when the replayed candles reach it."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from perpsignal_common.db.engine import session_scope
from perpsignal_common.db.models.outcomes import SignalOutcome
from perpsignal_common.events.market import CandleClosedV1
from perpsignal_common.settings import DatabaseSettings
from perpsignal_outcomes.service import OutcomesService
from perpsignal_outcomes.settings import OutcomesSettings
from tests.integration.outcomes.conftest import judged, xrp_candle_rows

pytestmark = pytest.mark.db


def candle_event(row: dict) -> CandleClosedV1:
    """A recorded XRPUSDT 5m candle as the ingestor (or a replay) publishes it."""
    return CandleClosedV1(
        event_id=f"c-{row['open_time'].isoformat()}",
        source="binance",
        symbol="XRPUSDT",
        observed_at=row["open_time"] + timedelta(minutes=5),
        timeframe="5m",
        open_time=row["open_time"],
        open=row["open"],
        high=row["high"],
        low=row["low"],
        close=row["close"],
        volume=1.0,
    )


async def statuses(service: OutcomesService) -> dict[str, str]:
    async with session_scope(service.sessions) as s:
        rows = (await s.execute(select(SignalOutcome))).scalars().all()
    return {r.horizon: r.status for r in rows}


async def test_event_clock_evaluates_each_horizon_when_the_replayed_path_reaches_it(
    database_url: str, shared_data: Path
) -> None:
    settings = OutcomesSettings(
        database=DatabaseSettings(database_url=database_url),
        outcomes_clock="event",
        outcomes_klines_fallback=False,
        outcomes_settle_s=0,
        outcomes_candle_timeframes="5m",
    )
    service = OutcomesService(settings)
    rows = xrp_candle_rows(shared_data)
    signal = judged(observed_at=rows[0]["open_time"] + timedelta(minutes=5), price=rows[0]["close"])
    try:
        await service.handle(signal, None)  # type: ignore[arg-type]
        # the wall clock says every 2021 horizon is long due; market time has not reached any
        assert await service.tracker.evaluate_batch() == 0
        for row in rows[:13]:  # up to one market hour after the entry (its close)
            await service.handle(candle_event(row), None)  # type: ignore[arg-type]
        assert await service.tracker.evaluate_batch() == 1  # the 1h row, and only it
        assert await statuses(service) == {"1h": "completed", "4h": "pending", "24h": "pending"}
        for row in rows[13:49]:
            await service.handle(candle_event(row), None)  # type: ignore[arg-type]
        assert await service.tracker.evaluate_batch() == 1  # now the 4h row
        assert (await statuses(service))["4h"] == "completed"
        async with session_scope(service.sessions) as s:
            four = (
                await s.execute(select(SignalOutcome).where(SignalOutcome.horizon == "4h"))
            ).scalar_one()
        # measured on the replayed path: exit is the close of the candle ending at entry + 4h
        assert four.exit_price == rows[48]["close"]
        # bookkeeping stays on this machine's clock (tracking stats: "evaluated last hour")
        assert four.evaluated_at is not None and four.evaluated_at.year >= 2025
    finally:
        await service.signals.close()
        await service.engine.dispose()


async def test_a_restarted_service_resumes_market_time_from_the_stored_candles(
    database_url: str, shared_data: Path
) -> None:
    """The replay ended (no candle will come again) and the service restarts: the rows the
    stored path already reaches are still evaluated, on the market time those candles say."""
    settings = OutcomesSettings(
        database=DatabaseSettings(database_url=database_url),
        outcomes_clock="event",
        outcomes_klines_fallback=False,
        outcomes_settle_s=0,
        outcomes_candle_timeframes="5m",
    )
    rows = xrp_candle_rows(shared_data)
    signal = judged(observed_at=rows[0]["open_time"] + timedelta(minutes=5), price=rows[0]["close"])
    first = OutcomesService(settings)
    try:
        await first.handle(signal, None)  # type: ignore[arg-type]
        for row in rows[:49]:  # the replay's last candle closes at entry + 4h
            await first.handle(candle_event(row), None)  # type: ignore[arg-type]
        # stopped before its evaluator ran (a crash, a rolling update)
    finally:
        await first.signals.close()
        await first.engine.dispose()

    again = OutcomesService(settings)
    try:
        await again.on_start()
        assert again.market_now == rows[48]["open_time"] + timedelta(minutes=5)
        assert await again.tracker.evaluate_batch() == 2
        assert await statuses(again) == {"1h": "completed", "4h": "completed", "24h": "pending"}
    finally:
        await again.on_close()
