"""notifier: remember the call (direction and verdict) of a symbol's last alert

Revision ID: notifier_0003
Revises: notifier_0002
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "notifier_0003"
down_revision: str | None = "notifier_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "notifier_symbol_state", sa.Column("last_alert_call", sa.String(length=24), nullable=True)
    )


def downgrade() -> None:
    op.drop_column("notifier_symbol_state", "last_alert_call")
