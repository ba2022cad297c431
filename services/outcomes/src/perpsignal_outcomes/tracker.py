"""The evaluator: claim due outcome rows, measure them on the candle path, publish results.

Durability and replicas: due evaluations are rows. A batch is claimed with
`SELECT ... FOR UPDATE SKIP LOCKED` and evaluated inside the claiming transaction, so several
replicas never evaluate one row twice and a crash simply releases the locks. Completed rows
stay in an outbox (`published_at IS NULL`) until Kafka acknowledged their event, so a crash
between commit and publish loses no event (it is re-sent with the same deterministic id).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from perpsignal_common.db.engine import session_scope
from perpsignal_common.errors import DependencyUnavailable
from perpsignal_common.events.base import deterministic_id
from perpsignal_common.events.market import TIMEFRAME_SECONDS
from perpsignal_common.events.signals import OutcomeEvaluatedV1
from perpsignal_common.kafka.producer import EventProducer
from perpsignal_domain.outcomes.evaluate import (
    Costs,
    Series,
    evaluate_window,
    funding_paid_pct,
    path_window,
    settled_if_complete,
)
from perpsignal_outcomes import repository as repo
from perpsignal_outcomes.prices import KlineSource
from perpsignal_outcomes.settings import OutcomesSettings

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
# settlements loaded around a window: before it, enough to learn the symbol's interval; after
# it, enough to find the settlement that closes the bracket (Binance settles every 1-8 h)
FUNDING_BEFORE = timedelta(hours=72)
FUNDING_AFTER = timedelta(hours=48)
Funding = dict[str, tuple[list[float], list[float]]]
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def system_clock() -> datetime:
    """Return the current UTC time."""
    return datetime.now(UTC)


def covers(row: repo.DueRow, step: timedelta, finest: timedelta) -> bool:
    """Return True when the candles of `step` inside the row's window miss less than one
    candle of `finest` at either end (what the finest timeframe's path misses at most).

    A coarser timeframe off the signal's grid starts late and ends early: a 10:15 signal's
    4h path of 1h candles is 11:00-14:00, not the horizon.
    """
    late = (EPOCH - row.entry_at) % step  # from the entry to the first candle's open
    early = (row.due_at - EPOCH) % step  # from the last candle's close to the due time
    return late < finest and early < finest


def outcome_event_id(signal_id: str, horizon: str) -> str:
    """Return the deterministic id of a signal's outcome at `horizon`."""
    return deterministic_id(signal_id, horizon, "outcomes")


class Tracker:
    """Evaluates due rows in batches and publishes completed ones."""

    def __init__(
        self,
        settings: OutcomesSettings,
        sessions: async_sessionmaker[AsyncSession],
        producer: EventProducer | None,
        klines: KlineSource | None = None,
        clock: Clock = system_clock,
        worker: str | None = None,
        wall: Clock | None = None,
    ) -> None:
        self._s = settings
        self._sessions = sessions
        self._producer = producer
        self._klines = klines
        self._clock = clock  # what is due (market time under OUTCOMES_CLOCK=event)
        self._wall = wall or clock  # when this process did it: evaluated_at, published_at
        self.worker = worker or f"{socket.gethostname()}:{os.getpid()}"
        self._timeframes = settings.candle_timeframes()
        self._kline_tf = settings.outcomes_klines_timeframe
        self._no_fallback_logged = False
        self.completed = 0
        self.deferred = 0

    async def run(self, stop: asyncio.Event) -> None:
        """Evaluate and publish until `stop`; back off while the database is down."""
        loop = asyncio.get_running_loop()
        # first prune one interval after start: a replay's old candles may land before its
        # signals, and pruning keeps only what pending rows need
        last_prune = loop.time()
        last_funding = 0.0
        while not stop.is_set():
            busy = False
            try:
                claimed = await self.evaluate_batch()
                published = await self.publish_batch()
                if loop.time() - last_funding > self._s.outcomes_poll_interval_s * 30:
                    await self.settle_funding()
                    last_funding = loop.time()
                busy = claimed >= self._s.outcomes_batch_size or published > 0
                if loop.time() - last_prune > 600:
                    await self.prune()
                    last_prune = loop.time()
            except DependencyUnavailable as exc:
                log.warning("evaluator waiting for a dependency", extra={"error": str(exc)})
            except Exception:
                log.exception("evaluation batch failed; retrying")
            if not busy:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self._s.outcomes_poll_interval_s)

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[asyncpg.Connection]:
        """Yield the asyncpg connection of a pooled session inside one transaction; a lost
        database becomes `DependencyUnavailable` (the run loop backs off on it)."""
        async with session_scope(self._sessions) as session:
            conn = await repo.driver_connection(session)
            try:
                async with conn.transaction():
                    yield conn
            except repo.CONNECTION_DOWN as exc:
                raise DependencyUnavailable(f"database unavailable: {type(exc).__name__}") from exc

    async def evaluate_batch(self) -> int:
        """Claim and evaluate one batch of due rows; return how many were claimed.

        Claim, candles, evaluation and result writes happen in one transaction on the asyncpg
        connection under a pooled session (a handful of round trips per batch, whatever its
        size): a crash before the commit releases the locks and leaves the rows pending.
        """
        now = self._clock()
        async with self._transaction() as conn:
            n, done, waiting, failed = await self._evaluate(conn, now)
        self.completed += len(done)
        self.deferred += len(waiting)
        if waiting:
            log.info(
                "prices missing; evaluations stay pending",
                extra={"rows": len(waiting), "example": waiting[0][1]},
            )
        if failed:
            log.warning("evaluations failed", extra={"rows": len(failed), "example": failed[0][1]})
        return n

    async def _evaluate(
        self, conn: asyncpg.Connection, now: datetime
    ) -> tuple[
        int,
        list[repo.Done],
        list[tuple[int, str, datetime]],
        list[tuple[int, str, datetime]],
    ]:
        wall = self._wall()
        rows = await repo.claim_due(conn, now, self._s.outcomes_batch_size, wall)
        done: list[repo.Done] = []
        waiting: list[tuple[int, str, datetime]] = []
        failed: list[tuple[int, str, datetime]] = []
        if not rows:
            return 0, done, waiting, failed
        paths = await self._paths(conn, rows)
        funding = await self._funding(conn, rows)
        give_up = timedelta(seconds=self._s.outcomes_give_up_after_s)
        band = self._s.outcomes_neutral_band_pct
        costs = Costs(self._s.outcomes_taker_fee_bp, self._s.outcomes_slippage_bp)
        for row in rows:
            found = paths.get(row.id)
            if found is None:
                reason = f"no complete candle path for {row.symbol} {row.horizon} yet"
                # measured on wall time from when the row became due *here*: a replayed or
                # late signal gets the full retry window too (under the event clock, from
                # when it was stored: market time may stand still or be years old)
                if wall - max(row.due_at, row.created_at) > give_up:
                    failed.append((row.id, reason + "; gave up", now))
                else:
                    # wall time: under the event clock market time stops with the stream,
                    # and a retry set on it would never come
                    retry = timedelta(seconds=self._s.outcomes_retry_s)
                    waiting.append((row.id, reason, wall + retry))
                continue
            series, lo, hi, source = found
            rates = self._rates(funding, row.symbol, row.entry_at, row.due_at)
            try:
                ev = evaluate_window(
                    row.direction,
                    row.entry_price,
                    series,
                    lo,
                    hi,
                    stop=row.stop_loss_price,
                    target=row.take_profit_price,
                    band_pct=band,
                    costs=costs,
                    funding_rates=rates or (),
                )
            except ValueError as exc:
                failed.append((row.id, f"cannot evaluate: {exc}", now))
                continue
            done.append(repo.Done(row.id, ev, source, None if rates is None else len(rates)))
        await repo.complete(conn, done, self._wall(), self.worker)
        await repo.defer(conn, waiting)
        await repo.defer(conn, failed, status="failed")
        return len(rows), done, waiting, failed

    async def _funding(self, conn: asyncpg.Connection, rows: list[Any]) -> Funding:
        """Return the stored settlements around the windows of `rows`, per symbol."""
        ranges: dict[str, tuple[datetime, datetime]] = {}
        for row in rows:
            start, end = ranges.get(row.symbol, (row.entry_at, row.due_at))
            ranges[row.symbol] = (min(start, row.entry_at), max(end, row.due_at))
        ranges = {s: (a - FUNDING_BEFORE, b + FUNDING_AFTER) for s, (a, b) in ranges.items()}
        return await repo.load_funding(conn, self._s.outcomes_funding_venue, ranges)

    @staticmethod
    def _rates(
        funding: Funding, symbol: str, entry_at: datetime, due_at: datetime
    ) -> Sequence[float] | None:
        """Return the rates settled while the position was open; None when unknown."""
        times, rates = funding.get(symbol, ([], []))
        return settled_if_complete(times, rates, entry_at.timestamp(), due_at.timestamp())

    async def settle_funding(self) -> int:
        """Fill in the funding of completed rows whose settlements have arrived since.

        Rows due within OUTCOMES_FUNDING_WAIT_S are re-checked; after that their funding stays
        unknown (NULL). Every such row is visited, a batch per transaction: rows whose funding
        stays unknown (a lost settlement) never hide the ones behind them. Returns how many
        rows got their funding.
        """
        now = self._clock()
        since = now - timedelta(seconds=self._s.outcomes_funding_wait_s)
        after: tuple[datetime, int] | None = None
        total = 0
        while True:
            async with self._transaction() as conn:
                rows = await repo.claim_funding_unknown(
                    conn, since, now, self._s.outcomes_batch_size, after
                )
                if not rows:
                    return total
                funding = await self._funding(conn, rows)
                known = []
                for row in rows:
                    rates = self._rates(funding, row.symbol, row.entry_at, row.due_at)
                    if rates is not None:
                        paid = funding_paid_pct(row.direction, rates)
                        known.append((row.id, paid, len(rates)))
                await repo.set_funding(conn, known)
            total += len(known)
            if len(rows) < self._s.outcomes_batch_size:
                return total
            after = (rows[-1].due_at, rows[-1].id)

    async def _paths(
        self, conn: asyncpg.Connection, rows: list[repo.DueRow]
    ) -> dict[int, tuple[Series, int, int, str]]:
        """Return each row's path as a window of a candle series, with its price source."""
        ranges: dict[str, tuple[datetime, datetime]] = {}
        for row in rows:
            start, end = ranges.get(row.symbol, (row.entry_at, row.due_at))
            ranges[row.symbol] = (min(start, row.entry_at), max(end, row.due_at))
        stored = await repo.load_series(conn, ranges, list(self._timeframes))
        venues: dict[str, set[str]] = {}
        for symbol, venue, _ in stored:
            venues.setdefault(symbol, set()).add(venue)
        found: dict[int, tuple[Series, int, int, str]] = {}
        missing: dict[str, list[repo.DueRow]] = {}
        for row in rows:
            path = self._stored_path(row, stored, venues.get(row.symbol, set()))
            if path is None:
                missing.setdefault(row.symbol, []).append(row)
            else:
                found[row.id] = path
        for symbol, group in missing.items():
            found.update(await self._fetch_paths(conn, symbol, group))
        return found

    def _stored_path(
        self,
        row: repo.DueRow,
        stored: dict[tuple[str, str, str], Series],
        venues: set[str],
    ) -> tuple[Series, int, int, str] | None:
        """Return the row's path from one venue's stored candles, or None.

        The signal's own venue first, then candles of unknown venue (stored before
        outcomes_0006); a signal of unknown venue takes the funding venue's, then any.
        """
        if row.venue:
            order = [row.venue, ""]
        else:
            first = self._s.outcomes_funding_venue
            order = [first, "", *sorted(venues - {first, ""})]
        finest = next(iter(self._timeframes.values()))
        for venue in order:
            for tf, step in self._timeframes.items():  # finest first: the most detailed wins
                if not covers(row, step, finest):
                    continue  # its path would start late and end before the horizon
                series = stored.get((row.symbol, venue, tf))
                window = None if series is None else series.window(row.entry_at, row.due_at, step)
                if window is not None:
                    assert series is not None
                    return series, window[0], window[1], "stream"
        return None

    async def _fetch_paths(
        self, conn: asyncpg.Connection, symbol: str, rows: list[repo.DueRow]
    ) -> dict[int, tuple[Series, int, int, str]]:
        if self._klines is None:
            if not self._no_fallback_logged:
                log.warning("klines fallback disabled: rows without stream candles wait")
                self._no_fallback_logged = True
            return {}
        # the klines are one venue's prices: never a path for a signal priced on another
        rows = [r for r in rows if r.venue in (None, "", self._klines.venue)]
        if not rows:
            return {}
        tf = self._kline_tf
        step = timedelta(seconds=TIMEFRAME_SECONDS[tf])
        start = min(r.entry_at for r in rows)
        end = max(r.due_at for r in rows)
        try:
            candles = await self._klines.fetch_candles(symbol, tf, start, end)
        except Exception as exc:
            log.warning(
                "klines fallback failed; rows stay pending",
                extra={"symbol": symbol, "error": f"{type(exc).__name__}: {exc}"},
            )
            return {}
        await repo.insert_candles(
            conn,
            [
                {
                    "symbol": symbol,
                    "timeframe": tf,
                    "open_time": c.open_time,
                    "open": c.open,
                    "high": c.high,
                    "low": c.low,
                    "close": c.close,
                    "source": self._klines.name,
                    "venue": self._klines.venue,
                }
                for c in candles
            ],
        )
        found = {}
        for row in rows:
            path = path_window(candles, row.entry_at, row.due_at, step)
            if path is not None:
                found[row.id] = (Series.of(path), 0, len(path), self._klines.name)
        return found

    async def publish_batch(self) -> int:
        """Publish completed, unpublished outcomes; mark them once Kafka acknowledged them.

        `publish_many` waits for exactly these events (its own `Deliveries`, apart from the
        consumer loop's sharing the producer) and raises if the broker lost any, so a row is
        marked only once its event is acknowledged.
        """
        if self._producer is None:
            return 0
        producer = self._producer
        async with session_scope(self._sessions) as session:
            rows = await repo.claim_unpublished(session, self._s.outcomes_batch_size)
            if not rows:
                return 0
            events = [
                OutcomeEvaluatedV1(
                    event_id=outcome_event_id(r.signal_id, r.horizon),
                    source="outcomes",
                    symbol=r.symbol,
                    observed_at=r.due_at,
                    causation_id=r.signal_event_id,
                    signal_id=r.signal_id,
                    direction=r.direction,
                    verdict=r.verdict,
                    horizon=r.horizon,
                    entry_price=r.entry_price,
                    exit_price=r.exit_price,
                    pnl_pct=r.pnl_pct,
                    result=r.result,
                    max_favorable_pct=r.max_favorable_pct,
                    max_adverse_pct=r.max_adverse_pct,
                    first_hit=r.first_hit,
                )
                for r in rows
            ]
            await producer.publish_many(events)
            await repo.mark_published(session, [r.id for r in rows], self._wall())
        return len(rows)

    async def prune(self) -> None:
        """Delete candles older than the retention, and settlements no window needs any more.

        A settlement is kept while a pending row, or a completed row whose funding may still
        be filled in (OUTCOMES_FUNDING_WAIT_S), may need it (FUNDING_BEFORE before its entry).
        """
        now = self._clock()
        before = now - timedelta(seconds=self._s.outcomes_candle_retention_s)
        longest = timedelta(seconds=max(self._s.horizons().values()))
        wait = timedelta(seconds=self._s.outcomes_funding_wait_s)
        keep_from = min(before, now - wait - longest) - FUNDING_BEFORE
        async with session_scope(self._sessions) as session:
            n = await repo.prune_candles(session, before)
            n_funding = await repo.prune_funding(session, keep_from, FUNDING_BEFORE)
        if n or n_funding:
            log.info("pruned old candles", extra={"rows": n, "funding_rows": n_funding})
