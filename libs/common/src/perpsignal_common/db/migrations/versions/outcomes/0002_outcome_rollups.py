"""outcomes: rollups of completed outcomes kept by a trigger; indexes of tracking_stats

Revision ID: outcomes_0002
Revises: outcomes_0001
Create Date: 2027-01-10

The analytics (`perpsignal_common.db.analytics`) read these instead of aggregating a million
rows per request:

* `outcome_rollups`: counts and P&L sums of completed outcomes per entry day (UTC) x horizon x
  verdict x risk mode x judge (verdict_performance, verdict_compare, tracking_stats).
* `outcome_score_rollups`: the same per horizon x whole score point (calibration).
* `outcome_pnl_histogram`: completed outcomes per horizon x verdict x P&L bucket of 1/16 %
  (`floor(pnl_pct * 16)`: exact in binary floating point), so an exact median is read from the
  (horizon, verdict, pnl_pct) index a few rows into the right bucket instead of at offset n/2.

Statement-level triggers with transition tables keep them equal to `signal_outcomes` whatever
writes it (the evaluator, a backfill, a DELETE cascading from `outcome_signals`); an UPDATE that
changes none of the aggregated columns (the outbox's `published_at`) touches no rollup row.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "outcomes_0002"
down_revision: str | None = "outcomes_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# the rows a statement added (+1) or removed (-1) from the completed set; `src` is the rows'
# relation, `sign` +1 or -1. An UPDATE pair whose aggregated columns did not change cancels out
# and is dropped before the sums (no float round-off, no lock on a rollup row).
_DELTA = """
    SELECT {sign} AS sign, (r.entry_at AT TIME ZONE 'UTC')::date AS day, r.horizon, r.verdict,
           r.risk_mode, r.judge, floor(r.score)::int AS score_floor,
           CASE WHEN r.pnl_pct * 16 BETWEEN -1e15 AND 1e15
                THEN floor(r.pnl_pct * 16)::bigint END AS pnl_bucket, r.result, r.pnl_pct
    FROM {src} AS r
    WHERE r.status = 'completed' {unchanged}
"""
_UNCHANGED = """
      AND NOT EXISTS (
        SELECT 1 FROM {other} AS o
        WHERE o.id = r.id AND o.status = 'completed'
          AND (o.entry_at, o.horizon, o.verdict, o.risk_mode, o.judge, o.score, o.pnl_pct,
               o.result)
              IS NOT DISTINCT FROM
              (r.entry_at, r.horizon, r.verdict, r.risk_mode, r.judge, r.score, r.pnl_pct,
               r.result))
"""


def _delta(src: str, sign: int, other: str | None) -> str:
    unchanged = _UNCHANGED.format(other=other) if other else ""
    return _DELTA.format(src=src, sign=sign, unchanged=unchanged)


# one statement: data-modifying CTEs always run to completion. Rows are upserted in key order
# so concurrent evaluators wait for each other and never deadlock.
_APPLY = """
WITH delta AS ({delta}),
r AS (
    INSERT INTO outcome_rollups AS t (day, horizon, verdict, risk_mode, judge, n, wins, losses,
                                      pnl_n, pnl_sum)
    SELECT day, horizon, verdict, risk_mode, judge, sum(sign),
           coalesce(sum(sign) FILTER (WHERE result = 'WIN'), 0),
           coalesce(sum(sign) FILTER (WHERE result = 'LOSS'), 0),
           coalesce(sum(sign) FILTER (WHERE pnl_pct IS NOT NULL), 0),
           coalesce(sum(sign * pnl_pct), 0)
    FROM delta GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5
    ON CONFLICT (day, horizon, verdict, risk_mode, judge) DO UPDATE SET
      n = t.n + excluded.n, wins = t.wins + excluded.wins, losses = t.losses + excluded.losses,
      pnl_n = t.pnl_n + excluded.pnl_n, pnl_sum = t.pnl_sum + excluded.pnl_sum
    RETURNING 1
),
s AS (
    INSERT INTO outcome_score_rollups AS t (horizon, score_floor, n, wins, losses, pnl_n,
                                            pnl_sum)
    SELECT horizon, score_floor, sum(sign),
           coalesce(sum(sign) FILTER (WHERE result = 'WIN'), 0),
           coalesce(sum(sign) FILTER (WHERE result = 'LOSS'), 0),
           coalesce(sum(sign) FILTER (WHERE pnl_pct IS NOT NULL), 0),
           coalesce(sum(sign * pnl_pct), 0)
    FROM delta GROUP BY 1, 2 ORDER BY 1, 2
    ON CONFLICT (horizon, score_floor) DO UPDATE SET
      n = t.n + excluded.n, wins = t.wins + excluded.wins, losses = t.losses + excluded.losses,
      pnl_n = t.pnl_n + excluded.pnl_n, pnl_sum = t.pnl_sum + excluded.pnl_sum
    RETURNING 1
)
INSERT INTO outcome_pnl_histogram AS t (horizon, verdict, pnl_bucket, n)
SELECT horizon, verdict, pnl_bucket, sum(sign)
FROM delta WHERE pnl_bucket IS NOT NULL GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
ON CONFLICT (horizon, verdict, pnl_bucket) DO UPDATE SET n = t.n + excluded.n
"""

_FUNCTION = """
CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  IF EXISTS (SELECT 1 FROM {rows} WHERE status = 'completed') THEN
    {apply};
  END IF;
  RETURN NULL;
