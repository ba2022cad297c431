"""outcomes: columns as wide as the values the contracts allow and the service writes

Revision ID: outcomes_0007
Revises: outcomes_0006
Create Date: 2027-02-20

The contracts allow a symbol of 64 characters and event ids and venue names of 256
(`events/values.py`), but `outcome_signals`, `signal_outcomes`, `outcome_candles` and
`outcome_funding` stored a symbol in 32, the ids in 64 and the venue in 32: a valid judged
signal, candle or settlement of a longer symbol or venue failed its INSERT (value too long),
was retried and dead-lettered, so that symbol or venue had no history and no outcomes at all.
`evaluated_by` holds the worker, `hostname:pid`: a Linux host name may have 64 characters,
and with 64 the completing UPDATE failed for the whole batch on every retry (the evaluator
stalled). Widening a varchar rewrites no table and no index.

The downgrade removes what the narrower columns cannot hold (signals with their outcomes,
candles and settlements of a longer symbol, venue or id; the worker name is cut to 64).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "outcomes_0007"
down_revision: str | None = "outcomes_0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SYMBOL = 64  # events/values.py MAX_SYMBOL_LENGTH
IDENT = 256  # events/values.py MAX_ID_LENGTH
WORKER = 128  # a Linux host name (64) + ':' + a pid

# (table, column, old width, new width)
_WIDENED = [
    ("outcome_signals", "signal_id", 64, IDENT),
    ("outcome_signals", "event_id", 64, IDENT),
    ("outcome_signals", "symbol", 32, SYMBOL),
    ("signal_outcomes", "signal_id", 64, IDENT),
    ("signal_outcomes", "symbol", 32, SYMBOL),
    ("signal_outcomes", "evaluated_by", 64, WORKER),
    ("outcome_mss", "event_id", 64, IDENT),
    ("outcome_candles", "symbol", 32, SYMBOL),
    ("outcome_funding", "symbol", 32, SYMBOL),
    ("outcome_signals", "venue", 32, IDENT),
    ("signal_outcomes", "venue", 32, IDENT),
    ("outcome_candles", "venue", 32, IDENT),
    ("outcome_funding", "venue", 32, IDENT),
]


def upgrade() -> None:
    for table, column, old, new in _WIDENED:
        op.alter_column(table, column, type_=sa.String(new), existing_type=sa.String(old))


def downgrade() -> None:
    op.execute(
        "DELETE FROM outcome_signals WHERE length(signal_id) > 64 OR length(event_id) > 64 "
        "OR length(symbol) > 32 OR length(venue) > 32"
    )  # their outcome rows go with them (ON DELETE CASCADE)
    op.execute("DELETE FROM outcome_mss WHERE length(event_id) > 64")
    op.execute("DELETE FROM outcome_candles WHERE length(symbol) > 32 OR length(venue) > 32")
    op.execute("DELETE FROM outcome_funding WHERE length(symbol) > 32 OR length(venue) > 32")
    op.execute("UPDATE signal_outcomes SET evaluated_by = left(evaluated_by, 64)")
    # a row of unknown venue priced on a longer venue's candles: unknown again
    op.execute("UPDATE signal_outcomes SET venue = NULL WHERE length(venue) > 32")
    for table, column, old, new in reversed(_WIDENED):
        op.alter_column(table, column, type_=sa.String(old), existing_type=sa.String(new))
