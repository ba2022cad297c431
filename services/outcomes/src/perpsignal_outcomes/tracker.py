"""The evaluator: claim due outcome rows, measure them on the candle path, publish results.

Durability and replicas: due evaluations are rows. A batch is claimed with
`SELECT ... FOR UPDATE SKIP LOCKED` and evaluated inside the claiming transaction, so several
replicas never evaluate one row twice and a crash simply releases the locks. A row waiting for
the klines fallback is leased instead and measured in a second transaction after the fetch:
no HTTP call ever runs inside a transaction. Completed rows
stay in an outbox (`published_at IS NULL`) until Kafka acknowledged their event, so a crash
between commit and publish loses no event (it is re-sent with the same deterministic id).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
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
    Candle,
    Costs,
    Series,
    evaluate_window,
    funding_paid_pct,
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
Funding = dict[tuple[str, str], tuple[list[float], list[float]]]
# a row's path: a window [lo, hi) of a stored series, its price source and candles' venue
Path = tuple[Series, int, int, str, str]
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


@dataclass
class _Tally:
    """What one `evaluate_batch` did: completed count, deferred and failed reasons."""

    done: int = 0
    waiting: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def _merged(windows: Iterable[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    """Return the union of `(start, end)` windows as disjoint windows, oldest first."""
    out: list[tuple[datetime, datetime]] = []
    for start, end in sorted(windows):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


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
            except Exception as exc:
                if (down := repo.unavailable(exc)) is not None:
                    raise down from exc
                raise

    async def evaluate_batch(self) -> int:
        """Claim and evaluate one batch of due rows; return how many were claimed.

        Claim, stored candles, evaluation and result writes happen in one short transaction
        on the asyncpg connection under a pooled session (a handful of round trips per batch,
        whatever its size): a crash before the commit releases the locks and leaves the rows
        pending. No network call runs inside a transaction: rows whose stored candles miss
        their path and that the klines fallback may price are *leased* in that transaction
        (`retry_at` moved on by OUTCOMES_RETRY_S, so no replica claims them meanwhile; no
        attempt counted) and it commits; the klines are fetched with no transaction open;
        a second transaction stores them and a third locks the leased rows again (still
        pending; waiting a moment for one a peer's claim holds) and evaluates them on the
        stored candles. A row is only
        ever measured under its row lock and only a pending row is completed, so a lease
        that expires during a slow fetch costs a second fetch, never a second evaluation.
        """
        now = self._clock()
        tally = _Tally()
        async with self._transaction() as conn:
            rows = await repo.claim_due(conn, now, self._s.outcomes_batch_size, self._wall())
            leased = await self._evaluate(conn, rows, now, tally, fetch=self._klines is not None)
        if leased:
            candles = await self._fetch(leased)
            async with self._transaction() as conn:
                await repo.insert_candles(conn, candles)
            try:
                async with self._transaction() as conn:
                    again = await repo.reclaim(conn, [r.id for r in leased])
                    await self._evaluate(conn, again, now, tally, fetch=False, fetched=True)
            except asyncpg.LockNotAvailableError:
                # held past the lock timeout (a stuck peer): the rows keep their lease
                # and are measured once it has passed; their klines are stored already
                log.warning(
                    "leased rows held by another transaction; they wait for their lease",
                    extra={"rows": len(leased)},
                )
        self.completed += tally.done
        self.deferred += len(tally.waiting)
        if tally.waiting:
            if self._klines is None and not self._no_fallback_logged:
                log.warning("klines fallback disabled: rows without stream candles wait")
                self._no_fallback_logged = True
            log.info(
                "prices missing; evaluations stay pending",
                extra={"rows": len(tally.waiting), "example": tally.waiting[0]},
            )
        if tally.failed:
            log.warning(
                "evaluations failed", extra={"rows": len(tally.failed), "example": tally.failed[0]}
            )
        return len(rows)

    def _fetchable(self, row: repo.DueRow) -> bool:
        """Return True when the klines fallback may price `row`: they are one venue's prices,
        never a path for a signal priced on another."""
        return self._klines is not None and row.venue in (None, "", self._klines.venue)

    def _funding_venue(self, row_venue: str | None, path_venue: str = "") -> str:
        """Return whose funding a position pays: its signal's price venue, else the venue
        whose candles priced it, else (venue unknown everywhere: rows and candles stored
        before outcomes_0006) OUTCOMES_FUNDING_VENUE."""
        return row_venue or path_venue or self._s.outcomes_funding_venue

    async def _evaluate(
        self,
        conn: asyncpg.Connection,
        rows: list[repo.DueRow],
        now: datetime,
        tally: _Tally,
        *,
        fetch: bool,
        fetched: bool = False,
    ) -> list[repo.DueRow]:
        """Measure the claimed `rows` on their stored candles and write every result; return
        the rows leased for a klines fetch (only with `fetch`). `fetched`: the rows' klines
        were just fetched and stored."""
        if not rows:
            return []
        wall = self._wall()
        paths = await self._paths(conn, rows, fetched=fetched)
        funding = await self._funding(
            conn,
            [
                (self._funding_venue(r.venue, paths[r.id][4]), r.symbol, r.entry_at, r.due_at)
                for r in rows
                if r.id in paths
            ],
        )
        give_up = timedelta(seconds=self._s.outcomes_give_up_after_s)
        retry = timedelta(seconds=self._s.outcomes_retry_s)
        band = self._s.outcomes_neutral_band_pct
        costs = Costs(self._s.outcomes_taker_fee_bp, self._s.outcomes_slippage_bp)
        done: list[repo.Done] = []
        waiting: list[tuple[int, str, datetime]] = []
        failed: list[tuple[int, str, datetime]] = []
        leased: list[repo.DueRow] = []
        for row in rows:
            found = paths.get(row.id)
            if found is None:
                reason = f"no complete candle path for {row.symbol} {row.horizon} yet"
                if fetch and self._fetchable(row):
                    leased.append(row)
                # measured on wall time from when the row became due *here*: a replayed or
                # late signal gets the full retry window too (under the event clock, from
                # when it was stored: market time may stand still or be years old)
                elif wall - max(row.due_at, row.created_at) > give_up:
                    failed.append((row.id, reason + "; gave up", now))
                else:
                    # wall time: under the event clock market time stops with the stream,
                    # and a retry set on it would never come
                    waiting.append((row.id, reason, wall + retry))
                continue
            series, lo, hi, source, venue = found
            pays = self._funding_venue(row.venue, venue)
            rates = self._rates(funding, pays, row.symbol, row.entry_at, row.due_at)
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
            settlements = None if rates is None else len(rates)
            done.append(repo.Done(row.id, ev, source, settlements, venue or None))
        await repo.complete(conn, done, self._wall(), self.worker)
        await repo.defer(conn, waiting)
        await repo.defer(conn, failed, status="failed")
        await repo.defer(
            conn,
            [(r.id, f"fetching klines for {r.symbol} {r.horizon}", wall + retry) for r in leased],
            attempt=False,
        )
        tally.done += len(done)
        tally.waiting += [reason for _, reason, _ in waiting]
        tally.failed += [reason for _, reason, _ in failed]
        return leased

    async def _funding(
        self, conn: asyncpg.Connection, windows: Sequence[tuple[str, str, datetime, datetime]]
    ) -> Funding:
        """Return the stored settlements around the (venue, symbol, entry, due) `windows`,
        per (venue, symbol)."""
        ranges: dict[tuple[str, str], tuple[datetime, datetime]] = {}
        for venue, symbol, entry_at, due_at in windows:
            start, end = ranges.get((venue, symbol), (entry_at, due_at))
            ranges[(venue, symbol)] = (min(start, entry_at), max(end, due_at))
        ranges = {k: (a - FUNDING_BEFORE, b + FUNDING_AFTER) for k, (a, b) in ranges.items()}
        return await repo.load_funding(conn, ranges)

    @staticmethod
    def _rates(
        funding: Funding, venue: str, symbol: str, entry_at: datetime, due_at: datetime
    ) -> Sequence[float] | None:
        """Return the rates `venue` settled while the position was open; None when unknown
        (none of that venue's settlements stored proves the window complete)."""
        times, rates = funding.get((venue, symbol), ([], []))
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
                windows = [
                    (self._funding_venue(r.venue), r.symbol, r.entry_at, r.due_at) for r in rows
                ]
                funding = await self._funding(conn, windows)
                known = []
                for row, (venue, symbol, entry_at, due_at) in zip(rows, windows, strict=True):
                    rates = self._rates(funding, venue, symbol, entry_at, due_at)
                    if rates is not None:
                        paid = funding_paid_pct(row.direction, rates)
                        known.append((row.id, paid, len(rates)))
                await repo.set_funding(conn, known)
            total += len(known)
            if len(rows) < self._s.outcomes_batch_size:
                return total
            after = (rows[-1].due_at, rows[-1].id)

    async def _paths(
        self, conn: asyncpg.Connection, rows: list[repo.DueRow], *, fetched: bool = False
    ) -> dict[int, Path]:
        """Return each row's path from the stored candles (stream or fetched klines)."""
        timeframes = set(self._timeframes)
        if fetched:
            timeframes.add(self._kline_tf)
        ranges: dict[str, tuple[datetime, datetime]] = {}
        for row in rows:
            start, end = ranges.get(row.symbol, (row.entry_at, row.due_at))
            ranges[row.symbol] = (min(start, row.entry_at), max(end, row.due_at))
        stored = await repo.load_series(conn, ranges, sorted(timeframes))
        venues: dict[str, set[str]] = {}
        for symbol, venue, _ in stored:
            venues.setdefault(symbol, set()).add(venue)
        found: dict[int, Path] = {}
        for row in rows:
            path = self._stored_path(row, stored, venues.get(row.symbol, set()))
            if path is None and fetched:
                path = self._klines_path(row, stored)
            if path is not None:
                found[row.id] = path
        return found

    def _stored_path(
        self,
        row: repo.DueRow,
        stored: dict[tuple[str, str, str], repo.StoredSeries],
        venues: set[str],
    ) -> Path | None:
        """Return the row's path from one venue's stored candles, or None.

        The signal's own venue first, then candles of unknown venue (stored before
        outcomes_0006); a signal of unknown venue takes the funding venue's, then any. The
        source is the candles' own ('stream', or the klines fallback's name when it stored
        them; names joined by '+' for a path of both).
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
                got = stored.get((row.symbol, venue, tf))
                window = None if got is None else got.series.window(row.entry_at, row.due_at, step)
                if window is not None:
                    assert got is not None
                    lo, hi = window
                    return got.series, lo, hi, got.source_of(lo, hi), venue
        return None

    def _klines_path(
        self, row: repo.DueRow, stored: dict[tuple[str, str, str], repo.StoredSeries]
    ) -> Path | None:
        """Return the row's path from the klines venue's candles of OUTCOMES_KLINES_TIMEFRAME
        (just fetched), or None: the fetched candles inside the window, every one of them, as
        `path_window` takes them (the klines timeframe need not be a stored one)."""
        if self._klines is None or not self._fetchable(row):
            return None
        got = stored.get((row.symbol, self._klines.venue, self._kline_tf))
        step = timedelta(seconds=TIMEFRAME_SECONDS[self._kline_tf])
        window = None if got is None else got.series.window(row.entry_at, row.due_at, step)
        if window is None:
            return None
        assert got is not None
        lo, hi = window
        return got.series, lo, hi, got.source_of(lo, hi), self._klines.venue

    async def _fetch(self, rows: list[repo.DueRow]) -> list[dict[str, Any]]:
        """Fetch the klines of the leased `rows`, per symbol, as `outcome_candles` rows.

        Runs with no transaction open (a slow vendor holds no lock). One fetch per window of
        a symbol's rows, overlapping windows merged; when a fetch fails, the symbol's later
        windows are not asked for and their rows are deferred as usual.
        """
        klines = self._klines
        assert klines is not None
        tf = self._kline_tf
        by_symbol: dict[str, list[repo.DueRow]] = {}
        for row in rows:
            by_symbol.setdefault(row.symbol, []).append(row)
        out: list[dict[str, Any]] = []
        for symbol, group in by_symbol.items():
            candles: list[Candle] = []
            try:
                # the rows' windows, overlapping ones merged: never the days between far-apart
                # rows (a backlog, replayed signals)
                for start, end in _merged((r.entry_at, r.due_at) for r in group):
                    candles += await klines.fetch_candles(symbol, tf, start, end)
            except Exception as exc:
                log.warning(
                    "klines fallback failed; rows stay pending",
                    extra={"symbol": symbol, "error": f"{type(exc).__name__}: {exc}"},
                )
                # the windows fetched before the failure are kept: their rows are measured
            out += [
                {
                    "symbol": symbol,
                    "timeframe": tf,
                    "open_time": c.open_time,
                    "open": c.open,
                    "high": c.high,
                    "low": c.low,
                    "close": c.close,
                    "source": klines.name,
                    "venue": klines.venue,
                }
                for c in candles
            ]
        return out

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
