"""outcomes: settled funding rates, and funding that is unknown stays NULL (not 0)

Revision ID: outcomes_0004
Revises: outcomes_0003
Create Date: 2027-02-01

* `outcome_funding`: the settled funding rates the ingestor publishes on the market topic
  (`market.funding` with `settled`), per venue, symbol and settlement time. The evaluator
  charges a position the rates settled while it was open, as the backtest does.
* `signal_outcomes.funding_settlements`: how many settlements the window held (NULL: unknown).
* `funding_pct` and `net_pnl_pct` are NULL when the stored settlements cannot prove the window
  complete; the evaluator fills them in later when the missing settlements arrive (within
  OUTCOMES_FUNDING_WAIT_S), served by the partial index below. Rows evaluated before this
  revision carried an invented funding of 0: they become unknown.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "outcomes_0004"
down_revision: str | None = "outcomes_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "outcome_funding",
        sa.Column("venue", sa.String(32), primary_key=True),
        sa.Column("symbol", sa.String(32), primary_key=True),
        sa.Column("funding_time", sa.DateTime(timezone=True), primary_key=True),
        sa.Column("rate", sa.Float(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
    )
    op.add_column("signal_outcomes", sa.Column("funding_settlements", sa.Integer(), nullable=True))
    op.execute(
        "UPDATE signal_outcomes SET funding_pct = NULL, net_pnl_pct = NULL "
        "WHERE status = 'completed' AND cost_pct IS NOT NULL"
    )
    op.create_index(
        "ix_signal_outcomes_funding_unknown",
        "signal_outcomes",
        ["due_at"],
        postgresql_where=sa.text(
            "status = 'completed' AND cost_pct IS NOT NULL AND funding_pct IS NULL"
        ),
    )


def downgrade() -> None:
    op.drop_index("ix_signal_outcomes_funding_unknown", table_name="signal_outcomes")
    op.execute(
        "UPDATE signal_outcomes SET funding_pct = 0, net_pnl_pct = pnl_pct - cost_pct "
        "WHERE status = 'completed' AND cost_pct IS NOT NULL AND funding_pct IS NULL"
    )
    op.drop_column("signal_outcomes", "funding_settlements")
    op.drop_table("outcome_funding")
