"""Values the contracts allow fit the outcomes tables (outcomes_0007).

A symbol may have 64 characters, an event id and a venue name 256 (`events/values.py`); a
Linux host name, part of the worker that completes a row, 64. Each used to fail its INSERT or
UPDATE.
"""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from perpsignal_common.db.engine import session_scope
from perpsignal_common.db.models.outcomes import SignalOutcome
from perpsignal_common.events.values import MAX_ID_LENGTH, MAX_SYMBOL_LENGTH
from perpsignal_connectors.binance_usdm import parse_klines
from perpsignal_connectors.binance_usdm.schemas import KLINES
from perpsignal_outcomes import repository as repo
from perpsignal_outcomes.settings import OutcomesSettings
from perpsignal_outcomes.tracker import Tracker
from tests.binance_klines import RecordedKlines
from tests.integration.outcomes.conftest import judged, xrp_candle_rows
from tests.integration.outcomes.test_tracking import LATER, FakeProducer

pytestmark = pytest.mark.db

HORIZONS = {"1h": 3600}
# the longest symbol the contract allows (a dated OKX-style contract name, padded)
LONG_SYMBOL = ("XRP-USDT-SWAP-" + "X" * MAX_SYMBOL_LENGTH)[:MAX_SYMBOL_LENGTH]


def settings() -> OutcomesSettings:
    return OutcomesSettings(outcomes_settle_s=0, outcomes_candle_timeframes="5m")


async def _store_candles(sessions, shared_data: Path, symbol: str) -> None:
    rows = [r | {"symbol": symbol} for r in xrp_candle_rows(shared_data)]
    async with session_scope(sessions) as s:
        await repo.store_candles(s, rows)


async def test_a_signal_of_the_longest_symbol_is_stored_and_measured(
    sessions, database_url, shared_data: Path
) -> None:
    # the judge's signal for that symbol (the scorer run on it), with ids as long as allowed
    ev = judged(symbol=LONG_SYMBOL)
    ev = ev.model_copy(update={"event_id": "e" * MAX_ID_LENGTH, "signal_id": "s" * MAX_ID_LENGTH})
    assert ev.symbol == LONG_SYMBOL
    writer = repo.SignalWriter(database_url.replace("+asyncpg", ""), HORIZONS, timedelta(0))
    try:
        await writer.store(ev)  # was: value too long for type character varying(32)
    finally:
        await writer.close()
    await _store_candles(sessions, shared_data, LONG_SYMBOL)

    tracker = Tracker(settings(), sessions, FakeProducer(), clock=lambda: LATER)  # type: ignore[arg-type]
    assert await tracker.evaluate_batch() == 1
    assert await tracker.publish_batch() == 1
    async with session_scope(sessions) as s:
        (row,) = (await s.scalars(select(SignalOutcome))).all()
    assert (row.symbol, row.signal_id, row.status) == (LONG_SYMBOL, ev.signal_id, "completed")
    assert row.candles_used == 12


async def test_a_worker_on_a_host_with_the_longest_name_completes_rows(
    sessions, shared_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Linux allows 64 characters (HOST_NAME_MAX); the worker is `hostname:pid`
    host = "perpsignal-outcomes-7d9f8b6c5d-x2x4k.eu-west-1.compute.internal"[:64].ljust(64, "x")
    monkeypatch.setattr(socket, "gethostname", lambda: host)
    await _store_candles(sessions, shared_data, "XRPUSDT")
    ev = judged()
    async with session_scope(sessions) as s:
        await repo.store_signals(s, [ev], HORIZONS, timedelta(0))

    tracker = Tracker(settings(), sessions, FakeProducer(), clock=lambda: LATER)  # type: ignore[arg-type]
    assert tracker.worker.startswith(host)
    assert await tracker.evaluate_batch() == 1  # the completing UPDATE failed every batch
    async with session_scope(sessions) as s:
        (row,) = (await s.scalars(select(SignalOutcome))).all()
    assert (row.status, row.evaluated_by) == ("completed", tracker.worker)


async def test_a_venue_with_a_long_name_prices_its_signals(sessions, shared_data: Path) -> None:
    # the Binance connector's candles under another venue's name, as long as the contract
    # allows (an Ident): its candles and its signal are stored and measured on each other
    venue = "v" * MAX_ID_LENGTH
    rows = KLINES.validate_python(RecordedKlines(shared_data).rows)
    now = datetime(2021, 11, 22, tzinfo=UTC)
    candles = parse_klines(rows, "XRPUSDT", "5m", now, venue=venue)
    async with session_scope(sessions) as s:
        await repo.store_candles(s, [repo.candle_row(c) for c in candles])
        ev = judged().model_copy(update={"venue": venue})
        await repo.store_signals(s, [ev], HORIZONS, timedelta(0))

    tracker = Tracker(settings(), sessions, FakeProducer(), clock=lambda: now)  # type: ignore[arg-type]
    assert await tracker.evaluate_batch() == 1
    async with session_scope(sessions) as s:
        (row,) = (await s.scalars(select(SignalOutcome))).all()
    assert (row.status, row.venue, row.candles_used) == ("completed", venue, 12)
