"""Read-only analytics over the outcomes tables (owner: outcomes; caller: the gateway).

Every function takes an `AsyncSession` and returns a pydantic model with snake_case fields (the
gateway serves them camelCase). Rates always come with their counts and a 95 % Wilson score
interval, because a win rate of 60 % means nothing without knowing it came from 5 outcomes.

Definitions (also in services/outcomes/README.md):
* Only `completed` outcomes count. `win_rate_pct = wins / count * 100`: NEUTRAL outcomes (|P&L|
  within the band) stay in the denominator, so the rate is "share of signals that paid".
* Judge lift = CONFIRM win rate minus SKIP win rate (percentage points), with Newcombe's hybrid
  score interval for a difference of two proportions.
* With `horizon=None`, outcomes of every horizon are pooled (one signal then counts once per
  horizon); pass a horizon for a per-signal view.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

Z95 = 1.959963984540054
SMALL_SAMPLE = 30


def wilson_interval(wins: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """Return the Wilson score interval of `wins / n` as fractions, or None when n == 0."""
    if n <= 0:
        return None
    p = wins / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


class WinRate(BaseModel):
    """Counts of a group's completed outcomes and its win rate with a 95 % interval."""

    count: int = Field(description="Completed outcomes in the group")
    wins: int
    losses: int
    neutrals: int
    win_rate_pct: float | None = Field(description="wins / count * 100; None when count is 0")
    win_rate_low_pct: float | None = Field(description="95 % Wilson interval, lower bound")
    win_rate_high_pct: float | None = Field(description="95 % Wilson interval, upper bound")
    small_sample: bool = Field(description=f"True when count < {SMALL_SAMPLE}")

    @classmethod
    def of(cls, count: int, wins: int, losses: int) -> WinRate:
        """Build from counts."""
        ci = wilson_interval(wins, count)
        return cls(
            count=count,
            wins=wins,
            losses=losses,
            neutrals=count - wins - losses,
            win_rate_pct=None if count == 0 else wins / count * 100,
            win_rate_low_pct=None if ci is None else ci[0] * 100,
            win_rate_high_pct=None if ci is None else ci[1] * 100,
            small_sample=count < SMALL_SAMPLE,
        )


class PnlStats(WinRate):
    """Win rate plus the P&L distribution of the group."""

    avg_pnl_pct: float | None
    median_pnl_pct: float | None


class VerdictStats(PnlStats):
    """Performance of one verdict at one horizon."""

    verdict: str
    horizon: str


class VerdictPerformance(BaseModel):
    """`verdict_performance`: one row per (verdict, horizon)."""

    horizon: str | None
    since: datetime | None
    groups: list[VerdictStats]


class GroupStats(WinRate):
    """Performance of one value of a dimension (verdict, risk mode or judge).

    No median here: three medians over the whole history would need three full sorts;
    `verdict_performance` carries the medians per verdict.
    """

    dimension: str
    value: str
    avg_pnl_pct: float | None


class JudgeLift(BaseModel):
    """CONFIRM minus SKIP win rate, in percentage points, with a 95 % interval."""

    confirm: WinRate
    skip: WinRate
    lift_pct: float | None = Field(description="CONFIRM win rate - SKIP win rate (points)")
    lift_low_pct: float | None
    lift_high_pct: float | None


class VerdictCompare(BaseModel):
    """`verdict_compare`: by verdict, by risk mode, by judge source, and the judge lift."""

    horizon: str | None
    by_verdict: list[GroupStats]
    by_risk_mode: list[GroupStats]
    by_judge: list[GroupStats]
    judge_lift: JudgeLift


class OutcomeItem(BaseModel):
    """One outcome row of the history."""

    signal_id: str
    symbol: str
    direction: str
    verdict: str
    risk_mode: str
    judge: str
    score: float
    horizon: str
    status: str
    entry_at: datetime
    due_at: datetime
    entry_price: float
    stop_loss_price: float | None
    take_profit_price: float | None
    exit_price: float | None
    pnl_pct: float | None
    result: str | None
    max_favorable_pct: float | None
    max_adverse_pct: float | None
    first_hit: str | None
    cost_pct: float | None = Field(
        description="Taker fees and slippage of both legs, % of entry notional"
    )
    funding_pct: float | None = Field(
        description="Funding paid over the window (negative: received), % of entry notional; "
        "null on a completed outcome: unknown (a settlement is missing), never assumed 0"
    )
    funding_settlements: int | None = Field(
        description="Funding settlements while the position was open; null: unknown"
    )
    net_pnl_pct: float | None = Field(
        description="pnl_pct - cost_pct - funding_pct; null while the funding is unknown"
    )
    evaluated_at: datetime | None
    reason: str | None


