"""Database access of the outcomes service: idempotent inserts, claims, updates, outbox."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from perpsignal_common.db.models.outcomes import (
    OutcomeCandle,
    OutcomeMss,
    OutcomeSignal,
    SignalOutcome,
)
from perpsignal_common.events.market import CandleClosedV1
from perpsignal_common.events.signals import MssScoredV1, SignalJudgedV1
from perpsignal_outcomes.evaluate import Candle, Evaluation

_OUTCOMES = cast(Table, SignalOutcome.__table__)


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
    signals = [signal_row(e) for e in events]
    inserted = await session.execute(
        insert(OutcomeSignal).on_conflict_do_nothing().returning(OutcomeSignal.signal_id),
        signals,
    )
    new = len(inserted.all())
    outcomes = [row for s in signals for row in outcome_rows(s, horizons, settle)]
    await session.execute(insert(SignalOutcome).on_conflict_do_nothing(), outcomes)
    return new


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


async def complete(
    session: AsyncSession,
    results: Sequence[tuple[int, Evaluation, str]],
    now: datetime,
    worker: str,
) -> None:
    """Write finished evaluations (id, evaluation, price source) of claimed rows."""
    if not results:
        return
    t = _OUTCOMES
    stmt = (
        update(t)
        .where(t.c.id == bindparam("b_id"), t.c.status == "pending")
        .values(
            status="completed",
            exit_price=bindparam("b_exit"),
            pnl_pct=bindparam("b_pnl"),
            result=bindparam("b_result"),
            max_favorable_pct=bindparam("b_mfe"),
            max_adverse_pct=bindparam("b_mae"),
            first_hit=bindparam("b_hit"),
            candles_used=bindparam("b_n"),
            price_source=bindparam("b_source"),
            reason=None,
            evaluated_at=now,
            evaluated_by=worker,
            attempts=t.c.attempts + 1,
            evaluation_count=t.c.evaluation_count + 1,
        )
    )
    params = [
        {
            "b_id": row_id,
            "b_exit": ev.exit_price,
            "b_pnl": ev.pnl_pct,
            "b_result": ev.result,
            "b_mfe": ev.max_favorable_pct,
            "b_mae": ev.max_adverse_pct,
            "b_hit": ev.first_hit,
            "b_n": ev.candles_used,
            "b_source": source,
        }
        for row_id, ev, source in results
    ]
    await session.execute(stmt, params)


async def defer(
    session: AsyncSession,
    deferred: Sequence[tuple[int, str, datetime]],
    *,
    status: str = "pending",
) -> None:
    """Leave claimed rows pending with a reason until `next_attempt_at` (or mark them failed)."""
    if not deferred:
        return
    t = _OUTCOMES
    stmt = (
        update(t)
        .where(t.c.id == bindparam("b_id"), t.c.status == "pending")
        .values(
            status=status,
            reason=bindparam("b_reason"),
            next_attempt_at=bindparam("b_next"),
            attempts=t.c.attempts + 1,
        )
    )
    await session.execute(stmt, [{"b_id": i, "b_reason": r, "b_next": n} for i, r, n in deferred])


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
