"""Live outcomes charge the funding a position really paid, from the market topic's settled
funding events; a window the stored settlements cannot prove complete stays unknown (NULL).

The events are the Binance connector's own (`parse_funding_history` over the recorded XRPUSDT
8h funding history in ../shared/data), handled by the outcomes service's real handler, and the
rows are evaluated by its tracker on market time over the recorded 5m candles.
"""

from __future__ import annotations

import csv
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from perpsignal_cli.backtesting.importers import read_funding
from perpsignal_common.db import analytics
from perpsignal_common.db.engine import session_scope
from perpsignal_common.db.models.outcomes import OutcomeFunding, SignalOutcome
from perpsignal_common.events.market import FundingRateV1
from perpsignal_common.settings import DatabaseSettings
from perpsignal_connectors.binance_usdm.parsing import parse_funding_history, parse_premium_index
from perpsignal_connectors.binance_usdm.schemas import FundingRateRow, PremiumIndex
from perpsignal_outcomes import repository as repo
from perpsignal_outcomes.service import OutcomesService
from perpsignal_outcomes.settings import OutcomesSettings
from tests.integration.outcomes.conftest import judged, xrp_candle_rows

pytestmark = pytest.mark.db

FUNDING_CSV = "XRP_USDT_USDT-8h-funding_rate.csv"
MISSED = datetime(2021, 11, 19, 0, 0, tzinfo=UTC)  # this settlement's event is lost at first


def recorded_funding(shared_data: Path) -> list[FundingRateV1]:
    """The recorded settlements as the ingestor publishes them (the connector's parser)."""
    path = shared_data / "market" / FUNDING_CSV
    if not path.exists():
        pytest.skip(f"{path} missing")
    with path.open() as f:
        rows = [
            FundingRateRow.model_validate(
                {
                    "symbol": "XRPUSDT",
                    "fundingRate": float(r["rate"]),
                    "fundingTime": int(r["time"]),
                }
            )
            for r in csv.DictReader(f)
        ]
    return parse_funding_history(rows)


def expected_pct(events: list[FundingRateV1], direction: str, entry: datetime, due: datetime):
    """Funding paid in % of entry notional, computed here from the recorded rates."""
    rates = [e.rate for e in events if entry < e.observed_at <= due]
    paid = math.fsum(rates) * 100
    return (paid if direction == "LONG" else -paid), len(rates)


def _settings(database_url: str, **overrides: object) -> OutcomesSettings:
    """Outcomes on market time over the recorded 5m candles, no live klines fallback."""
    return OutcomesSettings(
        database=DatabaseSettings(database_url=database_url),
        outcomes_clock="event",
        outcomes_klines_fallback=False,
        outcomes_settle_s=0,
        outcomes_candle_timeframes="5m",
        **overrides,  # type: ignore[arg-type]
    )


async def rows(service: OutcomesService) -> dict[tuple[str, str], SignalOutcome]:
    async with session_scope(service.sessions) as s:
        found = (await s.execute(select(SignalOutcome))).scalars().all()
    return {(r.signal_id, r.horizon): r for r in found}


