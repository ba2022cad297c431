"""outcomes: a deferred row's retry time on this machine's clock, apart from its due time

Revision ID: outcomes_0005
Revises: outcomes_0004
Create Date: 2027-02-10

A row whose prices are missing was deferred by moving `next_attempt_at` forward by
OUTCOMES_RETRY_S on the evaluator's clock. Under OUTCOMES_CLOCK=event that clock is market
time, which stops when the stream stops: a row deferred at the last candle (its symbol's
candles still on their way through another replica) was never retried. `next_attempt_at` now
only says when a row is due (on the evaluator's clock) and `retry_at` when a deferred row may
be tried again (always wall time); NULL: not deferred.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "outcomes_0005"
down_revision: str | None = "outcomes_0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "signal_outcomes", sa.Column("retry_at", sa.DateTime(timezone=True), nullable=True)
    )


def downgrade() -> None:
    # `retry_at` is dropped, not folded into `next_attempt_at`: that column is on the
    # evaluator's clock (market time under OUTCOMES_CLOCK=event, unknown to a migration) and
    # `retry_at` on wall time, so writing one into the other could push a replayed row years
    # past its market time, never due again. Without it a deferred row is simply due at its
    # unchanged due time: the older evaluator retries it at its next poll (one early retry,
    # which defers it again on that evaluator's own clock if its prices are still missing).
    op.drop_column("signal_outcomes", "retry_at")
