"""outcomes: signal history, MSS results, due outcome rows, candle path

Revision ID: outcomes_0001
Revises:
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "outcomes_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = ("outcomes",)
depends_on: str | Sequence[str] | None = None


def _ts(name: str, *, nullable: bool = True, now: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(
        name,
        sa.DateTime(timezone=True),
        nullable=nullable,
        server_default=sa.text("now()") if now else None,
    )


def upgrade() -> None:
    op.create_table(
        "outcome_signals",
        sa.Column("signal_id", sa.String(64), nullable=False),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("symbol", sa.String(32), nullable=False),
        sa.Column("timeframe", sa.String(8), nullable=False),
        sa.Column("direction", sa.String(8), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("price", sa.Float(), nullable=False),
        _ts("observed_at", nullable=False),
        sa.Column("verdict", sa.String(16), nullable=False),
        sa.Column("risk_mode", sa.String(16), nullable=False),
        sa.Column("judge", sa.String(8), nullable=False),
        sa.Column("position_multiplier", sa.Float(), nullable=False),
        sa.Column("stop_loss_price", sa.Float(), nullable=True),
        sa.Column("take_profit_price", sa.Float(), nullable=True),
        sa.Column("factors", postgresql.JSONB(), nullable=False),
        sa.Column("verdict_layer", postgresql.JSONB(), nullable=False),
        _ts("created_at", nullable=False, now=True),
        sa.PrimaryKeyConstraint("signal_id", name="pk_outcome_signals"),
        sa.UniqueConstraint("event_id", name="uq_outcome_signals_event_id"),
    )
    op.create_index(
        "ix_outcome_signals_symbol_observed", "outcome_signals", ["symbol", "observed_at"]
    )

    op.create_table(
        "outcome_mss",
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("coin", sa.String(64), nullable=False),
        sa.Column("mss", sa.Float(), nullable=False),
        sa.Column("tier", sa.String(32), nullable=False),
        _ts("observed_at", nullable=False),
        sa.Column("payload", postgresql.JSONB(), nullable=False),
        _ts("created_at", nullable=False, now=True),
        sa.PrimaryKeyConstraint("event_id", name="pk_outcome_mss"),
    )

    op.create_table(
        "signal_outcomes",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("signal_id", sa.String(64), nullable=False),
        sa.Column("horizon", sa.String(8), nullable=False),
        sa.Column("horizon_s", sa.Integer(), nullable=False),
        sa.Column("symbol", sa.String(32), nullable=False),
        sa.Column("direction", sa.String(8), nullable=False),
        sa.Column("verdict", sa.String(16), nullable=False),
        sa.Column("risk_mode", sa.String(16), nullable=False),
        sa.Column("judge", sa.String(8), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("entry_price", sa.Float(), nullable=False),
        sa.Column("stop_loss_price", sa.Float(), nullable=True),
        sa.Column("take_profit_price", sa.Float(), nullable=True),
        _ts("entry_at", nullable=False),
        _ts("due_at", nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default="pending"),
        _ts("next_attempt_at", nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("exit_price", sa.Float(), nullable=True),
        sa.Column("pnl_pct", sa.Float(), nullable=True),
        sa.Column("result", sa.String(8), nullable=True),
        sa.Column("max_favorable_pct", sa.Float(), nullable=True),
        sa.Column("max_adverse_pct", sa.Float(), nullable=True),
        sa.Column("first_hit", sa.String(8), nullable=True),
        sa.Column("price_source", sa.String(16), nullable=True),
        sa.Column("candles_used", sa.Integer(), nullable=True),
        _ts("evaluated_at"),
        sa.Column("evaluated_by", sa.String(64), nullable=True),
        sa.Column("evaluation_count", sa.Integer(), nullable=False, server_default="0"),
        _ts("published_at"),
        _ts("created_at", nullable=False, now=True),
        sa.PrimaryKeyConstraint("id", name="pk_signal_outcomes"),
        sa.ForeignKeyConstraint(
            ["signal_id"],
            ["outcome_signals.signal_id"],
            name="fk_signal_outcomes_signal_id_outcome_signals",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("signal_id", "horizon", name="uq_signal_outcomes_signal_horizon"),
        sa.CheckConstraint(
            "status IN ('pending', 'completed', 'failed')", name="ck_signal_outcomes_status"
        ),
    )
    op.create_index(
        "ix_signal_outcomes_due",
        "signal_outcomes",
        ["next_attempt_at"],
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index(
        "ix_signal_outcomes_unpublished",
        "signal_outcomes",
        ["evaluated_at"],
        postgresql_where=sa.text("status = 'completed' AND published_at IS NULL"),
    )
    op.create_index(
        "ix_signal_outcomes_perf",
        "signal_outcomes",
        ["horizon", "verdict", "pnl_pct"],
        postgresql_include=["result", "entry_at"],
        postgresql_where=sa.text("status = 'completed'"),
    )
    op.create_index(
        "ix_signal_outcomes_calibration",
        "signal_outcomes",
        ["horizon", "score"],
        postgresql_include=["result", "pnl_pct"],
        postgresql_where=sa.text("status = 'completed'"),
    )
    op.create_index("ix_signal_outcomes_entry", "signal_outcomes", ["entry_at"])
    op.create_index("ix_signal_outcomes_evaluated", "signal_outcomes", ["evaluated_at"])
    op.create_index("ix_signal_outcomes_symbol_entry", "signal_outcomes", ["symbol", "entry_at"])

    op.create_table(
        "outcome_candles",
        sa.Column("symbol", sa.String(32), nullable=False),
        sa.Column("timeframe", sa.String(8), nullable=False),
        _ts("open_time", nullable=False),
        sa.Column("open", sa.Float(), nullable=False),
        sa.Column("high", sa.Float(), nullable=False),
        sa.Column("low", sa.Float(), nullable=False),
        sa.Column("close", sa.Float(), nullable=False),
        sa.Column("source", sa.String(16), nullable=False, server_default="stream"),
        sa.PrimaryKeyConstraint("symbol", "timeframe", "open_time", name="pk_outcome_candles"),
    )


def downgrade() -> None:
    op.drop_table("outcome_candles")
    op.drop_table("signal_outcomes")
    op.drop_table("outcome_mss")
    op.drop_table("outcome_signals")
