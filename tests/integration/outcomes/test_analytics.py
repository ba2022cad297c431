"""Analytics SQL on a seeded history; expected numbers are worked out by hand below.

Wilson 95 % bounds used here are the textbook values (e.g. Newcombe 1998, table I):
2/4 -> 15.00..85.00 %, 1/10 -> 1.79..40.42 %, 2/2 -> 34.24..100 %.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from perpsignal_common.db import analytics
from perpsignal_common.db.engine import session_scope
from perpsignal_outcomes import repository as repo
from tests.integration.outcomes.conftest import judged

pytestmark = pytest.mark.db

DAY = datetime(2021, 11, 15, tzinfo=UTC)
OLD = datetime(2021, 11, 1, tzinfo=UTC)

# (verdict, judge, risk mode, symbol, horizon, score, pnl, result, entry_at)
COMPLETED = [
    ("CONFIRM", "rules", "NORMAL", "BTCUSDT", "4h", 85, 2.0, "WIN", OLD),
    ("CONFIRM", "rules", "NORMAL", "BTCUSDT", "4h", 82, 1.0, "WIN", DAY),
    ("CONFIRM", "rules", "NORMAL", "BTCUSDT", "4h", 65, -1.0, "LOSS", DAY),
    ("CONFIRM", "rules", "NORMAL", "BTCUSDT", "4h", 61, 0.05, "NEUTRAL", DAY),
    ("SKIP", "llm", "AVOID", "XRPUSDT", "4h", 55, 0.5, "WIN", DAY),
    *[("SKIP", "llm", "AVOID", "XRPUSDT", "4h", 55, -1.0, "LOSS", DAY)] * 8,
    ("SKIP", "llm", "AVOID", "XRPUSDT", "4h", 55, 0.0, "NEUTRAL", DAY),
    ("DOWNSIZE", "llm", "REDUCED", "XRPUSDT", "4h", 100, -0.2, "LOSS", DAY),
    ("DOWNSIZE", "llm", "REDUCED", "XRPUSDT", "1h", 70, 0.3, "WIN", DAY),
]


async def seed(sessions) -> None:
    async with session_scope(sessions) as s:
        for i, (verdict, judge, risk, symbol, horizon, score, pnl, result, at) in enumerate(
            COMPLETED
        ):
            ev = judged(
                signal_id=f"s{i:02d}",
                symbol=symbol,
                verdict=verdict,
                judge=judge,
                risk_mode=risk,
                score=score,
                observed_at=at + timedelta(minutes=i),
            )
            await repo.store_signals(s, [ev], {horizon: 14_400}, timedelta(0))
            await s.execute(
                text(
                    "UPDATE signal_outcomes SET status='completed', pnl_pct=:p, result=:r, "
                    "exit_price=1, evaluated_at=:e, evaluation_count=1 WHERE signal_id=:id"
                ),
                {"p": pnl, "r": result, "e": at + timedelta(hours=5), "id": ev.signal_id},
            )
        # one pending row (due long ago), one failed row: never counted as results
        for sid, status in (("p1", "pending"), ("f1", "failed")):
            ev = judged(signal_id=sid, verdict="CONFIRM", observed_at=DAY)
            await repo.store_signals(s, [ev], {"4h": 14_400}, timedelta(0))
            await s.execute(
                text("UPDATE signal_outcomes SET status=:st WHERE signal_id=:id"),
                {"st": status, "id": sid},
            )
        # two live rows (stored hours before they were due) evaluated just now, 60 s and
        # 120 s after they were due
        await s.execute(
            text(
                "UPDATE signal_outcomes SET evaluated_at = now(), "
                "created_at = now() - interval '5 hours', "
                "due_at = now() - make_interval(secs => CASE signal_id WHEN 's01' THEN 60 "
                "ELSE 120 END) WHERE signal_id IN ('s01', 's02')"
            )
        )


async def test_verdict_performance(sessions) -> None:
    await seed(sessions)
    async with session_scope(sessions) as s:
        perf = await analytics.verdict_performance(s, horizon="4h")
    by = {g.verdict: g for g in perf.groups}
    assert set(by) == {"CONFIRM", "SKIP", "DOWNSIZE"}  # pending/failed rows never count
    c = by["CONFIRM"]
    assert (c.count, c.wins, c.losses, c.neutrals) == (4, 2, 1, 1)
    assert c.win_rate_pct == pytest.approx(50.0)
    assert c.win_rate_low_pct == pytest.approx(15.00, abs=0.01)
    assert c.win_rate_high_pct == pytest.approx(85.00, abs=0.01)
    assert c.avg_pnl_pct == pytest.approx((2.0 + 1.0 - 1.0 + 0.05) / 4)
    assert c.median_pnl_pct == pytest.approx((0.05 + 1.0) / 2)
    assert c.small_sample
    k = by["SKIP"]
    assert (k.count, k.wins, k.losses, k.neutrals) == (10, 1, 8, 1)
    assert k.win_rate_low_pct == pytest.approx(1.79, abs=0.01)
    assert k.win_rate_high_pct == pytest.approx(40.42, abs=0.01)
    assert k.avg_pnl_pct == pytest.approx((0.5 - 8.0) / 10)
    assert k.median_pnl_pct == pytest.approx(-1.0)

    async with session_scope(sessions) as s:
        recent = await analytics.verdict_performance(s, horizon="4h", since=DAY)
        pooled = await analytics.verdict_performance(s)
    c = next(g for g in recent.groups if g.verdict == "CONFIRM")
    assert (c.count, c.wins, c.losses) == (3, 1, 1)  # the OLD win is before `since`
    assert {(g.verdict, g.horizon) for g in pooled.groups} == {
        ("CONFIRM", "4h"),
        ("SKIP", "4h"),
        ("DOWNSIZE", "4h"),
        ("DOWNSIZE", "1h"),
    }


async def test_verdict_compare_and_judge_lift(sessions) -> None:
    await seed(sessions)
    async with session_scope(sessions) as s:
        cmp = await analytics.verdict_compare(s, horizon="4h")
    judges = {g.value: g.count for g in cmp.by_judge}
    assert judges == {"rules": 4, "llm": 11}
    assert {g.value: g.count for g in cmp.by_risk_mode} == {"NORMAL": 4, "AVOID": 10, "REDUCED": 1}
    assert {g.value: g.wins for g in cmp.by_verdict} == {"CONFIRM": 2, "SKIP": 1, "DOWNSIZE": 0}
    lift = cmp.judge_lift
    assert (lift.confirm.count, lift.skip.count) == (4, 10)
    assert lift.lift_pct == pytest.approx(50.0 - 10.0)
    # Newcombe: 0.4 -+ sqrt((0.5-0.15)^2 + (0.4042-0.1)^2), 0.4 + sqrt((0.85-0.5)^2+(0.1-0.0179)^2)
    assert lift.lift_low_pct == pytest.approx(-6.37, abs=0.05)
    assert lift.lift_high_pct == pytest.approx(75.95, abs=0.05)


async def test_judge_lift_without_skips_has_no_number(sessions) -> None:
    async with session_scope(sessions) as s:
        cmp = await analytics.verdict_compare(s)
    assert cmp.judge_lift.lift_pct is None
    assert cmp.judge_lift.skip.count == 0


async def test_calibration_buckets(sessions) -> None:
    await seed(sessions)
    async with session_scope(sessions) as s:
        cal = await analytics.calibration(s, horizon="4h", bucket_size=10)
    buckets = {(b.score_from, b.score_to): b for b in cal.buckets}
    assert set(buckets) == {(50, 60), (60, 70), (80, 90), (90, 100)}
    assert (buckets[(50, 60)].count, buckets[(50, 60)].wins) == (10, 1)
    assert (buckets[(60, 70)].count, buckets[(60, 70)].wins) == (2, 0)
    top = buckets[(80, 90)]
    assert (top.count, top.wins, top.win_rate_pct) == (2, 2, 100.0)
    assert top.win_rate_low_pct == pytest.approx(34.24, abs=0.01)
    assert top.win_rate_high_pct == pytest.approx(100.0)
    assert buckets[(90, 100)].count == 1  # a score of 100 lands in the last bucket


async def test_outcomes_history_filters_and_pages(sessions) -> None:
    await seed(sessions)
    async with session_scope(sessions) as s:
        btc = await analytics.outcomes_history(s, symbol="BTCUSDT")
        skip = await analytics.outcomes_history(s, verdict="SKIP", limit=4, offset=8)
        hour = await analytics.outcomes_history(s, horizon="1h")
        ranged = await analytics.outcomes_history(s, start=OLD, end=OLD + timedelta(days=1))
        everything = await analytics.outcomes_history(s, limit=500)
    assert btc.total == 4 and all(i.symbol == "BTCUSDT" for i in btc.items)
    assert skip.total == 10 and len(skip.items) == 2  # the last page holds rows 9 and 10
    assert [i.signal_id for i in hour.items] == ["s15"]  # the last seeded row
    assert ranged.total == 1 and ranged.items[0].pnl_pct == 2.0
    assert everything.total == len(COMPLETED) + 2  # pending and failed are listed too
    entries = [i.entry_at for i in everything.items]
    assert entries == sorted(entries, reverse=True)


async def test_tracking_stats(sessions) -> None:
    await seed(sessions)
    async with session_scope(sessions) as s:
        st = await analytics.tracking_stats(s)
    assert (st.pending, st.completed, st.failed) == (1, len(COMPLETED), 1)
    assert st.pending_overdue == 1
    assert st.oldest_pending_due_at == DAY + timedelta(hours=4)
    assert st.evaluated_last_hour == 2
    assert st.lag_avg_s == pytest.approx(90.0)
    assert st.lag_max_s == pytest.approx(120.0)


async def test_the_lag_of_a_replayed_signal_is_counted_from_its_arrival(sessions) -> None:
    """The demo replays 2021 data: its outcomes were due years before they were stored, and
    `/analytics/tracking-stats` showed a lag of ~5 years (evaluated_at - due_at). The lag says
    whether the tracker keeps up: counted from when the row could first be evaluated here."""
    async with session_scope(sessions) as s:
        ev = judged(signal_id="replayed", verdict="CONFIRM", observed_at=DAY)
        await repo.store_signals(s, [ev], {"4h": 14_400}, timedelta(0))
        await s.execute(
            text(
                "UPDATE signal_outcomes SET status='completed', pnl_pct=1, result='WIN', "
                "exit_price=1, evaluation_count=1, created_at = now() - interval '30 seconds', "
                "evaluated_at = now() WHERE signal_id = 'replayed'"
            )
        )
    async with session_scope(sessions) as s:
        st = await analytics.tracking_stats(s)
    assert st.evaluated_last_hour == 1
    assert st.lag_avg_s == pytest.approx(30.0, abs=1)
    assert st.lag_max_s == pytest.approx(30.0, abs=1)