class OutcomesHistory(BaseModel):
    """`outcomes_history`: one page of outcomes, newest entry first, and the total."""

    items: list[OutcomeItem]
    total: int
    limit: int
    offset: int


class TrackingStats(BaseModel):
    """`tracking_stats`: how far behind the tracker is."""

    pending: int
    pending_overdue: int = Field(description="Pending rows whose next attempt time has passed")
    completed: int
    failed: int
    oldest_pending_due_at: datetime | None
    evaluated_last_hour: int
    lag_avg_s: float | None = Field(
        description="Mean seconds from when an outcome could first be evaluated here (its due "
        "time, or its arrival when it arrived already due: a replayed or late signal) to its "
        "evaluation, over the last hour's evaluations (wall clock)"
    )
    lag_max_s: float | None = Field(description="Max of the same seconds, last hour")
    funding_unknown: int = Field(
        description="Completed outcomes whose funding (hence net P&L) is unknown: the settled "
        "funding rates of their window are missing"
    )


class CalibrationBucket(WinRate):
    """Win rate of signals whose score falls in [score_from, score_to)."""

    score_from: float
    score_to: float
    avg_pnl_pct: float | None


class Calibration(BaseModel):
    """`calibration`: win rate by score bucket, so users see if a higher score pays more."""

    horizon: str
    bucket_size: int
    buckets: list[CalibrationBucket]


def _pnl(row: Any) -> dict[str, Any]:
    base = WinRate.of(row.n, row.wins, row.losses).model_dump()
    return {**base, "avg_pnl_pct": row.avg_pnl, "median_pnl_pct": row.median_pnl}


# counts of completed outcomes come from `outcome_rollups` (kept by triggers on
# `signal_outcomes`, migration outcomes_0002): a few thousand rows instead of a million
_SUMS = """
    sum(n)::bigint AS n, sum(wins)::bigint AS wins, sum(losses)::bigint AS losses,
    CASE WHEN sum(pnl_n) > 0 THEN sum(pnl_sum) / sum(pnl_n)::float8 END AS avg_pnl
"""

# P&L buckets of `outcome_pnl_histogram`: bucket b holds b / 16 <= pnl_pct < (b + 1) / 16
_PNL_BUCKETS = 16

# the exact median of each group, rows (n - 1) // 2 (and n // 2 when n is even) in P&L order,
# read `off` rows into the index range pnl_pct >= lo of the (horizon, verdict, pnl_pct) index
_MEDIAN_FROM = """
    SELECT g.horizon, g.verdict, (
        SELECT avg(m.pnl_pct) FROM (
            SELECT pnl_pct FROM signal_outcomes
            WHERE status = 'completed' AND horizon = g.horizon AND verdict = g.verdict
              AND pnl_pct >= g.lo
            ORDER BY pnl_pct OFFSET g.off LIMIT g.lim
        ) AS m
    ) AS median_pnl
    FROM unnest(CAST(:hs AS text[]), CAST(:vs AS text[]), CAST(:los AS float8[]),
                CAST(:offs AS bigint[]), CAST(:lims AS bigint[]))
         AS g(horizon, verdict, lo, off, lim)
"""
# the same without a histogram (a `since` filter, or a group with non-finite P&L)
_MEDIAN_SCAN = """
    SELECT g.horizon, g.verdict, (
        SELECT avg(m.pnl_pct) FROM (
            SELECT pnl_pct FROM signal_outcomes
            WHERE {where} AND horizon = g.horizon AND verdict = g.verdict
            ORDER BY pnl_pct OFFSET g.off LIMIT g.lim
        ) AS m
    ) AS median_pnl
    FROM unnest(CAST(:hs AS text[]), CAST(:vs AS text[]), CAST(:offs AS bigint[]),
                CAST(:lims AS bigint[])) AS g(horizon, verdict, off, lim)
"""


