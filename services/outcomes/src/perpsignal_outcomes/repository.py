"""Database access of the outcomes service: idempotent inserts, claims, updates, outbox."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from perpsignal_common.db.models.outcomes import (
    OutcomeCandle,
    OutcomeMss,
    OutcomeSignal,
    SignalOutcome,
)
from perpsignal_common.errors import DependencyUnavailable
from perpsignal_common.events.market import CandleClosedV1
from perpsignal_common.events.signals import MssScoredV1, SignalJudgedV1
from perpsignal_outcomes.evaluate import Candle, Evaluation


def signal_row(event: SignalJudgedV1) -> dict[str, Any]:
    """Return the `outcome_signals` row of a judged signal."""
    layer = event.ai_verdict_layer
    vol = layer.volatility_metrics
    return {
        "signal_id": event.signal_id,
        "event_id": event.event_id,
        "symbol": event.symbol,
        "timeframe": event.timeframe,
        "direction": event.direction,
        "score": event.score,
        "confidence": event.confidence,
        "price": event.price,
        "observed_at": event.observed_at,
        "verdict": layer.verdict,
        "risk_mode": layer.risk_mode,
        "judge": layer.judge,
        "position_multiplier": layer.position_multiplier,
        "stop_loss_price": vol.stop_loss_price,
        "take_profit_price": vol.take_profit_price,
        "factors": [f.model_dump(mode="json") for f in event.factors],
        "verdict_layer": layer.model_dump(mode="json"),
    }


def outcome_rows(
    signal: dict[str, Any], horizons: dict[str, int], settle: timedelta
) -> list[dict[str, Any]]:
    """Return one due `signal_outcomes` row per horizon for a stored signal."""
    rows = []
    for horizon, seconds in horizons.items():
        due = signal["observed_at"] + timedelta(seconds=seconds)
        rows.append(
            {
                "signal_id": signal["signal_id"],
                "horizon": horizon,
                "horizon_s": seconds,
                "symbol": signal["symbol"],
                "direction": signal["direction"],
                "verdict": signal["verdict"],
                "risk_mode": signal["risk_mode"],
                "judge": signal["judge"],
                "score": signal["score"],
                "entry_price": signal["price"],
                "stop_loss_price": signal["stop_loss_price"],
                "take_profit_price": signal["take_profit_price"],
                "entry_at": signal["observed_at"],
                "due_at": due,
                "next_attempt_at": due + settle,
            }
        )
    return rows


_SIGNAL_COLUMNS = {
    "signal_id": "text",
    "event_id": "text",
    "symbol": "text",
    "timeframe": "text",
    "direction": "text",
    "score": "float8",
    "confidence": "float8",
    "price": "float8",
    "observed_at": "timestamptz",
    "verdict": "text",
    "risk_mode": "text",
    "judge": "text",
    "position_multiplier": "float8",
    "stop_loss_price": "float8",
    "take_profit_price": "float8",
    "factors": "jsonb",
    "verdict_layer": "jsonb",
}
_OUTCOME_COLUMNS = {
    "signal_id": "text",
    "horizon": "text",
    "horizon_s": "int4",
    "symbol": "text",
    "direction": "text",
    "verdict": "text",
    "risk_mode": "text",
    "judge": "text",
    "score": "float8",
    "entry_price": "float8",
    "stop_loss_price": "float8",
    "take_profit_price": "float8",
    "entry_at": "timestamptz",
    "due_at": "timestamptz",
    "next_attempt_at": "timestamptz",
}


def _unnest(prefix: str, columns: dict[str, str]) -> str:
    args = ", ".join(f"CAST(:{prefix}{c} AS {t}[])" for c, t in columns.items())
    return f"SELECT * FROM unnest({args})"


# One statement (one round trip, atomic on its own): the signals, then every due row. Due rows
# are inserted for every event, new or not, as the two statements did before; the foreign key is
# checked at the end of the statement, when the signals are in.
STORE_SIGNALS_SQL = f"""
WITH s AS (
    INSERT INTO outcome_signals ({", ".join(_SIGNAL_COLUMNS)})
    {_unnest("s_", _SIGNAL_COLUMNS)}
    ON CONFLICT DO NOTHING
    RETURNING 1
), o AS (
    INSERT INTO signal_outcomes ({", ".join(_OUTCOME_COLUMNS)})
    {_unnest("o_", _OUTCOME_COLUMNS)}
    ON CONFLICT DO NOTHING
)
SELECT count(*) AS new FROM s
"""


def store_signals_params(
    events: Sequence[SignalJudgedV1], horizons: dict[str, int], settle: timedelta
) -> dict[str, list[Any]]:
    """Return the column arrays of `STORE_SIGNALS_SQL` for `events` (JSON columns as text)."""
    signals = [signal_row(e) for e in events]
    outcomes = [row for s in signals for row in outcome_rows(s, horizons, settle)]
    params: dict[str, list[Any]] = {}
    for c, t in _SIGNAL_COLUMNS.items():
        values = [s[c] for s in signals]
        params[f"s_{c}"] = [json.dumps(v) for v in values] if t == "jsonb" else values
    for c in _OUTCOME_COLUMNS:
        params[f"o_{c}"] = [o[c] for o in outcomes]
    return params


async def store_signals(
    session: AsyncSession,
    events: Sequence[SignalJudgedV1],
    horizons: dict[str, int],
    settle: timedelta,
) -> int:
    """Insert judged signals and their due outcome rows; return how many signals were new.

    ON CONFLICT DO NOTHING on every unique key makes a redelivered event a no-op.
    """
    if not events:
        return 0
    params = store_signals_params(events, horizons, settle)
    return int((await session.execute(text(STORE_SIGNALS_SQL), params)).scalar_one())


def _positional(sql: str) -> tuple[str, list[str]]:
    """Rewrite `:name` binds as asyncpg's `$n`; return the SQL and the names in order."""
    names: list[str] = []

    def sub(m: re.Match[str]) -> str:
        if m.group(1) not in names:
            names.append(m.group(1))
        return f"${names.index(m.group(1)) + 1}"

    return re.sub(r"(?<!:):([a-z_]+)", sub, sql), names


