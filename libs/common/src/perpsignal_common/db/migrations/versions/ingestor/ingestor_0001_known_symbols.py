"""known_symbols: the new-listings monitor's persisted set

Revision ID: ingestor_0001
Revises:
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "ingestor_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = ("ingestor",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "known_symbols",
        sa.Column("venue", sa.String(32), nullable=False),
        sa.Column("symbol", sa.String(64), nullable=False),
        sa.Column("base_asset", sa.String(32), nullable=False),
        sa.Column("quote_asset", sa.String(16), nullable=False),
        sa.Column("onboard_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("announce", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("announced_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("venue", "symbol", name="pk_known_symbols"),
    )


def downgrade() -> None:
    op.drop_table("known_symbols")