def _next_midnight(at: datetime) -> datetime:
    """Return the first UTC midnight at or after `at` (naive datetimes are UTC, as asyncpg)."""
    at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    midnight = datetime(at.year, at.month, at.day, tzinfo=UTC)
    return midnight if midnight == at else midnight + timedelta(days=1)


async def _medians(
    session: AsyncSession,
    groups: Sequence[Any],
    horizon: str | None,
    since: datetime | None,
) -> dict[tuple[str, str], float | None]:
    """Return the exact median P&L of each (horizon, verdict) group of `groups`."""
    out: dict[tuple[str, str], float | None] = {}
    scan: list[tuple[str, str, int, int]] = []
    fast: list[tuple[str, str, float, int, int]] = []
    hist: dict[tuple[str, str], list[tuple[int, int]]] = {}
    if since is None:
        where = "n > 0" + (" AND horizon = :horizon" if horizon is not None else "")
        rows = await session.execute(
            text(
                "SELECT horizon, verdict, pnl_bucket, n FROM outcome_pnl_histogram "
                f"WHERE {where} ORDER BY horizon, verdict, pnl_bucket"
            ),
            {} if horizon is None else {"horizon": horizon},
        )
        for h, v, bucket, n in rows.all():
            hist.setdefault((h, v), []).append((bucket, n))
    for g in groups:
        n = g.n
        first, lim = (n - 1) // 2, 2 - n % 2
        buckets = hist.get((g.horizon, g.verdict))
        # every row of the group has a finite P&L in the histogram: seek to its bucket
        if buckets is not None and sum(c for _, c in buckets) == n:
            before = 0
            for bucket, count in buckets:
                if before + count > first:
                    fast.append((g.horizon, g.verdict, bucket / _PNL_BUCKETS, first - before, lim))
                    break
                before += count
        else:
            scan.append((g.horizon, g.verdict, first, lim))
    if fast:
        h, v, lo, off, lim_ = (list(c) for c in zip(*fast, strict=True))
        rows = await session.execute(
            text(_MEDIAN_FROM), {"hs": h, "vs": v, "los": lo, "offs": off, "lims": lim_}
        )
        out.update({(r.horizon, r.verdict): r.median_pnl for r in rows.all()})
    if scan:
        where = "status = 'completed'"
        params: dict[str, Any] = {}
        if since is not None:
            where += " AND entry_at >= :since"
            params["since"] = since
        h, v, off, lim_ = (list(c) for c in zip(*scan, strict=True))
        rows = await session.execute(
            text(_MEDIAN_SCAN.format(where=where)),
            {**params, "hs": h, "vs": v, "offs": off, "lims": lim_},
        )
        out.update({(r.horizon, r.verdict): r.median_pnl for r in rows.all()})
    return out


async def verdict_performance(
    session: AsyncSession, *, horizon: str | None = None, since: datetime | None = None
) -> VerdictPerformance:
    """Return count, win rate (with interval), average and median P&L per verdict and horizon.

    Counts and sums come from the daily rollup (plus the raw rows of the partial first day when
    `since` is given). The median is exact: the P&L histogram locates the bucket holding it and
    the (horizon, verdict, pnl_pct) index is read a few rows into that bucket; with `since` the
    index is read at offset n/2 of each group instead.
    """
    params: dict[str, Any] = {}
    h_clause = ""
    if horizon is not None:
        h_clause = " AND horizon = :horizon"
        params["horizon"] = horizon
    if since is None:
        source = f"SELECT * FROM outcome_rollups WHERE TRUE{h_clause}"
    else:
        # whole days from the rollup, the rows of the partial first day from the table
        params["since"] = since
        params["boundary"] = boundary = _next_midnight(since)
        params["first_day"] = boundary.date()
        source = f"""
            SELECT verdict, horizon, n, wins, losses, pnl_n, pnl_sum FROM outcome_rollups
            WHERE day >= :first_day{h_clause}
            UNION ALL
            SELECT verdict, horizon, count(*), count(*) FILTER (WHERE result = 'WIN'),
                   count(*) FILTER (WHERE result = 'LOSS'), count(pnl_pct),
                   coalesce(sum(pnl_pct), 0)
            FROM signal_outcomes
            WHERE status = 'completed' AND entry_at >= :since AND entry_at < :boundary{h_clause}
            GROUP BY verdict, horizon
        """
    sql = f"""
        SELECT verdict, horizon, {_SUMS}
        FROM ({source}) AS r
        GROUP BY verdict, horizon HAVING sum(n) > 0
        ORDER BY horizon, verdict
    """
    rows = (await session.execute(text(sql), params)).all()
    medians = await _medians(session, rows, horizon, since)
    groups = [
        VerdictStats(
            verdict=r.verdict,
            horizon=r.horizon,
            **WinRate.of(r.n, r.wins, r.losses).model_dump(),
            avg_pnl_pct=r.avg_pnl,
            median_pnl_pct=medians.get((r.horizon, r.verdict)),
        )
        for r in rows
    ]
    return VerdictPerformance(horizon=horizon, since=since, groups=groups)