async def test_funding_is_charged_from_settled_events_and_unknown_is_null(
    database_url: str, shared_data: Path
) -> None:
    service = OutcomesService(_settings(database_url, outcomes_funding_wait_s=30 * 86_400.0))
    candles = xrp_candle_rows(shared_data)
    funding = recorded_funding(shared_data)
    close_at = {r["open_time"] + timedelta(minutes=5): r["close"] for r in candles}
    # A: LONG after funding history starts; B: SHORT before the first recorded settlement
    a_at = datetime(2021, 11, 18, 6, 0, tzinfo=UTC)
    b_at = datetime(2021, 11, 15, 0, 5, tzinfo=UTC)
    a = judged(direction="LONG", observed_at=a_at, price=close_at[a_at])
    b = judged(direction="SHORT", observed_at=b_at, price=close_at[b_at])
    try:
        await service.handle(a, None)  # type: ignore[arg-type]
        await service.handle(b, None)  # type: ignore[arg-type]
        # a predicted rate (premium index) is not a settlement: ignored
        predicted = parse_premium_index(
            PremiumIndex.model_validate(
                {
                    "symbol": "XRPUSDT",
                    "markPrice": "1.1",
                    "indexPrice": "1.1",
                    "lastFundingRate": "0.0005",
                    "nextFundingTime": 1637280000000,
                    "time": 1637250000000,
                }
            )
        )
        await service.handle(predicted, None)  # type: ignore[arg-type]
        for ev in funding:
            if ev.observed_at.replace(microsecond=0) != MISSED:
                await service.handle(ev, None)  # type: ignore[arg-type]
        async with session_scope(service.sessions) as s:
            await repo.store_candles(s, candles)
        service.market_now = candles[-1]["open_time"] + timedelta(minutes=5)
        assert await service.tracker.evaluate_batch() == 6

        got = await rows(service)
        fees = {k: r.cost_pct for k, r in got.items()}
        assert all(c is not None and c > 0 for c in fees.values())
        for horizon, seconds in (("1h", 3600), ("4h", 14_400)):
            r = got[(a.signal_id, horizon)]
            paid, n = expected_pct(funding, "LONG", a_at, a_at + timedelta(seconds=seconds))
            assert r.funding_settlements == n
            assert r.funding_pct == pytest.approx(paid)
            assert r.net_pnl_pct == pytest.approx(r.pnl_pct - r.cost_pct - paid)
        assert got[(a.signal_id, "1h")].funding_settlements == 0  # none settled in 1h: 0 paid
        assert got[(a.signal_id, "4h")].funding_settlements == 1  # the 08:00 settlement
        assert got[(a.signal_id, "4h")].funding_pct == pytest.approx(0.01)  # 0.0001 paid long
        # 24h spans the lost settlement: unknown, not 0; gross and fees are still recorded
        day = got[(a.signal_id, "24h")]
        assert day.status == "completed" and day.pnl_pct is not None
        assert (day.funding_pct, day.net_pnl_pct, day.funding_settlements) == (None, None, None)
        # B entered before any settlement was recorded: every horizon's funding is unknown
        for horizon in ("1h", "4h", "24h"):
            r = got[(b.signal_id, horizon)]
            assert r.status == "completed" and r.funding_pct is None and r.net_pnl_pct is None

        # the API says so: null funding and net on the unknown rows, counted in the stats
        async with session_scope(service.sessions) as s:
            page = await analytics.outcomes_history(s, limit=10)
            stats = await analytics.tracking_stats(s)
        items = {(i.signal_id, i.horizon): i for i in page.items}
        assert items[(a.signal_id, "4h")].funding_pct == pytest.approx(0.01)
        assert items[(a.signal_id, "24h")].funding_pct is None
        assert items[(a.signal_id, "24h")].net_pnl_pct is None
        assert stats.funding_unknown == 4

        # the lost settlement arrives late (a redelivery or a backfill): filled in, B stays
        late = next(e for e in funding if e.observed_at.replace(microsecond=0) == MISSED)
        await service.handle(late, None)  # type: ignore[arg-type]
        assert await service.tracker.settle_funding() == 1
        day = (await rows(service))[(a.signal_id, "24h")]
        paid, n = expected_pct(funding, "LONG", a_at, a_at + timedelta(days=1))
        assert n == 3 and day.funding_settlements == 3
        assert day.funding_pct == pytest.approx(paid)
        assert day.net_pnl_pct == pytest.approx(day.pnl_pct - day.cost_pct - paid)
        assert (await rows(service))[(b.signal_id, "24h")].funding_pct is None
        assert await service.tracker.settle_funding() == 0
    finally:
        await service.signals.close()
        await service.engine.dispose()


