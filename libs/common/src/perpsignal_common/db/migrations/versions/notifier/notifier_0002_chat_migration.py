"""notifier: remember which supergroup a migrated group became

Revision ID: notifier_0002
Revises: notifier_0001
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "notifier_0002"
down_revision: str | None = "notifier_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "notifier_chats", sa.Column("migrated_to_chat_id", sa.BigInteger(), nullable=True)
    )


def downgrade() -> None:
    op.drop_column("notifier_chats", "migrated_to_chat_id")