def _lift(confirm: WinRate, skip: WinRate) -> JudgeLift:
    lift = low = high = None
    c_ci = wilson_interval(confirm.wins, confirm.count)
    s_ci = wilson_interval(skip.wins, skip.count)
    if c_ci is not None and s_ci is not None:
        p1, p2 = confirm.wins / confirm.count, skip.wins / skip.count
        d = p1 - p2
        # Newcombe (1998) method 10: combine the two Wilson intervals
        low = d - math.sqrt((p1 - c_ci[0]) ** 2 + (s_ci[1] - p2) ** 2)
        high = d + math.sqrt((c_ci[1] - p1) ** 2 + (p2 - s_ci[0]) ** 2)
        lift, low, high = d * 100, low * 100, high * 100
    return JudgeLift(
        confirm=confirm, skip=skip, lift_pct=lift, lift_low_pct=low, lift_high_pct=high
    )


async def verdict_compare(session: AsyncSession, *, horizon: str | None = None) -> VerdictCompare:
    """Compare verdicts, risk modes and judge sources; judge lift = CONFIRM - SKIP win rate.

    Aggregates the daily rollup (a few thousand rows), not the outcomes themselves.
    """
    sql = f"""
        SELECT verdict, risk_mode, judge,
               GROUPING(verdict) AS g_verdict, GROUPING(risk_mode) AS g_risk,
               {_SUMS}
        FROM outcome_rollups
        {"WHERE horizon = :horizon" if horizon is not None else ""}
        GROUP BY GROUPING SETS ((verdict), (risk_mode), (judge))
        HAVING sum(n) > 0
    """
    params = {} if horizon is None else {"horizon": horizon}
    rows = (await session.execute(text(sql), params)).all()
    by: dict[str, list[GroupStats]] = {"verdict": [], "risk_mode": [], "judge": []}
    for r in rows:
        if r.g_verdict == 0:
            dim, value = "verdict", r.verdict
        elif r.g_risk == 0:
            dim, value = "risk_mode", r.risk_mode
        else:
            dim, value = "judge", r.judge
        counts = WinRate.of(r.n, r.wins, r.losses).model_dump()
        by[dim].append(GroupStats(dimension=dim, value=value, avg_pnl_pct=r.avg_pnl, **counts))
    for groups in by.values():
        groups.sort(key=lambda g: g.value)
    verdicts = {g.value: g for g in by["verdict"]}
    empty = WinRate.of(0, 0, 0)

    def rate(name: str) -> WinRate:
        g = verdicts.get(name)
        return empty if g is None else WinRate.of(g.count, g.wins, g.losses)

    return VerdictCompare(
        horizon=horizon,
        by_verdict=by["verdict"],
        by_risk_mode=by["risk_mode"],
        by_judge=by["judge"],
        judge_lift=_lift(rate("CONFIRM"), rate("SKIP")),
    )