async def test_rows_due_longer_ago_than_the_wait_stay_unknown(
    database_url: str, shared_data: Path
) -> None:
    service = OutcomesService(
        _settings(
            database_url,
            outcomes_horizons="1h",
            outcomes_funding_wait_s=3600.0,
            outcomes_candle_retention_s=7200.0,
        )
    )
    candles = xrp_candle_rows(shared_data)
    at = datetime(2021, 11, 18, 6, 0, tzinfo=UTC)
    close_at = {r["open_time"] + timedelta(minutes=5): r["close"] for r in candles}
    signal = judged(observed_at=at, price=close_at[at])
    try:
        await service.handle(signal, None)  # type: ignore[arg-type]
        async with session_scope(service.sessions) as s:
            await repo.store_candles(s, candles)
        service.market_now = candles[-1]["open_time"] + timedelta(minutes=5)
        assert await service.tracker.evaluate_batch() == 1  # no settlement stored: unknown
        for ev in recorded_funding(shared_data):
            await service.handle(ev, None)  # type: ignore[arg-type]
        # due three days before market time, past the 1 h wait: left unknown
        assert await service.tracker.settle_funding() == 0
        assert (await rows(service))[(signal.signal_id, "1h")].funding_pct is None
        # pruning keeps the settlements a window may still need: from 72 h before the oldest
        # window still open to funding (market time - 1 h wait - 1 h horizon), here 2021-11-18
        # 20:35, so the three settlements of 2021-11-18 00:00-16:00 go
        async with session_scope(service.sessions) as s:
            before = await s.scalar(select(func.count()).select_from(OutcomeFunding))
        await service.tracker.prune()
        async with session_scope(service.sessions) as s:
            kept = (await s.execute(select(OutcomeFunding.funding_time))).scalars().all()
        assert len(kept) == before - 3
        assert min(kept) > datetime(2021, 11, 18, 20, 35, tzinfo=UTC)
    finally:
        await service.signals.close()
        await service.engine.dispose()


async def test_rows_that_stay_unknown_do_not_starve_later_rows_of_their_funding(
    database_url: str, shared_data: Path
) -> None:
    """More windows stuck unknown (a lost settlement) than one batch holds: a later window
    whose settlements have all arrived still gets its funding filled in."""
    service = OutcomesService(
        _settings(
            database_url,
            outcomes_horizons="4h",
            outcomes_batch_size=2,
            outcomes_funding_wait_s=30 * 86_400.0,
        )
    )
    candles = xrp_candle_rows(shared_data)
    funding = recorded_funding(shared_data)
    close_at = {r["open_time"] + timedelta(minutes=5): r["close"] for r in candles}
    # two windows across the lost settlement (unknown for good), due first
    stuck = [datetime(2021, 11, 18, 22, m, tzinfo=UTC) for m in (0, 30)]
    # 09:00-13:00 holds no settlement, bracketed by 08:00 and 16:00 (not yet arrived)
    later_at = datetime(2021, 11, 19, 9, 0, tzinfo=UTC)
    closing = datetime(2021, 11, 19, 16, 0, tzinfo=UTC)
    signals = [judged(observed_at=at, price=close_at[at]) for at in [*stuck, later_at]]
    try:
        for sig in signals:
            await service.handle(sig, None)  # type: ignore[arg-type]
        for ev in funding:
            if ev.observed_at.replace(microsecond=0) not in (MISSED, closing):
                await service.handle(ev, None)  # type: ignore[arg-type]
        async with session_scope(service.sessions) as s:
            await repo.store_candles(s, candles)
        service.market_now = candles[-1]["open_time"] + timedelta(minutes=5)
        while await service.tracker.evaluate_batch():
            pass
        got = await rows(service)
        assert all(r.status == "completed" and r.funding_pct is None for r in got.values())

        late = next(e for e in funding if e.observed_at.replace(microsecond=0) == closing)
        await service.handle(late, None)  # type: ignore[arg-type]
        assert await service.tracker.settle_funding() == 1
        r = (await rows(service))[(signals[-1].signal_id, "4h")]
        assert (r.funding_settlements, r.funding_pct) == (0, 0.0)
        assert r.net_pnl_pct == pytest.approx(r.pnl_pct - r.cost_pct)
        for sig in signals[:-1]:
            assert (await rows(service))[(sig.signal_id, "4h")].funding_pct is None
    finally:
        await service.signals.close()
        await service.engine.dispose()


