"""A stream candle off its timeframe's grid never fills a hole in a path.

The path of a row is the stored candles opening inside its window, counted against the
candles the window must hold. The contract does not pin a candle's open time to its grid, so
a 5m candle stamped 00:32:30 (a producer's clock bug, or an import whose times are not the
opens) beside a missing 00:30 candle made a path with a hole look whole, and it was measured.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from perpsignal_common.db.engine import session_scope
from perpsignal_common.db.models.outcomes import OutcomeCandle, SignalOutcome
from perpsignal_common.errors import PermanentError
from perpsignal_common.settings import DatabaseSettings
from perpsignal_connectors.binance_usdm import parse_klines
from perpsignal_connectors.binance_usdm.schemas import KLINES
from perpsignal_outcomes.service import OutcomesService
from perpsignal_outcomes.settings import OutcomesSettings
from tests.binance_klines import RecordedKlines
from tests.integration.outcomes.conftest import judged

pytestmark = pytest.mark.db

HOLE = datetime(2021, 11, 15, 0, 30, tzinfo=UTC)


async def test_an_off_grid_candle_does_not_fill_a_gap(database_url: str, shared_data: Path) -> None:
    service = OutcomesService(
        OutcomesSettings(
            database=DatabaseSettings(database_url=database_url),
            outcomes_clock="event",
            outcomes_klines_fallback=False,
            outcomes_settle_s=0,
            outcomes_candle_timeframes="5m",
            outcomes_horizons="1h",
        )
    )
    # the Binance connector's candles of the recorded first hours
    rows = KLINES.validate_python(RecordedKlines(shared_data).rows[:24])
    candles = parse_klines(rows, "XRPUSDT", "5m", datetime(2021, 11, 16, tzinfo=UTC))
    # the 00:30 candle never arrives; set by hand (no producer here emits it): the same candle
    # stamped 2.5 minutes late, off the 5m grid
    lost = next(c for c in candles if c.open_time == HOLE)
    late = lost.model_copy(update={"open_time": HOLE + timedelta(minutes=2, seconds=30)})
    signal = judged(observed_at=datetime(2021, 11, 15, 0, 5, tzinfo=UTC))
    try:
        await service.handle(signal, None)  # type: ignore[arg-type]
        for candle in [c for c in candles if c is not lost] + [late]:
            await service.handle(candle, None)  # type: ignore[arg-type]
        assert await service.tracker.evaluate_batch() == 1
        async with session_scope(service.sessions) as s:
            (row,) = (await s.scalars(select(SignalOutcome))).all()
            opens = set(await s.scalars(select(OutcomeCandle.open_time)))
        # was: completed, 12 candles, on a path without its 00:30 candle
        assert (row.status, row.candles_used) == ("pending", None)
        assert "no complete candle path" in (row.reason or "")
        assert late.open_time not in opens
    finally:
        await service.signals.close()
        await service.engine.dispose()


async def test_a_candle_whose_venue_the_database_refuses_fails_at_once_with_why(
    database_url: str, shared_data: Path
) -> None:
    # a venue is any 1-256 characters (the contract), PostgreSQL text holds no NUL: the
    # candle's INSERT failed alike on every attempt and was dead-lettered with the raw error
    service = OutcomesService(
        OutcomesSettings(
            database=DatabaseSettings(database_url=database_url),
            outcomes_klines_fallback=False,
            outcomes_candle_timeframes="5m",
        )
    )
    rows = KLINES.validate_python(RecordedKlines(shared_data).rows[:2])
    good, bad = parse_klines(rows, "XRPUSDT", "5m", datetime(2021, 11, 16, tzinfo=UTC))
    bad = bad.model_copy(update={"venue": "bin\x00ance"})
    try:
        await service.handle(good, None)  # type: ignore[arg-type]
        with pytest.raises(PermanentError, match=r"refuses a value.*0x00.*cannot succeed"):
            await service.handle(bad, None)  # type: ignore[arg-type]
        async with session_scope(service.sessions) as s:
            assert list(await s.scalars(select(OutcomeCandle.open_time))) == [good.open_time]
    finally:
        await service.signals.close()
        await service.engine.dispose()