async def outcomes_history(
    session: AsyncSession,
    *,
    symbol: str | None = None,
    verdict: str | None = None,
    horizon: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int = 50,
    offset: int = 0,
) -> OutcomesHistory:
    """Return one page of outcomes (every status), newest entry first, with the total count.

    `start`/`end` filter on the signal's entry time: start inclusive, end exclusive.
    """
    limit = max(1, min(limit, 500))
    offset = max(0, offset)
    filters = {"symbol": symbol, "verdict": verdict, "horizon": horizon}
    params: dict[str, Any] = {k: v for k, v in filters.items() if v is not None}
    # only the filters given, so the planner can pick the matching index
    clauses = [f"{k} = :{k}" for k in params]
    if start is not None:
        clauses.append("entry_at >= :start")
        params["start"] = start
    if end is not None:
        clauses.append("entry_at < :end")
        params["end"] = end
    where = " AND ".join(clauses) or "TRUE"
    fields = ", ".join(OutcomeItem.model_fields)
    page = await session.execute(
        text(
            f"SELECT {fields} FROM signal_outcomes WHERE {where} "
            "ORDER BY entry_at DESC, id DESC LIMIT :limit OFFSET :offset"
        ),
        {**params, "limit": limit, "offset": offset},
    )
    items = [OutcomeItem.model_validate(dict(r._mapping)) for r in page.all()]
    total = (
        await session.execute(text(f"SELECT count(*) FROM signal_outcomes WHERE {where}"), params)
    ).scalar_one()
    return OutcomesHistory(items=items, total=total, limit=limit, offset=offset)


async def tracking_stats(session: AsyncSession) -> TrackingStats:
    """Return pending/completed/failed counts, the oldest pending row and the evaluation lag.

    The lag tells a user whether the tracker keeps up: how long an outcome waited here once it
    could be evaluated. Measured from its due time alone, a replayed signal (market time of
    2021, evaluated today) showed a lag of ~5 years; it is measured from the later of its due
    time and its arrival (`created_at`), as the tracker's give-up window is. A live outcome
    arrives before it is due, so its lag is unchanged."""
    # separate sub-selects so each count uses its own partial index; the completed count is
    # the rollup's total (a million rows otherwise)
    sql = """
        SELECT
          (SELECT count(*) FROM signal_outcomes WHERE status = 'pending') AS pending,
          (SELECT count(*) FROM signal_outcomes
             WHERE status = 'pending' AND next_attempt_at <= now()
               AND (retry_at IS NULL OR retry_at <= now())) AS overdue,
          (SELECT coalesce(sum(n), 0)::bigint FROM outcome_rollups) AS completed,
          (SELECT count(*) FROM signal_outcomes WHERE status = 'failed') AS failed,
          (SELECT min(due_at) FROM signal_outcomes WHERE status = 'pending') AS oldest,
          (SELECT count(*) FROM signal_outcomes
             WHERE status = 'completed' AND cost_pct IS NOT NULL
               AND funding_pct IS NULL) AS funding_unknown,
          l.n AS recent, l.avg_s, l.max_s
        FROM (
          SELECT count(*) AS n,
                 avg(extract(epoch FROM evaluated_at - greatest(due_at, created_at))) AS avg_s,
                 max(extract(epoch FROM evaluated_at - greatest(due_at, created_at))) AS max_s
          FROM signal_outcomes WHERE evaluated_at >= now() - interval '1 hour'
        ) AS l
    """
    r = (await session.execute(text(sql))).one()
    return TrackingStats(
        pending=r.pending,
        pending_overdue=r.overdue,
        completed=r.completed,
        failed=r.failed,
        oldest_pending_due_at=r.oldest,
        evaluated_last_hour=r.recent,
        lag_avg_s=None if r.avg_s is None else float(r.avg_s),
        lag_max_s=None if r.max_s is None else float(r.max_s),
        funding_unknown=r.funding_unknown,
    )


async def calibration(
    session: AsyncSession, *, horizon: str = "4h", bucket_size: int = 10
) -> Calibration:
    """Return the win rate (with Wilson interval) per score bucket at one horizon.

    Buckets are [k * size, (k + 1) * size); a score of 100 falls into the last bucket.
    """
    size = max(1, min(int(bucket_size), 100))
    top = math.ceil(100 / size) - 1
    # from the per-score-point rollup: floor(score / size) == floor(floor(score) / size) for a
    # whole `size`, so whole score points regroup into any bucket size exactly
    sql = f"""
        SELECT LEAST(floor(score_floor::float8 / :size)::int, :top) AS bucket, {_SUMS}
        FROM outcome_score_rollups
        WHERE horizon = :horizon
        GROUP BY 1 HAVING sum(n) > 0 ORDER BY 1
    """
    rows = (await session.execute(text(sql), {"size": size, "top": top, "horizon": horizon})).all()
    buckets = [
        CalibrationBucket(
            score_from=r.bucket * size,
            score_to=min(100, (r.bucket + 1) * size),
            avg_pnl_pct=r.avg_pnl,
            **WinRate.of(r.n, r.wins, r.losses).model_dump(),
        )
        for r in rows
    ]
    return Calibration(horizon=horizon, bucket_size=size, buckets=buckets)


