"""outcomes: net P&L beside the gross one (fees, slippage, funding)

Revision ID: outcomes_0003
Revises: outcomes_0002
Create Date: 2027-01-20

`pnl_pct` stays the gross move (what WIN/LOSS and the rollups are computed on). The evaluator
now also writes `cost_pct` (taker fees and slippage of both legs, in % of the entry notional),
`funding_pct` (funding paid over the window; 0 while the service has no funding series) and
`net_pnl_pct` = gross - cost - funding. Rows evaluated before this revision keep NULL: the
costs they would have carried were never recorded.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "outcomes_0003"
down_revision: str | None = "outcomes_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("cost_pct", "funding_pct", "net_pnl_pct")


def upgrade() -> None:
    for name in COLUMNS:
        op.add_column("signal_outcomes", sa.Column(name, sa.Float(), nullable=True))


def downgrade() -> None:
    for name in reversed(COLUMNS):
        op.drop_column("signal_outcomes", name)
