"""notifier: chats, subscriptions, sent-message ledger, symbol state

Revision ID: notifier_0001
Revises:
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "notifier_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = ("notifier",)
depends_on: str | Sequence[str] | None = None


def _created_at() -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(
        "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
    )


def upgrade() -> None:
    op.create_table(
        "notifier_chats",
        sa.Column("chat_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("title", sa.String(256), nullable=True),
        sa.Column("muted", sa.Boolean(), nullable=False),
        sa.Column("blocked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("blocked_reason", sa.Text(), nullable=True),
        _created_at(),
        sa.PrimaryKeyConstraint("chat_id", name="pk_notifier_chats"),
    )
    op.create_table(
        "notifier_subscriptions",
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("asset", sa.String(32), nullable=False),
        sa.Column("min_score", sa.Float(), nullable=True),
        _created_at(),
        sa.ForeignKeyConstraint(
            ["chat_id"],
            ["notifier_chats.chat_id"],
            name="fk_notifier_subscriptions_chat_id_notifier_chats",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("chat_id", "asset", name="pk_notifier_subscriptions"),
    )
    op.create_table(
        "notifier_deliveries",
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("chat_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("symbol", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.BigInteger(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        _created_at(),
        sa.PrimaryKeyConstraint("event_id", "chat_id", name="pk_notifier_deliveries"),
    )
    op.create_table(
        "notifier_symbol_state",
        sa.Column("symbol", sa.String(64), nullable=False),
        sa.Column("asset", sa.String(32), nullable=False),
        sa.Column("latest_event_id", sa.String(64), nullable=True),
        sa.Column("latest_observed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("latest_signal", postgresql.JSONB(), nullable=True),
        sa.Column("last_alert_event_id", sa.String(64), nullable=True),
        sa.Column("last_alert_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("symbol", name="pk_notifier_symbol_state"),
    )
    op.create_index(
        "ix_notifier_symbol_state_asset", "notifier_symbol_state", ["asset"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_notifier_symbol_state_asset", table_name="notifier_symbol_state")
    op.drop_table("notifier_symbol_state")
    op.drop_table("notifier_deliveries")
    op.drop_table("notifier_subscriptions")
    op.drop_table("notifier_chats")
