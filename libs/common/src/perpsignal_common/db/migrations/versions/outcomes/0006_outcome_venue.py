"""outcomes: a candle's venue, and the venue a signal was priced on; a path is one venue's

Revision ID: outcomes_0006
Revises: outcomes_0005
Create Date: 2027-02-12

`outcome_candles` was keyed by (symbol, timeframe, open time) whatever the venue: with two
venues sending one symbol (the ingestor's OKX source sends BTCUSDT and ETHUSDT beside
Binance's by default) whichever candle came first was kept, and a path mixed both venues'
prices against an entry price from one of them. A candle now belongs to its venue (part of
the key; '' for a candle stored before this revision, venue unknown) and each outcome row
carries its signal's `venue` (the scorer's price venue; NULL: unknown), so a path is read
from that venue's candles only. The downgrade keeps one candle per old key.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "outcomes_0006"
down_revision: str | None = "outcomes_0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "outcome_candles",
        sa.Column("venue", sa.String(32), nullable=False, server_default=""),
    )
    op.drop_constraint("pk_outcome_candles", "outcome_candles", type_="primary")
    op.create_primary_key(
        "pk_outcome_candles", "outcome_candles", ["symbol", "timeframe", "venue", "open_time"]
    )
    op.add_column("outcome_signals", sa.Column("venue", sa.String(32), nullable=True))
    op.add_column("signal_outcomes", sa.Column("venue", sa.String(32), nullable=True))


def downgrade() -> None:
    op.drop_column("signal_outcomes", "venue")
    op.drop_column("outcome_signals", "venue")
    # one candle per (symbol, timeframe, open time) again: the unknown venue's, else the first
    op.execute(
        "DELETE FROM outcome_candles AS a USING outcome_candles AS b "
        "WHERE a.symbol = b.symbol AND a.timeframe = b.timeframe "
        "AND a.open_time = b.open_time AND a.venue > b.venue"
    )
    op.drop_constraint("pk_outcome_candles", "outcome_candles", type_="primary")
    op.create_primary_key(
        "pk_outcome_candles", "outcome_candles", ["symbol", "timeframe", "open_time"]
    )
    op.drop_column("outcome_candles", "venue")