@dataclass(frozen=True, slots=True)
class TrackedOutcome:
    """One completed outcome with its signal's factor sub-scores (those with status ok)."""

    entry_at: datetime
    direction: str
    verdict: str
    pnl_pct: float
    result: str
    scores: dict[str, float]


@dataclass(frozen=True, slots=True)
class TrackedOutcomes:
    """`tracked_outcomes`: the newest completed outcomes of one horizon, oldest first."""

    horizon: str
    horizon_s: int | None
    since: datetime | None
    limit: int
    truncated: bool  # more outcomes matched than `limit`: only the newest were read
    rows: list[TrackedOutcome]


# the newest rows first (LIMIT), then the sub-scores of those rows only
_TRACKED_SQL = """
    WITH o AS MATERIALIZED (
        SELECT signal_id, entry_at, direction, verdict, pnl_pct, result, horizon_s
        FROM signal_outcomes
        WHERE status = 'completed' AND horizon = :horizon AND pnl_pct IS NOT NULL
          AND direction IN ('LONG', 'SHORT') {since}
        ORDER BY entry_at DESC
        LIMIT :limit
    )
    SELECT o.entry_at, o.direction, o.verdict, o.pnl_pct, o.result, o.horizon_s,
           (SELECT coalesce(jsonb_object_agg(f->>'name', (f->>'score')::float8), '{{}}'::jsonb)
              FROM jsonb_array_elements(s.factors) AS f
             WHERE f->>'status' = 'ok') AS scores
    FROM o JOIN outcome_signals AS s ON s.signal_id = o.signal_id
"""


async def tracked_outcomes(
    session: AsyncSession, *, horizon: str, since: datetime | None = None, limit: int = 20_000
) -> TrackedOutcomes:
    """Return the newest `limit` completed outcomes of `horizon` with their factor sub-scores.

    The raw material of the live factor information and judge lift (computed by the gateway
    with the domain's statistics); one indexed scan of the horizon's completed rows.
    """
    params: dict[str, Any] = {"horizon": horizon, "limit": limit + 1}
    clause = ""
    if since is not None:
        clause = "AND entry_at >= :since"
        params["since"] = since
    result = await session.execute(text(_TRACKED_SQL.format(since=clause)), params)
    # the join keeps no order: sort here (a sort of wide rows in SQL spills to disk)
    found = sorted(result.all(), key=lambda r: r.entry_at, reverse=True)
    truncated = len(found) > limit
    found = found[:limit]
    rows = [
        TrackedOutcome(r.entry_at, r.direction, r.verdict, r.pnl_pct, r.result or "", r.scores)
        for r in reversed(found)
    ]
    horizon_s = found[0].horizon_s if found else None
    return TrackedOutcomes(horizon, horizon_s, since, limit, truncated, rows)


async def newest_completed_entry(session: AsyncSession) -> datetime | None:
    """Return the entry time of the newest completed outcome (None when there is none)."""
    sql = "SELECT max(entry_at) FROM signal_outcomes WHERE status = 'completed'"
    value = (await session.execute(text(sql))).scalar()
    return value if isinstance(value, datetime) else None


__all__ = [
    "Calibration",
    "CalibrationBucket",
    "GroupStats",
    "JudgeLift",
    "OutcomeItem",
    "OutcomesHistory",
    "TrackedOutcome",
    "TrackedOutcomes",
    "TrackingStats",
    "VerdictCompare",
    "VerdictPerformance",
    "VerdictStats",
    "WinRate",
    "calibration",
    "newest_completed_entry",
    "outcomes_history",
    "tracked_outcomes",
    "tracking_stats",
    "verdict_compare",
    "verdict_performance",
    "wilson_interval",
]