_STORE_PG, _STORE_NAMES = _positional(STORE_SIGNALS_SQL)
CONNECTION_DOWN = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
)


class SignalWriter:
    """Stores judged signals for concurrent handlers with one statement per batch.

    The consumer loop runs records of different keys concurrently; each handler awaits
    `store(event)`, which returns once the signal and its due rows are committed. Signals that
    arrive while a statement is in flight are written together by the next one (group commit),
    so N concurrent handlers share one round trip instead of a transaction each. When a batch
    fails for a reason other than the database being down, each of its signals is retried on
    its own so only the bad one fails. The statement runs on a small asyncpg pool (autocommit):
    one round trip per batch.
    """

    def __init__(
        self,
        dsn: str,
        horizons: dict[str, int],
        settle: timedelta,
        *,
        statement_timeout_ms: int = 5_000,
        pool_size: int = 2,
        max_batch: int = 500,
    ) -> None:
        self._dsn = dsn
        self._horizons = horizons
        self._settle = settle
        self._timeout_ms = statement_timeout_ms
        self._pool_size = pool_size
        self._max_batch = max_batch
        self._pool: asyncpg.Pool | None = None
        self._pool_lock = asyncio.Lock()
        self._queue: list[tuple[SignalJudgedV1, asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def close(self) -> None:
        """Close the pool (pending stores have finished: each handler awaited its own)."""
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def store(self, event: SignalJudgedV1) -> None:
        """Return once `event` and its due rows are committed (or raise why they are not)."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((event, fut))
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush())
        await fut

    async def _flush(self) -> None:
        try:
            while self._queue:
                batch = self._queue[: self._max_batch]
                del self._queue[: self._max_batch]
                try:
                    await self._write([e for e, _ in batch])
                except DependencyUnavailable as exc:
                    _settle_all(batch, exc)
                except Exception:
                    if len(batch) == 1:
                        raise
                    for one in batch:  # only the bad signal fails
                        try:
                            await self._write([one[0]])
                        except Exception as exc:
                            _settle_all([one], exc)
                        else:
                            _settle_all([one], None)
                else:
                    _settle_all(batch, None)
        except Exception as exc:
            _settle_all(batch, exc)
        finally:
            self._flusher = None
            if self._queue:  # arrived after the loop ended
                self._flusher = asyncio.create_task(self._flush())

    async def _write(self, events: Sequence[SignalJudgedV1]) -> None:
        params = store_signals_params(events, self._horizons, self._settle)
        try:
            pool = await self._get_pool()
            async with pool.acquire() as conn:
                await conn.execute(_STORE_PG, *(params[n] for n in _STORE_NAMES))
        except CONNECTION_DOWN as exc:
            raise DependencyUnavailable(f"database unavailable: {type(exc).__name__}") from exc

    async def _get_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            async with self._pool_lock:
                if self._pool is None:
                    self._pool = await asyncpg.create_pool(
                        self._dsn,
                        min_size=1,
                        max_size=self._pool_size,
                        server_settings={"statement_timeout": str(self._timeout_ms)},
                    )
        return self._pool


def _settle_all(
    batch: Sequence[tuple[SignalJudgedV1, asyncio.Future[None]]], exc: BaseException | None
) -> None:
    for _, fut in batch:
        if not fut.done():
            if exc is None:
                fut.set_result(None)
            else:
                fut.set_exception(exc)


async def store_mss(session: AsyncSession, event: MssScoredV1) -> bool:
    """Insert one MSS result; return False when it was already stored."""
    stmt = (
        insert(OutcomeMss)
        .values(
            event_id=event.event_id,
            coin=event.coin,
            mss=event.mss,
            tier=event.tier,
            observed_at=event.observed_at,
            payload=event.model_dump(mode="json"),
        )
        .on_conflict_do_nothing()
        .returning(OutcomeMss.event_id)
    )
    return (await session.execute(stmt)).first() is not None


def candle_row(event: CandleClosedV1) -> dict[str, Any]:
    """Return the `outcome_candles` row of a closed candle from the market stream."""
    return {
        "symbol": event.symbol,
        "timeframe": event.timeframe,
        "open_time": event.open_time,
        "open": event.open,
        "high": event.high,
        "low": event.low,
        "close": event.close,
        "source": "stream",
    }


async def store_candles(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Insert candles; a candle already stored (same symbol, timeframe, open) is kept."""
    if rows:
        await session.execute(insert(OutcomeCandle).on_conflict_do_nothing(), list(rows))


async def load_candles(
    session: AsyncSession,
    symbol: str,
    timeframes: Sequence[str],
    start: datetime,
    end: datetime,
) -> dict[str, list[Candle]]:
    """Return the stored candles of `symbol` opening in [start, end), per timeframe, in order."""
    stmt = (
        select(
            OutcomeCandle.timeframe,
            OutcomeCandle.open_time,
            OutcomeCandle.open,
            OutcomeCandle.high,
            OutcomeCandle.low,
            OutcomeCandle.close,
        )
        .where(
            OutcomeCandle.symbol == symbol,
            OutcomeCandle.timeframe.in_(list(timeframes)),
            OutcomeCandle.open_time >= start,
            OutcomeCandle.open_time < end,
        )
        .order_by(OutcomeCandle.timeframe, OutcomeCandle.open_time)
    )
    out: dict[str, list[Candle]] = {tf: [] for tf in timeframes}
    for tf, open_time, o, h, lo, c in (await session.execute(stmt)).all():
        out[tf].append(Candle(open_time, o, h, lo, c))
    return out


@dataclass(frozen=True, slots=True)
class DueRow:
    """A claimed due evaluation (locked until the claiming transaction ends)."""

    id: int
    signal_id: str
    horizon: str
    symbol: str
    direction: str
    verdict: str
    entry_price: float
    stop_loss_price: float | None
    take_profit_price: float | None
    entry_at: datetime
    due_at: datetime
    attempts: int
    created_at: datetime


async def claim_due(session: AsyncSession, now: datetime, limit: int) -> list[DueRow]:
    """Lock up to `limit` due pending rows that no other transaction holds (SKIP LOCKED)."""
    o = SignalOutcome
    stmt = (
        select(
            o.id,
            o.signal_id,
            o.horizon,
            o.symbol,
            o.direction,
            o.verdict,
            o.entry_price,
            o.stop_loss_price,
            o.take_profit_price,
            o.entry_at,
            o.due_at,
            o.attempts,
            o.created_at,
        )
        .where(o.status == "pending", o.next_attempt_at <= now)
        .order_by(o.next_attempt_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return [DueRow(**r._asdict()) for r in (await session.execute(stmt)).all()]


COMPLETE_SQL = """
UPDATE signal_outcomes AS t SET
    status = 'completed', exit_price = v.exit_price, pnl_pct = v.pnl_pct, result = v.result,
    max_favorable_pct = v.mfe, max_adverse_pct = v.mae, first_hit = v.first_hit,
    candles_used = v.candles_used, price_source = v.price_source, reason = NULL,
    evaluated_at = :now, evaluated_by = :worker, attempts = t.attempts + 1,
    evaluation_count = t.evaluation_count + 1
FROM unnest(CAST(:ids AS bigint[]), CAST(:exit AS float8[]), CAST(:pnl AS float8[]),
            CAST(:result AS text[]), CAST(:mfe AS float8[]), CAST(:mae AS float8[]),
            CAST(:hit AS text[]), CAST(:n AS int4[]), CAST(:source AS text[]))
     AS v(id, exit_price, pnl_pct, result, mfe, mae, first_hit, candles_used, price_source)
WHERE t.id = v.id AND t.status = 'pending'
"""

DEFER_SQL = """
UPDATE signal_outcomes AS t SET
    status = :status, reason = v.reason, next_attempt_at = v.next_at, attempts = t.attempts + 1
FROM unnest(CAST(:ids AS bigint[]), CAST(:reasons AS text[]), CAST(:nexts AS timestamptz[]))
     AS v(id, reason, next_at)
WHERE t.id = v.id AND t.status = 'pending'
"""


async def complete(
    session: AsyncSession,
    results: Sequence[tuple[int, Evaluation, str]],
    now: datetime,
    worker: str,
) -> None:
    """Write finished evaluations (id, evaluation, price source) of claimed rows.

    One UPDATE for the whole batch (the rollup triggers then run once per batch too).
    """
    if not results:
        return
    params = {
        "now": now,
        "worker": worker,
        "ids": [row_id for row_id, _, _ in results],
        "exit": [ev.exit_price for _, ev, _ in results],
        "pnl": [ev.pnl_pct for _, ev, _ in results],
        "result": [ev.result for _, ev, _ in results],
        "mfe": [ev.max_favorable_pct for _, ev, _ in results],
        "mae": [ev.max_adverse_pct for _, ev, _ in results],
        "hit": [ev.first_hit for _, ev, _ in results],
        "n": [ev.candles_used for _, ev, _ in results],
        "source": [source for _, _, source in results],
    }
    await session.execute(text(COMPLETE_SQL), params)


async def defer(
    session: AsyncSession,
    deferred: Sequence[tuple[int, str, datetime]],
    *,
    status: str = "pending",
) -> None:
    """Leave claimed rows pending with a reason until `next_attempt_at` (or mark them failed)."""
    if not deferred:
        return
    params = {
        "status": status,
        "ids": [i for i, _, _ in deferred],
        "reasons": [r for _, r, _ in deferred],
        "nexts": [n for _, _, n in deferred],
    }
    await session.execute(text(DEFER_SQL), params)


@dataclass(frozen=True, slots=True)
class Unpublished:
    """A completed evaluation waiting in the outbox."""

    id: int
    signal_id: str
    signal_event_id: str
    symbol: str
    horizon: str
    direction: str
    verdict: str
    entry_price: float
    exit_price: float
    pnl_pct: float
    result: str
    max_favorable_pct: float
    max_adverse_pct: float
    first_hit: str
    due_at: datetime


async def claim_unpublished(session: AsyncSession, limit: int) -> list[Unpublished]:
    """Lock completed rows whose event is not yet acknowledged by Kafka (the outbox)."""
    o, s = SignalOutcome, OutcomeSignal
    stmt = (
        select(
            o.id,
            o.signal_id,
            s.event_id.label("signal_event_id"),
            o.symbol,
            o.horizon,
            o.direction,
            o.verdict,
            o.entry_price,
            o.exit_price,
            o.pnl_pct,
            o.result,
            o.max_favorable_pct,
            o.max_adverse_pct,
            o.first_hit,
            o.due_at,
        )
        .join(s, s.signal_id == o.signal_id)
        .where(o.status == "completed", o.published_at.is_(None))
        .order_by(o.evaluated_at)
        .limit(limit)
        .with_for_update(of=o, skip_locked=True)
    )
    return [Unpublished(**r._asdict()) for r in (await session.execute(stmt)).all()]


async def mark_published(session: AsyncSession, ids: Sequence[int], now: datetime) -> None:
    """Record that the outcome events of `ids` were acknowledged."""
    if ids:
        await session.execute(
            update(SignalOutcome).where(SignalOutcome.id.in_(list(ids))).values(published_at=now)
        )


async def prune_candles(session: AsyncSession, before: datetime) -> int:
    """Delete candles that opened before `before` and before every pending row's entry.

    A backlog (or a replay of old signals) keeps the candles its paths still need.
    """
    oldest_pending = await session.scalar(
        select(func.min(SignalOutcome.entry_at)).where(SignalOutcome.status == "pending")
    )
    if oldest_pending is not None:
        before = min(before, oldest_pending)
    result = await session.execute(delete(OutcomeCandle).where(OutcomeCandle.open_time < before))
    return int(getattr(result, "rowcount", 0) or 0)
