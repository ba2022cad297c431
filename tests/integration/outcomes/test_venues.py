"""Two venues send one symbol (the ingestor's OKX source sends BTCUSDT and ETHUSDT beside
Binance's by default): a signal's path is its own venue's candles, never a mix, and it pays
its own venue's funding, never another's.

The candles are the connectors' own events (Binance klines and OKX candles parsed by
`perpsignal_connectors`) over the recorded XRPUSDT 5m week, OKX's 1 % above Binance's,
handled by the outcomes service's real handler.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from perpsignal_common.db.engine import session_scope
from perpsignal_common.db.models.outcomes import SignalOutcome
from perpsignal_common.events.market import CandleClosedV1
from perpsignal_common.settings import DatabaseSettings
from perpsignal_connectors.binance_usdm.parsing import parse_klines
from perpsignal_connectors.binance_usdm.schemas import KlineRow
from perpsignal_connectors.okx.parsing import parse_candles
from perpsignal_connectors.okx.schemas import OkxCandle
from perpsignal_outcomes.service import OutcomesService
from perpsignal_outcomes.settings import OutcomesSettings
from tests.integration.outcomes.conftest import judged, xrp_candle_rows
from tests.integration.outcomes.test_funding import recorded_funding

pytestmark = pytest.mark.db

ENTRY = datetime(2021, 11, 15, 0, 5, tzinfo=UTC)
BASIS = 1.01


def binance_candles(rows: list[dict]) -> list[CandleClosedV1]:
    ms = [int(r["open_time"].timestamp() * 1000) for r in rows]  # type: ignore[union-attr]
    klines = [
        KlineRow.model_validate(
            [t, r["open"], r["high"], r["low"], r["close"], 1.0, t + 299_999, 1.0, 1, 0.5]
        )
        for t, r in zip(ms, rows, strict=True)
    ]
    return parse_klines(klines, "XRPUSDT", "5m", datetime.now(UTC))


def okx_candles(rows: list[dict]) -> list[CandleClosedV1]:
    okx = [
        OkxCandle.model_validate(
            [
                int(r["open_time"].timestamp() * 1000),
                *(round(r[k] * BASIS, 6) for k in ("open", "high", "low", "close")),
                1.0,
                1.0,
                1.0,
                "1",
            ]
        )
        for r in rows
    ]
    return parse_candles(okx, "XRPUSDT", "5m")


async def test_each_signal_is_measured_on_its_own_venues_candles(
    database_url: str, shared_data: Path
) -> None:
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
    rows = xrp_candle_rows(shared_data)[:14]  # entry 00:05 .. 01:10
    binance, okx = binance_candles(rows), okx_candles(rows)
    assert {c.venue for c in binance} == {"binance"} and {c.venue for c in okx} == {"okx"}
    close = {c.observed_at: c.close for c in binance}
    okx_close = {c.observed_at: c.close for c in okx}
    due = ENTRY + timedelta(hours=1)
    on_binance = judged(observed_at=ENTRY, price=close[ENTRY])
    assert on_binance.venue == "binance"  # the scorer names the venue it priced on
    on_okx = judged(observed_at=ENTRY, price=okx_close[ENTRY]).model_copy(update={"venue": "okx"})
    try:
        # OKX's poll happens to land first, then Binance's, alternating
        for a, b in zip(okx, binance, strict=True):
            await service.handle(a, None)  # type: ignore[arg-type]
            await service.handle(b, None)  # type: ignore[arg-type]
        for sig in (on_binance, on_okx):
            await service.handle(sig, None)  # type: ignore[arg-type]
        assert await service.tracker.evaluate_batch() == 2
        async with session_scope(service.sessions) as s:
            got = {r.signal_id: r for r in (await s.execute(select(SignalOutcome))).scalars()}
        b, o = got[on_binance.signal_id], got[on_okx.signal_id]
        assert (b.status, o.status) == ("completed", "completed")
        assert b.exit_price == close[due]
        assert o.exit_price == okx_close[due]
        # the same market move from either venue: equal P&L, not a 1 % basis
        assert b.pnl_pct == pytest.approx(o.pnl_pct, abs=1e-3)
        assert b.max_adverse_pct == pytest.approx(o.max_adverse_pct, abs=1e-3)
    finally:
        await service.signals.close()
        await service.engine.dispose()


FUNDED_AT = datetime(2021, 11, 18, 6, 0, tzinfo=UTC)  # 4h to 10:00 spans the 08:00 settlement


def _funded_service(database_url: str) -> OutcomesService:
    return OutcomesService(
        OutcomesSettings(
            database=DatabaseSettings(database_url=database_url),
            outcomes_clock="event",
            outcomes_klines_fallback=False,
            outcomes_settle_s=0,
            outcomes_candle_timeframes="5m",
            outcomes_horizons="4h",
            outcomes_funding_wait_s=30 * 86_400.0,
        )
    )


def _window(shared_data: Path) -> list[dict]:
    """The recorded 5m candles around FUNDED_AT's 4h window (the 05:55 candle closes at entry)."""
    rows = xrp_candle_rows(shared_data)
    first = FUNDED_AT - timedelta(minutes=5)
    return [r for r in rows if first <= r["open_time"] < FUNDED_AT + timedelta(hours=4)]  # type: ignore[operator]


