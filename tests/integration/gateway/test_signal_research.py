"""`GET /analytics/signal-research` on outcomes the real pipeline produced.

Signals: the rule judge's own output (tests/producers.py): every directional signal of the
recorded XRPUSDT week (WAIT, real factor scores) plus CONFIRM and SKIP signals of the judge's
synthetic regimes placed on that week's candles at their close. They are stored and measured
by the outcomes service's repository and tracker over the recorded candles, in the embedded
PostgreSQL; the gateway then answers from those rows. The expected figures are recomputed here
from the stored rows and the events, independently of the domain statistics.
"""

from __future__ import annotations

import statistics
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from perpsignal_common.db.engine import create_engine, create_sessionmaker, session_scope
from perpsignal_common.db.models.outcomes import SignalOutcome
from perpsignal_common.events.signals import FACTOR_NAMES, SignalJudgedV1
from perpsignal_common.settings import DatabaseSettings
from perpsignal_outcomes import repository as repo
from perpsignal_outcomes.settings import OutcomesSettings
from perpsignal_outcomes.tracker import Tracker
from tests.integration.gateway.test_analytics_db import gateway
from tests.integration.outcomes.conftest import xrp_candle_rows
from tests.producers import real_judged, recorded

pytestmark = pytest.mark.db

HORIZONS = {"1h": 3600, "4h": 14_400, "24h": 86_400}
LATER = datetime(2021, 11, 25, tzinfo=UTC)
SINCE = "2021-11-01T00:00:00Z"


def _signals(candles: list[dict[str, Any]]) -> list[SignalJudgedV1]:
    close_at = {r["open_time"] + timedelta(minutes=5): r["close"] for r in candles}
    out = [j for j in recorded() if j.direction != "NEUTRAL"]
    start = datetime(2021, 11, 15, 2, 0, tzinfo=UTC)
    for k in range(40):
        at = start + timedelta(hours=3 * k)
        verdict, direction = (
            ("CONFIRM", "LONG" if k % 4 == 0 else "SHORT") if k % 2 == 0 else ("SKIP", "LONG")
        )
        base = real_judged(verdict, direction, symbol="XRPUSDT", price=close_at[at], nth=k)
        sid = f"research-{k}"
        out.append(
            base.model_copy(update={"event_id": f"ev-{sid}", "signal_id": sid, "observed_at": at})
        )
    return out


