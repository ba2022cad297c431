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
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from perpsignal_common.db.engine import session_scope
from perpsignal_common.errors import DependencyUnavailable
from perpsignal_common.events.base import deterministic_id
from perpsignal_common.events.market import TIMEFRAME_SECONDS
from perpsignal_common.events.signals import OutcomeEvaluatedV1
from perpsignal_common.kafka.producer import EventProducer
from perpsignal_outcomes import repository as repo
from perpsignal_outcomes.evaluate import (
    Candle,
    Evaluation,
    evaluate,
    path_window,
    path_window_sorted,
)
from perpsignal_outcomes.prices import KlineSource
from perpsignal_outcomes.settings import OutcomesSettings

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    """Return the current UTC time."""
    return datetime.now(UTC)


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
    ) -> None:
        self._s = settings
        self._sessions = sessions
        self._producer = producer
        self._klines = klines
        self._clock = clock
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
        while not stop.is_set():
            busy = False
            try:
                claimed = await self.evaluate_batch()
                published = await self.publish_batch()
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

    async def evaluate_batch(self) -> int:
        """Claim and evaluate one batch of due rows; return how many were claimed."""
        now = self._clock()
        async with session_scope(self._sessions) as session:
            rows = await repo.claim_due(session, now, self._s.outcomes_batch_size)
            if not rows:
                return 0
            paths = await self._paths(session, rows)
            done: list[tuple[int, Evaluation, str]] = []
            waiting: list[tuple[int, str, datetime]] = []
            failed: list[tuple[int, str, datetime]] = []
            give_up = timedelta(seconds=self._s.outcomes_give_up_after_s)
            for row in rows:
                found = paths.get(row.id)
                if found is None:
                    reason = f"no complete candle path for {row.symbol} {row.horizon} yet"
                    # measured from when the row became due *here*: a replayed or late signal
                    # gets the full retry window too
                    if now - max(row.due_at, row.created_at) > give_up:
                        failed.append((row.id, reason + "; gave up", now))
                    else:
                        retry = timedelta(seconds=self._s.outcomes_retry_s)
                        waiting.append((row.id, reason, now + retry))
                    continue
                candles, source = found
                try:
                    ev = evaluate(
                        row.direction,
                        row.entry_price,
                        candles,
                        stop=row.stop_loss_price,
                        target=row.take_profit_price,
                        band_pct=self._s.outcomes_neutral_band_pct,
                    )
                except ValueError as exc:
                    failed.append((row.id, f"cannot evaluate: {exc}", now))
                    continue
                done.append((row.id, ev, source))
            await repo.complete(session, done, now, self.worker)
            await repo.defer(session, waiting)
            await repo.defer(session, failed, status="failed")
        self.completed += len(done)
        self.deferred += len(waiting)
        if waiting:
            log.info(
                "prices missing; evaluations stay pending",
                extra={"rows": len(waiting), "example": waiting[0][1]},
            )
        if failed:
            log.warning("evaluations failed", extra={"rows": len(failed), "example": failed[0][1]})
        return len(rows)

    async def _paths(
        self, session: AsyncSession, rows: list[repo.DueRow]
    ) -> dict[int, tuple[list[Candle], str]]:
        by_symbol: dict[str, list[repo.DueRow]] = {}
        for row in rows:
            by_symbol.setdefault(row.symbol, []).append(row)
        found: dict[int, tuple[list[Candle], str]] = {}
        for symbol, group in by_symbol.items():
            start = min(r.entry_at for r in group)
            end = max(r.due_at for r in group)
            stored = await repo.load_candles(session, symbol, list(self._timeframes), start, end)
            # load_candles returns each timeframe in open-time order (unique per the key)
            times = {tf: [c.open_time for c in candles] for tf, candles in stored.items()}
            missing = []
            for row in group:
                path = self._stored_path(stored, times, row)
                if path is None:
                    missing.append(row)
                else:
                    found[row.id] = (path, "stream")
            if missing:
                found.update(await self._fetch_paths(session, symbol, missing))
        return found

    def _stored_path(
        self,
        stored: dict[str, list[Candle]],
        times: dict[str, list[datetime]],
        row: repo.DueRow,
    ) -> list[Candle] | None:
        for tf, step in self._timeframes.items():  # finest first: the most detailed path wins
            path = path_window_sorted(
                stored.get(tf, []), times.get(tf, []), row.entry_at, row.due_at, step
            )
            if path is not None:
                return path
        return None

    async def _fetch_paths(
        self, session: AsyncSession, symbol: str, rows: list[repo.DueRow]
    ) -> dict[int, tuple[list[Candle], str]]:
        if self._klines is None:
            if not self._no_fallback_logged:
                log.warning("klines fallback disabled: rows without stream candles wait")
                self._no_fallback_logged = True
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
        await repo.store_candles(
            session,
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
                }
                for c in candles
            ],
        )
        found = {}
        for row in rows:
            path = path_window(candles, row.entry_at, row.due_at, step)
            if path is not None:
                found[row.id] = (path, self._klines.name)
        return found

    async def publish_batch(self) -> int:
        """Publish completed, unpublished outcomes; mark them once Kafka acknowledged."""
        if self._producer is None:
            return 0
        async with session_scope(self._sessions) as session:
            rows = await repo.claim_unpublished(session, self._s.outcomes_batch_size)
            if not rows:
                return 0
            for r in rows:
                await self._producer.publish(
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
                )
            await self._producer.wait_delivered()
            await repo.mark_published(session, [r.id for r in rows], self._clock())
        return len(rows)

    async def prune(self) -> None:
        """Delete candles older than the retention."""
        before = self._clock() - timedelta(seconds=self._s.outcomes_candle_retention_s)
        async with session_scope(self._sessions) as session:
            n = await repo.prune_candles(session, before)
        if n:
            log.info("pruned old candles", extra={"rows": n})
