"""The live evaluator stores net P&L beside the gross one, with the configured costs."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from perpsignal_common.db.engine import session_scope
from perpsignal_outcomes import repository as repo
from perpsignal_outcomes.tracker import Tracker
from tests.integration.outcomes.conftest import judged, xrp_candle_rows
from tests.integration.outcomes.test_tracking import LATER, outcomes, settings, store

pytestmark = pytest.mark.db


async def test_completed_rows_carry_fees_and_slippage_of_both_legs(
    sessions: async_sessionmaker[AsyncSession], shared_data: Path
) -> None:
    async with session_scope(sessions) as s:
        await repo.store_candles(s, xrp_candle_rows(shared_data))
    ev = judged(stop=1.1935, target=1.2100)  # LONG at 00:05 from 1.1941
    await store(sessions, ev)
    cfg = settings(outcomes_taker_fee_bp=4.0, outcomes_slippage_bp=1.0)
    tracker = Tracker(cfg, sessions, None, clock=lambda: LATER)
    assert await tracker.evaluate_batch() == 3

    one = (await outcomes(sessions))[(ev.signal_id, "1h")]
    assert one.pnl_pct is not None
    assert one.exit_price == 1.2123
    assert one.pnl_pct == pytest.approx((1.2123 - 1.1941) / 1.1941 * 100)
    # 5 bp on the entry notional and 5 bp on the exit notional, in % of the entry
    fees = 0.05 * (1 + 1.2123 / 1.1941)
    assert one.cost_pct == pytest.approx(fees)
    # no settled funding stored for the window: unknown, never assumed 0 (test_funding.py)
    assert one.funding_pct is None and one.net_pnl_pct is None
    assert one.result == "WIN"  # classified on the gross move