async def test_each_signal_pays_its_own_venues_funding_and_okx_funding_is_unknown(
    database_url: str, shared_data: Path
) -> None:
    """The ingestor publishes settled funding for Binance only (OKX sends candles, nothing
    else): a position priced on OKX candles is not charged Binance's rate, its funding is
    unknown (NULL, never 0) while the Binance signal beside it pays the 08:00 settlement."""
    service = _funded_service(database_url)
    rows = _window(shared_data)
    binance, okx = binance_candles(rows), okx_candles(rows)
    funding = recorded_funding(shared_data)
    assert {e.venue for e in funding} == {"binance"} and all(e.settled for e in funding)
    close = {c.observed_at: c.close for c in binance}
    okx_close = {c.observed_at: c.close for c in okx}
    on_binance = judged(observed_at=FUNDED_AT, price=close[FUNDED_AT])
    on_okx = judged(observed_at=FUNDED_AT, price=okx_close[FUNDED_AT]).model_copy(
        update={"venue": "okx"}
    )
    try:
        for ev in [*funding, *okx, *binance, on_binance, on_okx]:
            await service.handle(ev, None)  # type: ignore[arg-type]
        assert await service.tracker.evaluate_batch() == 2
        b, o = await _by_signal(service, on_binance.signal_id, on_okx.signal_id)
        assert (b.status, o.status) == ("completed", "completed")
        assert (b.funding_settlements, b.funding_pct) == (1, pytest.approx(0.01))  # LONG pays
        assert b.net_pnl_pct == pytest.approx(b.pnl_pct - b.cost_pct - 0.01)
        assert o.pnl_pct is not None and o.cost_pct is not None  # measured on OKX's prices
        assert (o.funding_pct, o.funding_settlements, o.net_pnl_pct) == (None, None, None)
        # the re-check of unknown funding does not borrow Binance's rate either
        assert await service.tracker.settle_funding() == 0
        b, o = await _by_signal(service, on_binance.signal_id, on_okx.signal_id)
        assert o.funding_pct is None and b.funding_pct == pytest.approx(0.01)
    finally:
        await service.signals.close()
        await service.engine.dispose()


async def test_a_signal_of_unknown_venue_priced_on_okx_candles_pays_okx_funding(
    database_url: str, shared_data: Path
) -> None:
    """A signal without a venue (published before the scorer named it) whose only candles
    are OKX's is priced on them: its funding is OKX's (unknown here), and the venue that
    priced it is recorded so the later funding re-check looks there too."""
    service = _funded_service(database_url)
    okx = okx_candles(_window(shared_data))
    okx_close = {c.observed_at: c.close for c in okx}
    signal = judged(observed_at=FUNDED_AT, price=okx_close[FUNDED_AT]).model_copy(
        update={"venue": None}
    )
    try:
        for ev in [*recorded_funding(shared_data), *okx, signal]:
            await service.handle(ev, None)  # type: ignore[arg-type]
        assert await service.tracker.evaluate_batch() == 1
        (row,) = await _by_signal(service, signal.signal_id)
        assert (
            row.status == "completed"
            and row.exit_price == okx_close[FUNDED_AT + timedelta(hours=4)]
        )
        assert (row.funding_pct, row.funding_settlements, row.net_pnl_pct) == (None, None, None)
        assert row.venue == "okx"  # recorded: the re-check below looks at OKX's funding too
        assert await service.tracker.settle_funding() == 0
        (row,) = await _by_signal(service, signal.signal_id)
        assert row.funding_pct is None
    finally:
        await service.signals.close()
        await service.engine.dispose()


async def _by_signal(service: OutcomesService, *signal_ids: str) -> list[SignalOutcome]:
    async with session_scope(service.sessions) as s:
        got = {r.signal_id: r for r in (await s.execute(select(SignalOutcome))).scalars()}
    return [got[i] for i in signal_ids]