async def test_a_settlement_on_the_window_boundary_follows_the_rule(
    database_url: str, shared_data: Path
) -> None:
    """entry < settlement <= due, on the settlement's hour: Binance stamps a settlement a few
    ms after it (00:00:00.012 here), which must not move it out of the window that ends on
    it and into the one that starts on it."""
    service = OutcomesService(_settings(database_url, outcomes_horizons="1h"))
    candles = xrp_candle_rows(shared_data)
    funding = recorded_funding(shared_data)
    close_at = {r["open_time"] + timedelta(minutes=5): r["close"] for r in candles}
    settled = datetime(2021, 11, 20, 0, 0, tzinfo=UTC)
    rate = next(e.rate for e in funding if e.observed_at.replace(microsecond=0) == settled)
    assert rate == 0.00013046  # unlike its neighbours' 0.0001
    ending = settled - timedelta(hours=1)
    ends_on_it = judged(direction="LONG", observed_at=ending, price=close_at[ending])
    starts_on_it = judged(direction="SHORT", observed_at=settled, price=close_at[settled])
    try:
        for ev in [ends_on_it, starts_on_it, *funding]:
            await service.handle(ev, None)  # type: ignore[arg-type]
        async with session_scope(service.sessions) as s:
            await repo.store_candles(s, candles)
        service.market_now = candles[-1]["open_time"] + timedelta(minutes=5)
        assert await service.tracker.evaluate_batch() == 2
        got = await rows(service)
        held = got[(ends_on_it.signal_id, "1h")]
        assert held.funding_settlements == 1
        assert held.funding_pct == pytest.approx(rate * 100)  # a LONG pays it
        opened = got[(starts_on_it.signal_id, "1h")]
        assert (opened.funding_settlements, opened.funding_pct) == (0, 0.0)
        assert opened.net_pnl_pct == pytest.approx(opened.pnl_pct - opened.cost_pct)
    finally:
        await service.signals.close()
        await service.engine.dispose()


async def test_a_settlement_stored_twice_is_paid_once(
    database_url: str, shared_data: Path, tmp_path: Path
) -> None:
    """The ingestor's settlements (Binance's stamps, ms after the hour) and the same history
    imported from a file stamped on the whole second (`perpsignal` importer) are two rows per
    settlement: a position pays each settlement once, not twice."""
    service = OutcomesService(_settings(database_url))
    candles = xrp_candle_rows(shared_data)
    live = recorded_funding(shared_data)
    exported = tmp_path / "funding.csv"
    exported.write_text(
        "time,rate\n"
        + "".join(f"{e.observed_at.replace(microsecond=0).isoformat()},{e.rate!r}\n" for e in live)
    )
    imported = read_funding(exported, "XRPUSDT", venue="binance")
    assert len(imported) == len(live)
    stamps = {e.observed_at for e in live} | {e.observed_at for e in imported}
    assert len(stamps) > len(live)  # Binance stamps most a few ms after the hour
    close_at = {r["open_time"] + timedelta(minutes=5): r["close"] for r in candles}
    at = datetime(2021, 11, 18, 6, 0, tzinfo=UTC)  # its 4h window holds the 08:00 settlement
    signal = judged(direction="LONG", observed_at=at, price=close_at[at])
    try:
        await service.handle(signal, None)  # type: ignore[arg-type]
        for ev in [*live, *imported]:
            await service.handle(ev, None)  # type: ignore[arg-type]
        async with session_scope(service.sessions) as s:
            assert await s.scalar(select(func.count()).select_from(OutcomeFunding)) == len(stamps)
            await repo.store_candles(s, candles)
        service.market_now = candles[-1]["open_time"] + timedelta(minutes=5)
        assert await service.tracker.evaluate_batch() == 3

        got = await rows(service)
        for horizon, seconds in (("4h", 14_400), ("24h", 86_400)):
            r = got[(signal.signal_id, horizon)]
            paid, n = expected_pct(live, "LONG", at, at + timedelta(seconds=seconds))
            assert n >= 1
            assert r.funding_settlements == n  # was 2n: each settlement charged twice
            assert r.funding_pct == pytest.approx(paid)
    finally:
        await service.signals.close()
        await service.engine.dispose()
