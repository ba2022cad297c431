"""`GET /analytics/signal-research`: do the live signals and verdicts carry information?

Per horizon, over the newest tracked outcomes (completed, directional) in PostgreSQL: each
factor's mean sub-score and information coefficient with its 95 % interval, and the judge's
lift (CONFIRM - SKIP, CONFIRM - all) in mean P&L and win rate with intervals. The rows come from
`perpsignal_common.db.analytics.tracked_outcomes`; the statistics are the backtest's own
(`perpsignal_domain.research.tracked` over `research.stats`: block bootstraps whose blocks span
one horizon of pooled entries, so overlapping windows and symbols moving together are not
counted as independent). The arithmetic runs in a worker thread and each answer is cached for
`CACHE_TTL_S` (it changes only as outcomes complete).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from cachetools import TTLCache
from pydantic import Field
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from perpsignal_common.db import analytics
from perpsignal_common.db.engine import session_scope
from perpsignal_common.events.signals import FACTOR_NAMES
from perpsignal_gateway import args as a
from perpsignal_gateway.schemas import ApiModel

if TYPE_CHECKING:  # the statistics (numpy) load on the first request, not at start-up
    from perpsignal_domain.research.tracked import Difference

HORIZONS = ("1h", "4h", "24h")
CACHE_TTL_S = 60.0
METHOD = (
    "Over completed outcomes of directional signals (NEUTRAL signals are not tracked). IC: "
    "Spearman correlation of a factor's sub-score - 50 with the long return over the horizon "
    "(gross P&L x side), where the factor had data. Lift: CONFIRM mean gross P&L % (and win "
    "rate) minus SKIP's, and minus every outcome's. Intervals: 95 % circular block bootstrap, "
    "blocks spanning one horizon of entries of all symbols. An interval including 0 means no "
    "measurable information. Fewer than 10 outcomes: not computed (null)."
)


class FactorInformation(ApiModel):
    """One factor at one horizon."""

    factor: str
    outcomes: int = Field(description="Outcomes whose signal had this factor's data (status ok)")
    mean_score: float | None = Field(description="Mean sub-score (0-100, 50 neutral)")
    ic: float | None = Field(description="Spearman IC of sub-score - 50 with the long return")
    ic_low: float | None = Field(description="95 % interval, lower bound")
    ic_high: float | None = Field(description="95 % interval, upper bound")
    informative: bool = Field(description="True when the IC interval excludes 0")


class Lift(ApiModel):
    """CONFIRM minus another group of the same outcomes."""

    confirm: int = Field(description="CONFIRM outcomes")
    other: int = Field(description="Outcomes of the group compared against")
    pnl_pct: float | None = Field(description="Difference of mean gross P&L, % points")
    pnl_low_pct: float | None
    pnl_high_pct: float | None
    win_rate_pts: float | None = Field(description="Difference of win rates, percentage points")
    win_rate_low_pts: float | None
    win_rate_high_pts: float | None


class HorizonResearchOut(ApiModel):
    """Factor information and judge lift at one horizon."""

    horizon: str
    outcomes: int = Field(description="Completed directional outcomes used")
    block: int | None = Field(description="Bootstrap block length (outcomes)")
    truncated: bool = Field(description="More outcomes matched than `limit`: newest used")
    first_entry_at: datetime | None
    last_entry_at: datetime | None
    factors: list[FactorInformation]
    confirm_minus_skip: Lift
    confirm_minus_all: Lift


class SignalResearch(ApiModel):
    """`GET /analytics/signal-research`."""

    since: datetime = Field(description="Outcomes of signals entered at or after this time")
    limit: int = Field(description="At most this many newest outcomes per horizon")
    method: str
    horizons: list[HorizonResearchOut]


def _ci(pair: tuple[float, float] | None, scale: float = 1.0) -> tuple[float | None, float | None]:
    return (None, None) if pair is None else (pair[0] * scale, pair[1] * scale)


def _lift(d: Difference, other_n: int | None = None) -> Lift:
    pl, ph = _ci(d.pnl_ci)
    wl, wh = _ci(d.win_rate_ci, 100.0)
    return Lift(
        confirm=d.n_a,
        other=d.n_b if other_n is None else other_n,
        pnl_pct=d.pnl_pct,
        pnl_low_pct=pl,
        pnl_high_pct=ph,
        win_rate_pts=None if d.win_rate is None else d.win_rate * 100.0,
        win_rate_low_pts=wl,
        win_rate_high_pts=wh,
    )


def compute(tracked: analytics.TrackedOutcomes) -> HorizonResearchOut:
    """Return the research of one horizon's tracked outcomes (CPU: run it off the loop)."""
    from perpsignal_domain.research.tracked import research_horizon

    rows = tracked.rows
    horizon_s = float(tracked.horizon_s or 1)
    res = research_horizon(
        [r.entry_at.timestamp() for r in rows],
        horizon_s,
        [1 if r.direction == "LONG" else -1 for r in rows],
        [r.pnl_pct for r in rows],
        [r.result == "WIN" for r in rows],
        [r.verdict for r in rows],
        {name: [r.scores.get(name) for r in rows] for name in FACTOR_NAMES},
    )
    factors = []
    for f in res.factors:
        lo, hi = _ci(f.ic_ci)
        factors.append(
            FactorInformation(
                factor=f.factor,
                outcomes=f.n,
                mean_score=f.mean_score,
                ic=f.ic,
                ic_low=lo,
                ic_high=hi,
                informative=f.excludes_zero,
            )
        )
    return HorizonResearchOut(
        horizon=tracked.horizon,
        outcomes=res.n,
        block=res.block if rows else None,
        truncated=tracked.truncated,
        first_entry_at=rows[0].entry_at if rows else None,
        last_entry_at=rows[-1].entry_at if rows else None,
        factors=factors,
        confirm_minus_skip=_lift(res.confirm_minus_skip),
        confirm_minus_all=_lift(res.confirm_minus_all),
    )


class Research:
    """Computes and caches `SignalResearch` answers."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._sessions = sessions
        self._now = now
        self._cache: TTLCache[tuple[str | None, int | str, int], SignalResearch] = TTLCache(
            maxsize=64, ttl=CACHE_TTL_S
        )

    async def answer(self, q: a.ResearchQuery) -> SignalResearch:
        """Return the research of the requested horizons (cached for CACHE_TTL_S)."""
        key = (q.horizon, q.since.isoformat() if q.since else q.days, q.limit)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        since = q.since
        if since is None:
            # the window ends at the newest outcome, not the wall clock: a replay of recorded
            # history (`perpsignal demo`) is researched too; live, the two are minutes apart
            async with session_scope(self._sessions) as session:
                newest = await analytics.newest_completed_entry(session)
            since = (newest or self._now()) - timedelta(days=q.days)
        out = []
        for horizon in (q.horizon,) if q.horizon else HORIZONS:
            async with session_scope(self._sessions) as session:
                tracked = await analytics.tracked_outcomes(
                    session, horizon=horizon, since=since, limit=q.limit
                )
            out.append(await asyncio.to_thread(compute, tracked))
        body = SignalResearch(since=since, limit=q.limit, method=METHOD, horizons=out)
        self._cache[key] = body
        return body
