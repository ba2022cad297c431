"""Storage and tracking against a real PostgreSQL: idempotency, evaluation, missing prices."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
import respx
from sqlalchemy import func, select

from perpsignal_common.db.engine import session_scope
from perpsignal_common.db.models.outcomes import OutcomeCandle, OutcomeSignal, SignalOutcome
from perpsignal_common.events.base import Event
from perpsignal_common.events.signals import OutcomeEvaluatedV1
from perpsignal_domain.outcomes.evaluate import Candle
from perpsignal_outcomes import repository as repo
from perpsignal_outcomes.prices import BinanceKlineSource
from perpsignal_outcomes.settings import OutcomesSettings
from perpsignal_outcomes.tracker import Tracker, outcome_event_id
from tests.binance_klines import RecordedKlines
from tests.integration.outcomes.conftest import judged, xrp_candle_rows

pytestmark = pytest.mark.db

HORIZONS = {"1h": 3600, "4h": 14_400, "24h": 86_400}
LATER = datetime(2021, 11, 20, tzinfo=UTC)  # every horizon of a 2021-11-15 signal is due


class FakeProducer:
    def __init__(self) -> None:
        self.events: list[Event] = []

    async def publish(self, event: Event, *, wait: bool = False) -> None:
        self.events.append(event)

    async def wait_delivered(self) -> None:
        return None

    async def publish_many(self, events: Iterable[Event], **_: object) -> int:
        n = 0
        for event in events:
            await self.publish(event)
            n += 1
        return n


class FakeKlines:
    name = "klines"
    venue = "binance"

    def __init__(self, candles: list[Candle]) -> None:
        self.candles = candles
        self.calls = 0

    async def fetch_candles(
        self, symbol: str, timeframe: str, start: datetime, end: datetime
    ) -> list[Candle]:
        self.calls += 1
        return [c for c in self.candles if start <= c.open_time < end]

    async def close(self) -> None:
        return None


def settings(**kw: object) -> OutcomesSettings:
    return OutcomesSettings(outcomes_settle_s=0, outcomes_candle_timeframes="5m", **kw)


async def store(sessions, *events) -> int:
    async with session_scope(sessions) as s:
        return await repo.store_signals(s, list(events), HORIZONS, timedelta(0))


async def outcomes(sessions) -> dict[tuple[str, str], SignalOutcome]:
    async with session_scope(sessions) as s:
        rows = (await s.execute(select(SignalOutcome))).scalars().all()
    return {(r.signal_id, r.horizon): r for r in rows}


async def test_redelivered_signal_creates_no_second_row(sessions) -> None:
    ev = judged(verdict="SKIP")
    assert await store(sessions, ev) == 1
    assert await store(sessions, ev) == 0
    async with session_scope(sessions) as s:
        assert await s.scalar(select(func.count()).select_from(OutcomeSignal)) == 1
        assert await s.scalar(select(func.count()).select_from(SignalOutcome)) == 3
        row = await s.get(OutcomeSignal, ev.signal_id)
    assert row is not None and row.verdict == "SKIP"  # SKIP signals are tracked too
    due = {h: r.due_at for (_, h), r in (await outcomes(sessions)).items()}
    assert due["4h"] - ev.observed_at == timedelta(hours=4)


async def test_evaluates_every_horizon_on_stored_candles(sessions, shared_data: Path) -> None:
    async with session_scope(sessions) as s:
        await repo.store_candles(s, xrp_candle_rows(shared_data))
    # LONG at 00:05 from 1.1941, stop 1.1935 (hit by the 00:05 low 1.1934), target 1.2100
    ev = judged(stop=1.1935, target=1.2100)
    await store(sessions, ev)
    producer = FakeProducer()
    tracker = Tracker(settings(), sessions, producer, clock=lambda: LATER)  # type: ignore[arg-type]
    assert await tracker.evaluate_batch() == 3

    rows = await outcomes(sessions)
    one = rows[(ev.signal_id, "1h")]
    assert one.status == "completed"
    assert one.exit_price == 1.2123  # close of the 01:00 candle
    assert one.pnl_pct == pytest.approx((1.2123 - 1.1941) / 1.1941 * 100)
    assert one.result == "WIN"
    assert one.first_hit == "stop"
    assert one.candles_used == 12
    assert one.price_source == "stream"
    assert rows[(ev.signal_id, "24h")].candles_used == 288
    assert {r.evaluation_count for r in rows.values()} == {1}

    assert await tracker.publish_batch() == 3
    assert await tracker.publish_batch() == 0  # the outbox is empty once acknowledged
    published = [e for e in producer.events if isinstance(e, OutcomeEvaluatedV1)]
    assert {e.event_id for e in published} == {outcome_event_id(ev.signal_id, h) for h in HORIZONS}
    e1 = next(e for e in published if e.horizon == "1h")
    assert (e1.exit_price, e1.result, e1.first_hit) == (1.2123, "WIN", "stop")
    assert e1.verdict == "CONFIRM"


async def test_missing_price_stays_pending_with_reason_then_uses_klines(
    sessions, shared_data: Path
) -> None:
    ev = judged(direction="SHORT")
    await store(sessions, ev)
    now = datetime(2021, 11, 15, 2, 0, tzinfo=UTC)  # only the 1h horizon is due
    tracker = Tracker(settings(outcomes_retry_s=60), sessions, None, clock=lambda: now)
    assert await tracker.evaluate_batch() == 1
    row = (await outcomes(sessions))[(ev.signal_id, "1h")]
    assert row.status == "pending"
    assert row.exit_price is None and row.pnl_pct is None  # nothing invented
    assert "no complete candle path" in (row.reason or "")
    assert row.retry_at == now + timedelta(seconds=60)
    assert await tracker.evaluate_batch() == 0  # not retried before its next attempt

    candles = [
        Candle(r["open_time"], r["open"], r["high"], r["low"], r["close"])  # type: ignore[arg-type]
        for r in xrp_candle_rows(shared_data)
    ]
    klines = FakeKlines(candles)
    later = now + timedelta(minutes=2)
    tracker = Tracker(settings(), sessions, None, klines=klines, clock=lambda: later)
    assert await tracker.evaluate_batch() == 1
    row = (await outcomes(sessions))[(ev.signal_id, "1h")]
    assert row.status == "completed" and row.price_source == "klines"
    assert row.pnl_pct == pytest.approx((1.1941 - 1.2123) / 1.1941 * 100)
    assert row.result == "LOSS"
    assert row.attempts == 2
    async with session_scope(sessions) as s:  # fetched candles are kept for the next rows
        assert await s.scalar(select(func.count()).select_from(OutcomeCandle)) > 0


async def test_event_clock_retries_on_wall_time_after_the_market_stops(
    sessions, shared_data: Path
) -> None:
    """A row deferred at the replay's last candle is retried once its candles arrive.

    Under OUTCOMES_CLOCK=event market time stops with the stream; another replica may still
    be storing the symbol's last candles. The retry waits OUTCOMES_RETRY_S of wall time.
    """
    ev = judged(direction="SHORT")
    await store(sessions, ev)
    market = datetime(2021, 11, 15, 2, 0, tzinfo=UTC)  # the stream's last close: it stays
    wall = [datetime(2026, 12, 7, 12, 0, tzinfo=UTC)]
    tracker = Tracker(
        settings(outcomes_retry_s=5), sessions, None, clock=lambda: market, wall=lambda: wall[0]
    )
    assert await tracker.evaluate_batch() == 1  # the 1h row: no candles stored yet
    row = (await outcomes(sessions))[(ev.signal_id, "1h")]
    assert row.status == "pending" and row.retry_at == wall[0] + timedelta(seconds=5)
    async with session_scope(sessions) as s:  # the other replica stores them now
        await repo.store_candles(s, xrp_candle_rows(shared_data))
    wall[0] += timedelta(seconds=4)
    assert await tracker.evaluate_batch() == 0  # not before its retry time
    wall[0] += timedelta(seconds=2)
    assert await tracker.evaluate_batch() == 1  # market time never moved
    row = (await outcomes(sessions))[(ev.signal_id, "1h")]
    assert row.status == "completed" and row.price_source == "stream"
    assert row.exit_price == 1.2123 and row.evaluation_count == 1


async def test_event_clock_gives_up_on_wall_time(sessions) -> None:
    """A replayed row whose prices never come is given up after the window, on wall time."""
    ev = judged(symbol="NOPEUSDT")
    await store(sessions, ev)
    market = LATER  # years before this machine's clock, and standing still
    wall = [datetime.now(UTC)]
    cfg = settings(outcomes_give_up_after_s=3600, outcomes_retry_s=1)
    tracker = Tracker(cfg, sessions, None, clock=lambda: market, wall=lambda: wall[0])
    await tracker.evaluate_batch()
    assert {r.status for r in (await outcomes(sessions)).values()} == {"pending"}
    wall[0] += timedelta(hours=2)
    await tracker.evaluate_batch()
    rows = await outcomes(sessions)
    assert {r.status for r in rows.values()} == {"failed"}
    assert all("gave up" in (r.reason or "") for r in rows.values())


async def test_gives_up_after_the_configured_time(sessions) -> None:
    ev = judged(symbol="NOPEUSDT")
    await store(sessions, ev)
    # a replayed (years old) signal first gets the full retry window...
    tracker = Tracker(settings(outcomes_give_up_after_s=3600), sessions, None, clock=lambda: LATER)
    await tracker.evaluate_batch()
    assert {r.status for r in (await outcomes(sessions)).values()} == {"pending"}
    # ...and is given up once that window has passed since it became due here
    later = datetime.now(UTC) + timedelta(hours=2)
    tracker = Tracker(settings(outcomes_give_up_after_s=3600), sessions, None, clock=lambda: later)
    await tracker.evaluate_batch()
    rows = await outcomes(sessions)
    assert {r.status for r in rows.values()} == {"failed"}
    assert all("gave up" in (r.reason or "") for r in rows.values())


async def test_concurrent_trackers_evaluate_each_row_once(sessions, shared_data: Path) -> None:
    async with session_scope(sessions) as s:
        await repo.store_candles(s, xrp_candle_rows(shared_data))
    start = datetime(2021, 11, 15, 0, 5, tzinfo=UTC)
    events = [judged(observed_at=start + i * timedelta(minutes=5)) for i in range(120)]
    await store(sessions, *events)
    cfg = settings(outcomes_batch_size=7)
    trackers = [Tracker(cfg, sessions, None, clock=lambda: LATER, worker=f"w{i}") for i in range(3)]

    async def drain(t: Tracker) -> None:
        while await t.evaluate_batch():
            pass

    await asyncio.gather(*(drain(t) for t in trackers))
    rows = await outcomes(sessions)
    assert len(rows) == 360
    assert {r.status for r in rows.values()} == {"completed"}
    assert {r.evaluation_count for r in rows.values()} == {1}
    assert sum(t.completed for t in trackers) == 360
    assert len({r.evaluated_by for r in rows.values()}) >= 2  # the work was shared


async def test_prune_keeps_candles_that_pending_rows_still_need(sessions, shared_data) -> None:
    async with session_scope(sessions) as s:
        await repo.store_candles(s, xrp_candle_rows(shared_data))
    await store(sessions, judged(observed_at=datetime(2021, 11, 18, tzinfo=UTC)))
    tracker = Tracker(settings(), sessions, None)  # real clock: the 2021 candles are "old"
    await tracker.prune()
    async with session_scope(sessions) as s:
        kept = (await s.execute(select(OutcomeCandle.open_time))).scalars().all()
    assert kept and min(kept) == datetime(2021, 11, 18, tzinfo=UTC)  # older ones went


def hourly(symbol: str, start: datetime, closes: list[float]) -> list[dict[str, object]]:
    """1h candles opening at `start`: open = previous close, high/low 1 % around the close."""
    rows, prev = [], closes[0]
    for i, close in enumerate(closes):
        rows.append(
            {
                "symbol": symbol,
                "timeframe": "1h",
                "open_time": start + i * timedelta(hours=1),
                "open": prev,
                "high": close * 1.01,
                "low": close * 0.99,
                "close": close,
                "source": "stream",
            }
        )
        prev = close
    return rows


async def test_one_batch_of_several_symbols_and_timeframes(sessions, shared_data: Path) -> None:
    t0 = datetime(2021, 11, 15, tzinfo=UTC)
    closes = [100.0 + i for i in range(30)]  # ABCUSDT: 1h candles only, rising 1 per hour
    async with session_scope(sessions) as s:
        await repo.store_candles(s, xrp_candle_rows(shared_data))
        # 1h candles of XRPUSDT too, far off the real prices: the finer 5m path must win
        await repo.store_candles(s, hourly("XRPUSDT", t0, [9.0] * 30))
        await repo.store_candles(s, hourly("ABCUSDT", t0, closes))
    xrp = judged(observed_at=t0 + timedelta(minutes=5))
    abc = judged(symbol="ABCUSDT", direction="SHORT", price=100.0, observed_at=t0, target=99.5)
    nop = judged(symbol="NOPEUSDT", observed_at=t0)  # no candles at all
    await store(sessions, xrp, abc, nop)
    cfg = OutcomesSettings(outcomes_settle_s=0, outcomes_candle_timeframes="5m,1h")
    tracker = Tracker(cfg, sessions, None, clock=lambda: LATER)
    assert await tracker.evaluate_batch() == 9
    rows = await outcomes(sessions)

    one = rows[(xrp.signal_id, "1h")]
    assert (one.status, one.candles_used, one.exit_price) == ("completed", 12, 1.2123)
    # ABCUSDT SHORT from 100 on 1h candles: the 4h path is the candles of 00:00 .. 03:00,
    # exit = close of 03:00 = 103; highest high 103 * 1.01, lowest low 100 * 0.99 (first candle,
    # which also touches the 99.5 target)
    four = rows[(abc.signal_id, "4h")]
    assert (four.status, four.candles_used, four.price_source) == ("completed", 4, "stream")
    assert four.exit_price == 103.0
    assert four.pnl_pct == pytest.approx(-3.0)
    assert four.result == "LOSS"
    assert four.max_adverse_pct == pytest.approx(103 * 1.01 - 100)
    assert four.max_favorable_pct == pytest.approx(1.0)
    assert four.first_hit == "target"
    assert rows[(abc.signal_id, "24h")].candles_used == 24
    for h in HORIZONS:
        row = rows[(nop.signal_id, h)]
        assert row.status == "pending" and "NOPEUSDT" in (row.reason or "")
    assert {r.evaluation_count for k, r in rows.items() if k[0] != nop.signal_id} == {1}


async def test_a_coarser_timeframe_off_the_signals_grid_does_not_cut_the_horizon_short(
    sessions, shared_data: Path
) -> None:
    """A 15m signal at 10:15 whose 5m path has a gap: the complete 1h series would measure
    11:00-14:00 (three quarters of the 4h horizon, exit 15 minutes early) - the row is priced
    on the horizon itself (the klines, here) or waits, never on that shorter path."""
    five = xrp_candle_rows(shared_data)
    entry = datetime(2021, 11, 18, 10, 15, tzinfo=UTC)
    gap = datetime(2021, 11, 18, 12, 0, tzinfo=UTC)
    async with session_scope(sessions) as s:
        await repo.store_candles(s, [r for r in five if r["open_time"] != gap])
        await repo.store_candles(s, xrp_candle_rows(shared_data, "1h"))
    close_at = {r["open_time"] + timedelta(minutes=5): r["close"] for r in five}
    ev = judged(observed_at=entry, price=close_at[entry])
    async with session_scope(sessions) as s:
        await repo.store_signals(s, [ev], {"4h": 14_400}, timedelta(0))
    cfg = OutcomesSettings(outcomes_settle_s=0, outcomes_candle_timeframes="5m,1h")
    tracker = Tracker(cfg, sessions, None, clock=lambda: LATER)
    assert await tracker.evaluate_batch() == 1
    row = (await outcomes(sessions))[(ev.signal_id, "4h")]
    assert row.status == "pending" and row.exit_price is None

    candles = [
        Candle(r["open_time"], r["open"], r["high"], r["low"], r["close"])  # type: ignore[arg-type]
        for r in five
    ]
    retry = LATER + timedelta(minutes=2)
    tracker = Tracker(cfg, sessions, None, klines=FakeKlines(candles), clock=lambda: retry)
    assert await tracker.evaluate_batch() == 1
    row = (await outcomes(sessions))[(ev.signal_id, "4h")]
    assert row.status == "completed" and row.price_source == "klines"
    assert row.exit_price == close_at[entry + timedelta(hours=4)]  # the close at 14:15
    assert row.candles_used == 48


async def test_an_on_demand_signal_off_every_grid_is_measured_on_the_finest_candles(
    sessions, shared_data: Path
) -> None:
    """An on-demand signal (a gateway track request) is stamped when it was asked for,
    10:17:23 here: its path is the finest timeframe's candles inside the window (10:20-11:15),
    never none; the 1h candles (11:00 only) are not the horizon."""
    five = xrp_candle_rows(shared_data)
    async with session_scope(sessions) as s:
        await repo.store_candles(s, five)
        await repo.store_candles(s, xrp_candle_rows(shared_data, "1h"))
    entry = datetime(2021, 11, 18, 10, 17, 23, tzinfo=UTC)
    close_at = {r["open_time"] + timedelta(minutes=5): r["close"] for r in five}
    ev = judged(observed_at=entry, price=close_at[entry.replace(minute=15, second=0)])
    ev = ev.model_copy(update={"trigger": "on_demand"})
    async with session_scope(sessions) as s:
        await repo.store_signals(s, [ev], {"1h": 3600}, timedelta(0))
    cfg = OutcomesSettings(outcomes_settle_s=0, outcomes_candle_timeframes="5m,1h")
    tracker = Tracker(cfg, sessions, None, clock=lambda: LATER)
    assert await tracker.evaluate_batch() == 1
    row = (await outcomes(sessions))[(ev.signal_id, "1h")]
    assert row.status == "completed" and row.candles_used == 11
    assert row.exit_price == close_at[datetime(2021, 11, 18, 11, 15, tzinfo=UTC)]


class GatedKlines(FakeKlines):
    """Klines whose answer waits for `release` (a slow vendor); `fetching` is set once asked."""

    def __init__(self, candles: list[Candle]) -> None:
        super().__init__(candles)
        self.fetching = asyncio.Event()
        self.release = asyncio.Event()

    async def fetch_candles(
        self, symbol: str, timeframe: str, start: datetime, end: datetime
    ) -> list[Candle]:
        self.fetching.set()
        await self.release.wait()
        return await super().fetch_candles(symbol, timeframe, start, end)


def recorded_klines(shared_data: Path) -> list[Candle]:
    return [
        Candle(r["open_time"], r["open"], r["high"], r["low"], r["close"])  # type: ignore[arg-type]
        for r in xrp_candle_rows(shared_data)
    ]


async def _open_transactions(database_url: str) -> int:
    conn = await asyncpg.connect(database_url.replace("+asyncpg", ""))
    try:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND state LIKE 'idle in transaction%'"
            )
        )
    finally:
        await conn.close()


async def test_a_slow_klines_fetch_holds_no_transaction_and_the_row_is_measured_once(
    sessions, database_url: str, shared_data: Path
) -> None:
    """While the klines vendor is slow, the evaluator holds no transaction (nor row lock)
    open; the row is leased for OUTCOMES_RETRY_S, so another replica leaves it alone until
    then, and may take it over after: measured once, by whoever gets there first."""
    ev = judged(direction="SHORT")
    await store(sessions, ev)
    now = datetime(2021, 11, 15, 2, 0, tzinfo=UTC)  # only the 1h horizon is due
    slow = GatedKlines(recorded_klines(shared_data))
    a = Tracker(settings(), sessions, None, klines=slow, clock=lambda: now, worker="a")
    fetch_a = asyncio.create_task(a.evaluate_batch())
    try:
        await asyncio.wait_for(slow.fetching.wait(), 30)
        assert await _open_transactions(database_url) == 0
        row = (await outcomes(sessions))[(ev.signal_id, "1h")]
        assert row.status == "pending" and row.attempts == 0  # leased, not an attempt yet
        assert row.retry_at == now + timedelta(seconds=60)

        klines_b = FakeKlines(recorded_klines(shared_data))
        b = Tracker(settings(), sessions, None, klines=klines_b, clock=lambda: now, worker="b")
        assert await asyncio.wait_for(b.evaluate_batch(), 10) == 0  # leased: left alone
        assert klines_b.calls == 0
        # A's vendor outlasts the lease: B takes the row over and measures it
        expired = now + timedelta(seconds=61)
        b = Tracker(settings(), sessions, None, klines=klines_b, clock=lambda: expired, worker="b")
        assert await asyncio.wait_for(b.evaluate_batch(), 10) == 1
        assert b.completed == 1
    finally:
        slow.release.set()
        claimed_by_a = await asyncio.wait_for(fetch_a, 30)
    assert claimed_by_a == 1 and a.completed == 0  # A's late answer changes nothing
    row = (await outcomes(sessions))[(ev.signal_id, "1h")]
    assert (row.status, row.evaluated_by, row.evaluation_count) == ("completed", "b", 1)
    assert row.price_source == "klines" and row.attempts == 1
    assert row.pnl_pct == pytest.approx((1.1941 - 1.2123) / 1.1941 * 100)


class PeerLockingKlines(FakeKlines):
    """Klines whose fetch happens while another transaction briefly holds the leased rows'
    locks: what a peer replica's claim does when PostgreSQL follows a row updated under its
    scan to the lease and re-checks it (the row is not returned, its lock is held until
    that claim's transaction ends)."""

    def __init__(self, candles: list[Candle], database_url: str, hold_s: float) -> None:
        super().__init__(candles)
        self.database_url = database_url
        self.hold_s = hold_s
        self.holder: asyncio.Task[None] | None = None

    async def fetch_candles(
        self, symbol: str, timeframe: str, start: datetime, end: datetime
    ) -> list[Candle]:
        if self.holder is None:
            locked = asyncio.Event()
            self.holder = asyncio.create_task(self._hold(locked))
            await asyncio.wait_for(locked.wait(), 10)
        return await super().fetch_candles(symbol, timeframe, start, end)

    async def _hold(self, locked: asyncio.Event) -> None:
        conn = await asyncpg.connect(self.database_url.replace("+asyncpg", ""))
        try:
            async with conn.transaction():
                await conn.execute("SELECT id FROM signal_outcomes FOR UPDATE")
                locked.set()
                await asyncio.sleep(self.hold_s)
        finally:
            await conn.close()


async def test_a_leased_row_a_peer_holds_for_a_moment_is_measured_now_not_a_lease_later(
    sessions, database_url: str, shared_data: Path
) -> None:
    """Another replica's claim may hold a leased row's lock for the few milliseconds of its
    transaction. The replica that fetched the row's klines waits for it and measures the row
    now; it used to skip the row, which then waited out the whole lease (OUTCOMES_RETRY_S)
    and cost a second vendor fetch."""
    ev = judged(direction="SHORT")
    await store(sessions, ev)
    now = datetime(2021, 11, 15, 2, 0, tzinfo=UTC)  # only the 1h horizon is due
    klines = PeerLockingKlines(recorded_klines(shared_data), database_url, hold_s=0.5)
    a = Tracker(settings(), sessions, None, klines=klines, clock=lambda: now, worker="a")
    assert await asyncio.wait_for(a.evaluate_batch(), 30) == 1
    assert klines.holder is not None
    await klines.holder
    assert a.completed == 1 and klines.calls == 1
    row = (await outcomes(sessions))[(ev.signal_id, "1h")]
    assert (row.status, row.evaluated_by, row.evaluation_count) == ("completed", "a", 1)
    assert row.price_source == "klines"


async def test_a_leased_row_held_past_the_lock_timeout_keeps_its_lease_and_its_klines(
    sessions, database_url: str, shared_data: Path, monkeypatch, caplog
) -> None:
    """A peer that holds a leased row longer than the reclaim's lock timeout (a stuck
    transaction) does not stop the evaluator: it says so, the row keeps its lease, and the
    klines it fetched are stored for whoever measures the row later."""
    monkeypatch.setattr(repo, "RECLAIM_LOCK_TIMEOUT", "200ms")
    ev = judged(direction="SHORT")
    await store(sessions, ev)
    now = datetime(2021, 11, 15, 2, 0, tzinfo=UTC)
    klines = PeerLockingKlines(recorded_klines(shared_data), database_url, hold_s=2.0)
    a = Tracker(settings(), sessions, None, klines=klines, clock=lambda: now, worker="a")
    with caplog.at_level("WARNING", logger="perpsignal_outcomes.tracker"):
        assert await asyncio.wait_for(a.evaluate_batch(), 30) == 1
    assert a.completed == 0
    assert "leased rows held by another transaction" in caplog.text
    assert klines.holder is not None
    await klines.holder
    row = (await outcomes(sessions))[(ev.signal_id, "1h")]
    assert (row.status, row.attempts, row.evaluation_count) == ("pending", 0, 0)
    assert row.retry_at == now + timedelta(seconds=60)
    async with session_scope(sessions) as s:
        stored = await s.scalar(select(func.count()).select_from(OutcomeCandle))
    assert stored and stored >= 12  # the hour's 5m klines
    # once the peer let go, a replica past the lease measures it on those candles, no fetch
    later = now + timedelta(seconds=61)
    b = Tracker(settings(), sessions, None, clock=lambda: later, worker="b")
    assert await b.evaluate_batch() == 1
    row = (await outcomes(sessions))[(ev.signal_id, "1h")]
    assert (row.status, row.evaluated_by, row.price_source) == ("completed", "b", "klines")


async def test_candles_stored_from_the_klines_fallback_are_reported_as_klines(
    sessions, shared_data: Path
) -> None:
    """A later signal measured on candles the klines fallback stored earlier says so, and a
    path of stream candles with a gap the klines filled names both sources."""
    first = judged(direction="SHORT")
    await store(sessions, first)
    now = datetime(2021, 11, 15, 2, 0, tzinfo=UTC)  # only the 1h horizons are due
    klines = FakeKlines(recorded_klines(shared_data))
    assert (
        await Tracker(settings(), sessions, None, klines=klines, clock=lambda: now).evaluate_batch()
        == 1
    )
    assert (await outcomes(sessions))[(first.signal_id, "1h")].price_source == "klines"

    second = judged(direction="LONG", observed_at=first.observed_at)
    await store(sessions, second)
    no_fallback = Tracker(settings(), sessions, None, clock=lambda: now)
    assert await no_fallback.evaluate_batch() == 1
    row = (await outcomes(sessions))[(second.signal_id, "1h")]
    assert (row.status, row.price_source) == ("completed", "klines")

    # the stream sent Binance's 01:05-02:05 candles but one; the klines fill the gap
    entry = datetime(2021, 11, 15, 1, 5, tzinfo=UTC)
    gap = datetime(2021, 11, 15, 1, 30, tzinfo=UTC)
    stream = [
        {**r, "venue": "binance"}
        for r in xrp_candle_rows(shared_data)
        if entry <= r["open_time"] < entry + timedelta(hours=1) and r["open_time"] != gap  # type: ignore[operator]
    ]
    async with session_scope(sessions) as s:
        await repo.store_candles(s, stream)
    third = judged(observed_at=entry)
    await store(sessions, third)
    later = entry + timedelta(hours=1, minutes=1)
    assert (
        await Tracker(
            settings(), sessions, None, klines=klines, clock=lambda: later
        ).evaluate_batch()
        == 1
    )
    row = (await outcomes(sessions))[(third.signal_id, "1h")]
    assert (row.status, row.candles_used, row.price_source) == ("completed", 12, "klines+stream")


async def test_concurrent_trackers_on_the_klines_fallback_evaluate_each_row_once(
    sessions, shared_data: Path
) -> None:
    """Three replicas, no stored candle: every row is leased by one of them, priced on the
    klines it fetched, and measured exactly once."""
    start = datetime(2021, 11, 15, 0, 5, tzinfo=UTC)
    events = [judged(observed_at=start + i * timedelta(minutes=5)) for i in range(60)]
    await store(sessions, *events)
    cfg = settings(outcomes_batch_size=7)
    klines = [FakeKlines(recorded_klines(shared_data)) for _ in range(3)]
    trackers = [
        Tracker(cfg, sessions, None, klines=k, clock=lambda: LATER, worker=f"w{i}")
        for i, k in enumerate(klines)
    ]

    async def drain(t: Tracker) -> None:
        while await t.evaluate_batch():
            pass

    await asyncio.gather(*(drain(t) for t in trackers))
    rows = await outcomes(sessions)
    assert len(rows) == 180
    assert {(r.status, r.price_source, r.evaluation_count) for r in rows.values()} == {
        ("completed", "klines", 1)
    }
    assert sum(t.completed for t in trackers) == 180
    assert len({r.evaluated_by for r in rows.values()}) >= 2  # the work was shared


async def test_klines_fallback_prices_rows_days_apart_in_one_batch(
    sessions, shared_data: Path
) -> None:
    """Signals six days apart, none with stream candles, leased in one batch: each row's own
    window is fetched from the venue (two calls), not the six days between them (Binance
    serves 1500 5m klines a call: the later signal's window was never asked for)."""
    venue = RecordedKlines(shared_data)
    first = judged(signal_id="early")  # 2021-11-15 00:05, the recording's first day
    late = judged(signal_id="late", observed_at=datetime(2021, 11, 21, 12, 0, tzinfo=UTC))
    async with session_scope(sessions) as s:
        await repo.store_signals(s, [first, late], {"1h": 3600}, timedelta(0))
    base = "https://fapi.example.test"
    klines = BinanceKlineSource(base)
    now = datetime(2021, 11, 22, tzinfo=UTC)
    try:
        with respx.mock() as mock:
            mock.get(f"{base}/fapi/v1/klines").mock(side_effect=venue)
            tracker = Tracker(settings(), sessions, None, klines=klines, clock=lambda: now)
            assert await tracker.evaluate_batch() == 2
    finally:
        await klines.close()
    rows = await outcomes(sessions)
    for signal in (first, late):
        row = rows[(signal.signal_id, "1h")]
        assert (row.status, row.price_source, row.candles_used) == ("completed", "klines", 12)
        due_close = signal.observed_at + timedelta(minutes=55)
        (recorded,) = [r for r in venue.rows if r[0] == int(due_close.timestamp() * 1000)]
        assert row.exit_price == float(recorded[4])  # type: ignore[arg-type]
    assert len(venue.calls) == 2
