"""notifier: event id columns as wide as the contract allows (256)

Revision ID: notifier_0004
Revises: notifier_0003
Create Date: 2026-12-08

An event id may have 256 characters (`events/values.py` MAX_ID_LENGTH), but the delivery
ledger and the symbol state stored it in 64: a valid judged signal, MSS result or listing
with a longer id failed its INSERT (value too long), was retried and dead-lettered, so no
chat got its alert and /signal never showed it. Widening a varchar rewrites no table and no
index.

The downgrade removes what the narrower columns cannot hold: ledger rows of a longer id, and
the longer ids of the symbol state (its latest signal stays; the cooldown forgets that alert).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "notifier_0004"
down_revision: str | None = "notifier_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

IDENT = 256  # events/values.py MAX_ID_LENGTH
OLD = 64

_WIDENED = [
    ("notifier_deliveries", "event_id"),
    ("notifier_symbol_state", "latest_event_id"),
    ("notifier_symbol_state", "last_alert_event_id"),
]


def upgrade() -> None:
    for table, column in _WIDENED:
        op.alter_column(table, column, type_=sa.String(IDENT), existing_type=sa.String(OLD))


def downgrade() -> None:
    op.execute(f"DELETE FROM notifier_deliveries WHERE length(event_id) > {OLD}")
    op.execute(
        f"UPDATE notifier_symbol_state SET latest_event_id = NULL "
        f"WHERE length(latest_event_id) > {OLD}"
    )
    op.execute(
        "UPDATE notifier_symbol_state SET last_alert_event_id = NULL, last_alert_at = NULL, "
        f"last_alert_call = NULL WHERE length(last_alert_event_id) > {OLD}"
    )
    for table, column in reversed(_WIDENED):
        op.alter_column(table, column, type_=sa.String(OLD), existing_type=sa.String(IDENT))
