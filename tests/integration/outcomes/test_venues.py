"""Two venues send one symbol (the ingestor's OKX source sends BTCUSDT and ETHUSDT beside
Binance's by default): a signal's path is its own venue's candles, never a mix.

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
