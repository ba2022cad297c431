"""`SignalWriter`: concurrent handlers share one INSERT; each store is committed when it returns."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from perpsignal_common.db.engine import session_scope
from perpsignal_common.db.models.outcomes import OutcomeSignal, SignalOutcome
from perpsignal_common.events.signals import FactorScore
from perpsignal_outcomes import repository as repo
from tests.integration.outcomes.conftest import judged

pytestmark = pytest.mark.db

HORIZONS = {"1h": 3600, "4h": 14_400, "24h": 86_400}


async def test_concurrent_stores_are_committed_and_idempotent(sessions, database_url) -> None:
    writer = repo.SignalWriter(
        database_url.replace("+asyncpg", ""), HORIZONS, timedelta(seconds=30)
    )
    events = [judged(signal_id=f"w{i:03d}") for i in range(40)]
    try:
        await asyncio.gather(*(writer.store(e) for e in events))
        async with session_scope(sessions) as s:
            assert await s.scalar(select(func.count()).select_from(OutcomeSignal)) == 40
            assert await s.scalar(select(func.count()).select_from(SignalOutcome)) == 120
        # a redelivery (here concurrent with new events) creates no second row
        await asyncio.gather(*(writer.store(e) for e in [*events[:5], judged(signal_id="x")]))
        async with session_scope(sessions) as s:
            assert await s.scalar(select(func.count()).select_from(OutcomeSignal)) == 41
            assert await s.scalar(select(func.count()).select_from(SignalOutcome)) == 123
    finally:
        await writer.close()


async def test_a_bad_signal_fails_alone(sessions, database_url) -> None:
    writer = repo.SignalWriter(database_url.replace("+asyncpg", ""), HORIZONS, timedelta(0))
    good = [judged(signal_id=f"g{i}") for i in range(3)]
    # a timeframe wider than its column (the contract refuses it; model_copy does not check):
    # a stand-in for any error the database raises for one signal
    bad = judged(signal_id="bad").model_copy(update={"timeframe": "9" * 20})
    try:
        await writer.store(good[0])
        results = await asyncio.gather(
            *(writer.store(e) for e in [good[1], bad, good[2]]), return_exceptions=True
        )
        assert results[0] is None and results[2] is None
        assert isinstance(results[1], Exception)
        async with session_scope(sessions) as s:
            ids = set(await s.scalars(select(OutcomeSignal.signal_id)))
        assert ids == {"g0", "g1", "g2"}
    finally:
        await writer.close()


async def test_a_new_signal_under_a_stored_event_id_is_a_conflict_not_an_error(
    sessions, database_url
) -> None:
    # its due rows used to be inserted for a signal that was not (event ids are unique): the
    # foreign key failed the statement, a database error retried and then dead-lettered
    writer = repo.SignalWriter(database_url.replace("+asyncpg", ""), HORIZONS, timedelta(0))
    first, other = judged(signal_id="a1"), judged(signal_id="b1")
    stored_reuse = judged(signal_id="a2").model_copy(update={"event_id": first.event_id})
    batch_reuse = judged(signal_id="b2").model_copy(update={"event_id": other.event_id})
    try:
        assert await writer.store(first) is None
        # one already stored, one in the same batch as the signal whose event id it reuses
        results = await asyncio.gather(
            *(writer.store(e) for e in [stored_reuse, other, batch_reuse]),
            return_exceptions=True,
        )
        assert results[1] is None
        for result, (kept, reused) in zip(
            (results[0], results[2]), [("a1", "a2"), ("b1", "b2")], strict=True
        ):
            assert isinstance(result, str), result
            assert f"under signal {kept!r}" in result and f"signal {reused!r}" in result, result
            assert "reused an event id" in result, result
        async with session_scope(sessions) as s:
            ids = set(await s.scalars(select(OutcomeSignal.signal_id)))
            due = set(await s.scalars(select(SignalOutcome.signal_id)))
        assert ids == due == {"a1", "b1"}
    finally:
        await writer.close()


async def test_stored_rows_are_the_signal_and_its_due_rows(sessions, database_url) -> None:
    # the statement derives the due rows itself: they must be exactly `outcome_rows`
    settle = timedelta(seconds=30)
    # factors hand-built on purpose: inputs of every JSON type (str, bool, None) and a missing
    # factor, more than the scorer's typed numeric inputs give, must survive the writer's path
    ev = judged(signal_id="p1", stop=1.15, target=1.25, verdict="WAIT", judge="llm").model_copy(
        update={
            "factors": (
                FactorScore(
                    name="funding",
                    score=61.5,
                    weight=15,
                    contribution=1.725,
                    inputs={"rate": 0.0001, "venue": "binance", "fresh": True, "gap": None},
                ),
                FactorScore(name="social", score=50, weight=5, contribution=0, status="missing"),
            )
        }
    )
    writer = repo.SignalWriter(database_url.replace("+asyncpg", ""), HORIZONS, settle)
    try:
        await writer.store(ev)
    finally:
        await writer.close()
    expected = repo.signal_row(ev)
    async with session_scope(sessions) as s:
        stored = await s.get(OutcomeSignal, "p1")
        due = (await s.scalars(select(SignalOutcome).where(SignalOutcome.signal_id == "p1"))).all()
    assert stored is not None
    assert {c: getattr(stored, c) for c in expected} == expected
    want = {r["horizon"]: r for r in repo.outcome_rows(expected, HORIZONS, settle)}
    got = {r.horizon: {c: getattr(r, c) for c in want["1h"]} for r in due}
    assert got == want
    assert {r.status for r in due} == {"pending"}


async def test_a_nul_character_in_free_text_does_not_lose_the_signal(
    sessions, database_url
) -> None:
    # set by hand: the rule judge and the LLM judge's cleaner never emit one, another client's
    # judge may (NUL is a valid JSON string character); jsonb refuses it, and the signal with it
    ev = judged(signal_id="nul")
    factor = ev.factors[0].model_copy(update={"reason": "feed\x00 stalled"})
    layer = ev.ai_verdict_layer.model_copy(update={"ai_summary": "buy\x00 the dip \\u0000"})
    ev = ev.model_copy(update={"ai_verdict_layer": layer, "factors": (factor, *ev.factors[1:])})
    writer = repo.SignalWriter(database_url.replace("+asyncpg", ""), HORIZONS, timedelta(0))
    try:
        await writer.store(ev)  # was: UntranslatableCharacterError, retried, dead-lettered
    finally:
        await writer.close()
    async with session_scope(sessions) as s:
        stored = await s.get(OutcomeSignal, "nul")
        due = await s.scalar(
            select(func.count()).select_from(SignalOutcome).where(SignalOutcome.signal_id == "nul")
        )
    assert stored is not None and due == 3
    # the NUL became U+FFFD; an escaped backslash before "u0000" is text, kept as it was
    assert stored.verdict_layer["ai_summary"] == "buy\ufffd the dip \\u0000"
    assert stored.factors[0]["reason"] == "feed\ufffd stalled"