END
$fn$
"""

_TRIGGERS = {
    # trigger/function name: (event, transition tables, rows tested, delta)
    "signal_outcomes_rollup_ins": (
        "INSERT",
        "NEW TABLE AS new_rows",
        "new_rows",
        _delta("new_rows", 1, None),
    ),
    "signal_outcomes_rollup_upd": (
        "UPDATE",
        "OLD TABLE AS old_rows NEW TABLE AS new_rows",
        "(SELECT status FROM new_rows UNION ALL SELECT status FROM old_rows) AS x",
        _delta("new_rows", 1, "old_rows") + " UNION ALL " + _delta("old_rows", -1, "new_rows"),
    ),
    "signal_outcomes_rollup_del": (
        "DELETE",
        "OLD TABLE AS old_rows",
        "old_rows",
        _delta("old_rows", -1, None),
    ),
}


def _create_triggers() -> None:
    for name, (event, tables, rows, delta) in _TRIGGERS.items():
        op.execute(_FUNCTION.format(name=name, rows=rows, apply=_APPLY.format(delta=delta)))
        op.execute(
            f"CREATE TRIGGER {name} AFTER {event} ON signal_outcomes REFERENCING {tables} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {name}()"
        )


def _counts() -> list[sa.Column]:  # type: ignore[type-arg]
    return [
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.Column("wins", sa.BigInteger(), nullable=False),
        sa.Column("losses", sa.BigInteger(), nullable=False),
        sa.Column("pnl_n", sa.BigInteger(), nullable=False),
        sa.Column("pnl_sum", sa.Float(), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "outcome_rollups",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("horizon", sa.String(8), nullable=False),
        sa.Column("verdict", sa.String(16), nullable=False),
        sa.Column("risk_mode", sa.String(16), nullable=False),
        sa.Column("judge", sa.String(8), nullable=False),
        *_counts(),
        sa.PrimaryKeyConstraint(
            "day", "horizon", "verdict", "risk_mode", "judge", name="pk_outcome_rollups"
        ),
    )
    op.create_table(
        "outcome_score_rollups",
        sa.Column("horizon", sa.String(8), nullable=False),
        sa.Column("score_floor", sa.Integer(), nullable=False),
        *_counts(),
        sa.PrimaryKeyConstraint("horizon", "score_floor", name="pk_outcome_score_rollups"),
    )
    op.create_table(
        "outcome_pnl_histogram",
        sa.Column("horizon", sa.String(8), nullable=False),
        sa.Column("verdict", sa.String(16), nullable=False),
        sa.Column("pnl_bucket", sa.BigInteger(), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "horizon", "verdict", "pnl_bucket", name="pk_outcome_pnl_histogram"
        ),
    )
    # tracking_stats: the oldest pending due time and the failed count without a table scan
    op.create_index(
        "ix_signal_outcomes_pending_due",
        "signal_outcomes",
        ["due_at"],
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index(
        "ix_signal_outcomes_failed",
        "signal_outcomes",
        ["id"],
        postgresql_where=sa.text("status = 'failed'"),
    )
    # backfill from the history already stored, then keep up with every later write
    op.execute(_APPLY.format(delta=_delta("signal_outcomes", 1, None)))
    _create_triggers()


def downgrade() -> None:
    for name in _TRIGGERS:
        op.execute(f"DROP TRIGGER {name} ON signal_outcomes")
        op.execute(f"DROP FUNCTION {name}()")
    op.drop_index("ix_signal_outcomes_failed", table_name="signal_outcomes")
    op.drop_index("ix_signal_outcomes_pending_due", table_name="signal_outcomes")
    op.drop_table("outcome_pnl_histogram")
    op.drop_table("outcome_score_rollups")
    op.drop_table("outcome_rollups")
