"""Signal history and outcome tracking tables.

Owner: the outcomes service (the only writer). The gateway reads them through
`perpsignal_common.db.analytics`.

* `outcome_signals`: every judged LONG/SHORT signal (all verdicts), idempotent on `event_id`.
* `outcome_mss`: MSS results at or above the configured threshold, idempotent on `event_id`.
* `signal_outcomes`: one durable row per (signal, horizon): the due evaluation, then its result.
  Verdict, judge, risk mode, score and symbol are copied from the signal so the analytics
  queries over a million rows never need a join.
* `outcome_funding`: settled funding rates, charged to the positions open at each settlement.
* `outcome_candles`: closed candles (all symbols and venues, configured timeframes) so an
  evaluation reads the candle path between entry and horizon, of the signal's venue, from the
  database.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Identity,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from perpsignal_common.db.base import Base, TimestampMixin

OUTCOME_STATUSES = ("pending", "completed", "failed")


class OutcomeSignal(TimestampMixin, Base):
    """One judged LONG/SHORT signal with its verdict layer and trade plan."""

    __tablename__ = "outcome_signals"

    # as wide as the contracts allow (events/values.py; outcomes_0007)
    signal_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(256), nullable=False, unique=True)
    symbol: Mapped[str] = mapped_column(String(64), nullable=False)
    timeframe: Mapped[str] = mapped_column(String(8), nullable=False)
    direction: Mapped[str] = mapped_column(String(8), nullable=False)
    score: Mapped[float] = mapped_column(Float, nullable=False)
    confidence: Mapped[float] = mapped_column(Float, nullable=False)
    price: Mapped[float] = mapped_column(Float, nullable=False)
    observed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    verdict: Mapped[str] = mapped_column(String(16), nullable=False)
    risk_mode: Mapped[str] = mapped_column(String(16), nullable=False)
    judge: Mapped[str] = mapped_column(String(8), nullable=False)
    position_multiplier: Mapped[float] = mapped_column(Float, nullable=False)
    stop_loss_price: Mapped[float | None] = mapped_column(Float)
    take_profit_price: Mapped[float | None] = mapped_column(Float)
    factors: Mapped[Any] = mapped_column(JSONB, nullable=False)
    verdict_layer: Mapped[Any] = mapped_column(JSONB, nullable=False)
    venue: Mapped[str | None] = mapped_column(String(256))  # its price venue (outcomes_0006)

    __table_args__ = (Index("ix_outcome_signals_symbol_observed", "symbol", "observed_at"),)


class OutcomeMss(TimestampMixin, Base):
    """One MSS result at or above the stored threshold."""

    __tablename__ = "outcome_mss"

    event_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    coin: Mapped[str] = mapped_column(String(64), nullable=False)
    mss: Mapped[float] = mapped_column(Float, nullable=False)
    tier: Mapped[str] = mapped_column(String(32), nullable=False)
    observed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    payload: Mapped[Any] = mapped_column(JSONB, nullable=False)


class SignalOutcome(Base):
    """The evaluation of one signal at one horizon: durable due row, then result."""

    __tablename__ = "signal_outcomes"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    signal_id: Mapped[str] = mapped_column(
        String(256), ForeignKey("outcome_signals.signal_id", ondelete="CASCADE"), nullable=False
    )
    horizon: Mapped[str] = mapped_column(String(8), nullable=False)
    horizon_s: Mapped[int] = mapped_column(Integer, nullable=False)
    symbol: Mapped[str] = mapped_column(String(64), nullable=False)
    direction: Mapped[str] = mapped_column(String(8), nullable=False)
    verdict: Mapped[str] = mapped_column(String(16), nullable=False)
    risk_mode: Mapped[str] = mapped_column(String(16), nullable=False)
    judge: Mapped[str] = mapped_column(String(8), nullable=False)
    score: Mapped[float] = mapped_column(Float, nullable=False)
    entry_price: Mapped[float] = mapped_column(Float, nullable=False)
    stop_loss_price: Mapped[float | None] = mapped_column(Float)
    take_profit_price: Mapped[float | None] = mapped_column(Float)
    entry_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    # the signal's price venue: its path is read from this venue's candles (NULL: unknown)
    venue: Mapped[str | None] = mapped_column(String(256))
    status: Mapped[str] = mapped_column(String(16), nullable=False, server_default="pending")
    # due on the evaluator's clock (market time under OUTCOMES_CLOCK=event); a deferred row
    # waits for `retry_at` too, always wall time (outcomes_0005)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    retry_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    reason: Mapped[str | None] = mapped_column(Text)
    exit_price: Mapped[float | None] = mapped_column(Float)
    pnl_pct: Mapped[float | None] = mapped_column(Float)
    # after fees, slippage and funding (outcomes_0003; NULL on rows evaluated before it).
    # funding_pct / net_pnl_pct NULL on a completed row: the funding paid is unknown (a
    # settlement may be missing, outcomes_0004); funding_settlements counts those charged
    cost_pct: Mapped[float | None] = mapped_column(Float)
    funding_pct: Mapped[float | None] = mapped_column(Float)
    net_pnl_pct: Mapped[float | None] = mapped_column(Float)
    funding_settlements: Mapped[int | None] = mapped_column(Integer)
    result: Mapped[str | None] = mapped_column(String(8))
    max_favorable_pct: Mapped[float | None] = mapped_column(Float)
    max_adverse_pct: Mapped[float | None] = mapped_column(Float)
    first_hit: Mapped[str | None] = mapped_column(String(8))
    price_source: Mapped[str | None] = mapped_column(String(16))
    candles_used: Mapped[int | None] = mapped_column(Integer)
    evaluated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    evaluated_by: Mapped[str | None] = mapped_column(String(128))  # hostname:pid
    # Incremented by every completing UPDATE: 1 proves a row was evaluated exactly once
    evaluation_count: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=text("now()"), nullable=False
    )

    __table_args__ = (
        UniqueConstraint("signal_id", "horizon", name="uq_signal_outcomes_signal_horizon"),
        CheckConstraint("status IN ('pending', 'completed', 'failed')", name="status"),
        # the evaluator's claim query: pending rows by due time
        Index(
            "ix_signal_outcomes_due",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
        ),
        # the outbox: completed rows not yet published
        Index(
            "ix_signal_outcomes_unpublished",
            "evaluated_at",
            postgresql_where=text("status = 'completed' AND published_at IS NULL"),
        ),
        # analytics: covering indexes so aggregates are index-only scans
        Index(
            "ix_signal_outcomes_perf",
            "horizon",
            "verdict",
            "pnl_pct",  # in the key: medians are read by offset in index order
            postgresql_include=["result", "entry_at"],
            postgresql_where=text("status = 'completed'"),
        ),
        Index(
            "ix_signal_outcomes_calibration",
            "horizon",
            "score",
            postgresql_include=["result", "pnl_pct"],
            postgresql_where=text("status = 'completed'"),
        ),
        # tracking_stats: oldest pending due time, failed count
        Index(
            "ix_signal_outcomes_pending_due",
            "due_at",
            postgresql_where=text("status = 'pending'"),
        ),
        Index("ix_signal_outcomes_failed", "id", postgresql_where=text("status = 'failed'")),
        # rows whose funding is still unknown, re-checked as settlements arrive (outcomes_0004)
        Index(
            "ix_signal_outcomes_funding_unknown",
            "due_at",
            postgresql_where=text(
                "status = 'completed' AND cost_pct IS NOT NULL AND funding_pct IS NULL"
            ),
        ),
        Index("ix_signal_outcomes_entry", "entry_at"),
        Index("ix_signal_outcomes_evaluated", "evaluated_at"),
        Index("ix_signal_outcomes_symbol_entry", "symbol", "entry_at"),
    )


class _RollupCounts:
    """Counts and P&L sum of completed outcomes (kept by triggers on `signal_outcomes`)."""

    n: Mapped[int] = mapped_column(BigInteger, nullable=False)
    wins: Mapped[int] = mapped_column(BigInteger, nullable=False)
    losses: Mapped[int] = mapped_column(BigInteger, nullable=False)
    pnl_n: Mapped[int] = mapped_column(BigInteger, nullable=False)  # rows with a P&L
    pnl_sum: Mapped[float] = mapped_column(Float, nullable=False)


class OutcomeRollup(_RollupCounts, Base):
    """Completed outcomes per entry day (UTC) x horizon x verdict x risk mode x judge.

    Maintained by statement-level triggers on `signal_outcomes` (migration outcomes_0002), so
    the analytics aggregate thousands of rollup rows instead of a million outcomes.
    """

    __tablename__ = "outcome_rollups"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    horizon: Mapped[str] = mapped_column(String(8), primary_key=True)
    verdict: Mapped[str] = mapped_column(String(16), primary_key=True)
    risk_mode: Mapped[str] = mapped_column(String(16), primary_key=True)
    judge: Mapped[str] = mapped_column(String(8), primary_key=True)


class OutcomeScoreRollup(_RollupCounts, Base):
    """Completed outcomes per horizon x whole score point (`floor(score)`), for calibration."""

    __tablename__ = "outcome_score_rollups"

    horizon: Mapped[str] = mapped_column(String(8), primary_key=True)
    score_floor: Mapped[int] = mapped_column(Integer, primary_key=True)


class OutcomePnlHistogram(Base):
    """Completed outcomes per horizon x verdict x P&L bucket `floor(pnl_pct * 16)`.

    Locates the bucket holding a group's median, so the exact median is read a few index rows
    into that bucket. Multiplying by 16 is exact in binary floating point, hence bucket b holds
    exactly the rows with b / 16 <= pnl_pct < (b + 1) / 16.
    """

    __tablename__ = "outcome_pnl_histogram"

    horizon: Mapped[str] = mapped_column(String(8), primary_key=True)
    verdict: Mapped[str] = mapped_column(String(16), primary_key=True)
    pnl_bucket: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger, nullable=False)


class OutcomeFunding(Base):
    """A settled funding rate of one venue's perpetual (from `market.funding`, settled)."""

    __tablename__ = "outcome_funding"

    venue: Mapped[str] = mapped_column(String(256), primary_key=True)
    symbol: Mapped[str] = mapped_column(String(64), primary_key=True)
    funding_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    rate: Mapped[float] = mapped_column(Float, nullable=False)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=text("now()"), nullable=False
    )


class OutcomeCandle(Base):
    """A closed candle kept for outcome evaluation (pruned after the longest horizon)."""

    __tablename__ = "outcome_candles"

    symbol: Mapped[str] = mapped_column(String(64), primary_key=True)
    timeframe: Mapped[str] = mapped_column(String(8), primary_key=True)
    # a path is one venue's candles ('' : stored before outcomes_0006, venue unknown)
    venue: Mapped[str] = mapped_column(String(256), primary_key=True, server_default="")
    open_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    open: Mapped[float] = mapped_column(Float, nullable=False)
    high: Mapped[float] = mapped_column(Float, nullable=False)
    low: Mapped[float] = mapped_column(Float, nullable=False)
    close: Mapped[float] = mapped_column(Float, nullable=False)
    source: Mapped[str] = mapped_column(String(16), nullable=False, server_default="stream")