def _ranks(xs: list[float]) -> list[float]:
    order = sorted(range(len(xs)), key=xs.__getitem__)
    ranks = [0.0] * len(xs)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and xs[order[j + 1]] == xs[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def _spearman(xs: list[float], ys: list[float]) -> float:
    return statistics.correlation(_ranks(xs), _ranks(ys))


async def test_factor_information_and_judge_lift_on_tracked_outcomes(
    database_url: str, shared_data: Path
) -> None:
    candles = xrp_candle_rows(shared_data)
    signals = _signals(candles)
    engine = create_engine(DatabaseSettings(database_url=database_url))
    sessions = create_sessionmaker(engine)
    try:
        async with session_scope(sessions) as s:
            await repo.store_candles(s, candles)
            await repo.store_signals(s, signals, HORIZONS, timedelta(0))
        cfg = OutcomesSettings(
            outcomes_settle_s=0, outcomes_candle_timeframes="5m", outcomes_batch_size=500
        )
        tracker = Tracker(cfg, sessions, None, clock=lambda: LATER)
        while await tracker.evaluate_batch():
            pass
        async with session_scope(sessions) as s:
            rows = (
                (await s.execute(select(SignalOutcome).where(SignalOutcome.status == "completed")))
                .scalars()
                .all()
            )
    finally:
        await engine.dispose()
    by_id = {j.signal_id: j for j in signals}
    four = [r for r in rows if r.horizon == "4h"]
    assert len(four) > 60

    async with gateway(database_url) as client:
        q = {"horizon": "4h", "since": SINCE}
        r = await client.get("/analytics/signal-research", params=q)
        assert r.status_code == 200, r.text
        body = r.json()
        invoked = await client.post("/invoke", json={"operation": "signal_research", "args": q})
        assert invoked.json()["result"] == body
        every = (await client.get("/analytics/signal-research", params={"since": SINCE})).json()
        recent = (await client.get("/analytics/signal-research", params={"horizon": "4h"})).json()
        week = (
            await client.get("/analytics/signal-research", params={"horizon": "4h", "days": 2})
        ).json()
        doc = (await client.get("/openapi.json")).json()
    # the default window is the 30 days up to the newest outcome (a replayed 2021 week too)
    newest = max(o.entry_at for o in rows)
    assert recent["since"] == (newest - timedelta(days=30)).isoformat().replace("+00:00", "Z")
    assert recent["horizons"] == body["horizons"]
    assert week["horizons"][0]["outcomes"] == sum(
        o.entry_at >= newest - timedelta(days=2) for o in four
    )

    assert [h["horizon"] for h in every["horizons"]] == ["1h", "4h", "24h"]
    (h4,) = body["horizons"]
    assert h4["outcomes"] == len(four) and h4["truncated"] is False
    assert h4["block"] >= 1

    # factor information, recomputed from the events' sub-scores and the stored P&L
    by_factor = {f["factor"]: f for f in h4["factors"]}
    assert set(by_factor) == set(FACTOR_NAMES)
    for name in FACTOR_NAMES:
        pairs = []
        for o in four:
            f = next(f for f in by_id[o.signal_id].factors if f.name == name)
            if f.status == "ok":
                side = 1 if o.direction == "LONG" else -1
                pairs.append((f.score, o.pnl_pct * side))
        got = by_factor[name]
        assert got["outcomes"] == len(pairs)
        if not pairs:
            assert got["meanScore"] is None and got["ic"] is None
            continue
        assert got["meanScore"] == pytest.approx(statistics.fmean(p[0] for p in pairs))
        if len(pairs) >= 10 and len({p[0] for p in pairs}) > 1:
            ic = _spearman([p[0] for p in pairs], [p[1] for p in pairs])
            assert got["ic"] == pytest.approx(ic, abs=1e-9)
            assert got["icLow"] <= got["ic"] <= got["icHigh"]
            assert got["informative"] == (got["icLow"] > 0 or got["icHigh"] < 0)
    # the never-recorded inputs have no data at all
    assert by_factor["liquidations"]["outcomes"] < len(four)

    # the judge's lift, recomputed from the stored rows
    confirm = [o.pnl_pct for o in four if o.verdict == "CONFIRM"]
    skip = [o.pnl_pct for o in four if o.verdict == "SKIP"]
    allp = [o.pnl_pct for o in four]
    cs, ca = h4["confirmMinusSkip"], h4["confirmMinusAll"]
    assert (cs["confirm"], cs["other"]) == (len(confirm), len(skip)) == (20, 20)
    assert ca["other"] == len(allp)
    assert cs["pnlPct"] == pytest.approx(statistics.fmean(confirm) - statistics.fmean(skip))
    assert ca["pnlPct"] == pytest.approx(statistics.fmean(confirm) - statistics.fmean(allp))
    wins = {v: [o.result == "WIN" for o in four if o.verdict == v] for v in ("CONFIRM", "SKIP")}
    assert cs["winRatePts"] == pytest.approx(
        100 * (statistics.fmean(wins["CONFIRM"]) - statistics.fmean(wins["SKIP"]))
    )
    for lift in (cs, ca):
        assert lift["pnlLowPct"] <= lift["pnlPct"] <= lift["pnlHighPct"]
        assert lift["winRateLowPts"] <= lift["winRatePts"] <= lift["winRateHighPts"]

    # documented in the OpenAPI document with its response schema
    op = doc["paths"]["/analytics/signal-research"]["get"]
    assert op["operationId"] == "signalResearch"
    ref = op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    schema = doc["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert {"since", "limit", "method", "horizons"} <= set(schema["properties"])


async def test_empty_database_answers_with_nulls_not_errors(database_url: str) -> None:
    async with gateway(database_url) as client:
        r = await client.get("/analytics/signal-research", params={"horizon": "1h"})
        assert r.status_code == 200, r.text
        (h1,) = r.json()["horizons"]
        assert h1["outcomes"] == 0 and h1["block"] is None
        assert all(f["ic"] is None and f["meanScore"] is None for f in h1["factors"])
        assert h1["confirmMinusSkip"]["pnlPct"] is None
        bad = await client.get("/analytics/signal-research", params={"days": 0})
        assert bad.status_code == 422
