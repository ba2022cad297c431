"""Two outcomes processes on one database: every due row evaluated exactly once, even when one
process is SIGKILLed mid-way; every completed outcome is published."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from perpsignal_common.db.engine import session_scope
from perpsignal_common.db.models.outcomes import OutcomeSignal, SignalOutcome
from perpsignal_common.embedded import free_port
from perpsignal_common.events.signals import OutcomeEvaluatedV1
from perpsignal_common.events.topics import Topic
from perpsignal_common.kafka.admin import ensure_topics
from perpsignal_common.kafka.producer import EventProducer
from perpsignal_outcomes import repository as repo
from perpsignal_outcomes.tracker import outcome_event_id
from tests.helpers import ServiceProcess, TopicReader, eventually
from tests.integration.outcomes.conftest import judged, xrp_candle_rows

pytestmark = [pytest.mark.db, pytest.mark.kafka]

SIGNALS = 300  # x 3 horizons = 900 due rows, entries 10 min apart


async def count(sessions, *where) -> int:
    async with session_scope(sessions) as s:
        return int(
            await s.scalar(select(func.count()).select_from(SignalOutcome).where(*where)) or 0
        )


async def test_two_processes_evaluate_each_row_once_and_survive_a_kill(
    kafka_settings, kafka_env, database_url, sessions, shared_data: Path, tmp_path: Path
) -> None:
    # candles go straight to the table (the stream path is covered in test_service.py): a
    # replay of hundreds of candles through one partition would dominate this test's time
    async with session_scope(sessions) as s:
        await repo.store_candles(s, xrp_candle_rows(shared_data))
    await ensure_topics(kafka_settings)
    producer = EventProducer(kafka_settings, "test")
    await producer.start()
    start = datetime(2021, 11, 15, 0, 5, tzinfo=UTC)
    try:
        events = [
            judged(
                observed_at=start + i * timedelta(minutes=10),
                direction="LONG" if i % 2 else "SHORT",
            )
            for i in range(SIGNALS)
        ]
        for ev in events:
            await producer.publish(ev)
        await producer.wait_delivered()
    finally:
        await producer.stop()

    env = {
        **kafka_env,
        "DATABASE_URL": database_url,
        "OUTCOMES_KLINES_FALLBACK": "false",
        "OUTCOMES_SETTLE_S": "0",
        "OUTCOMES_RETRY_S": "0.3",
        "OUTCOMES_POLL_INTERVAL_S": "0.05",
        "OUTCOMES_BATCH_SIZE": "5",
        "LOG_LEVEL": "WARNING",
    }
    a = ServiceProcess("outcomes", {**env, "OPS_PORT": str(free_port())}, tmp_path).start()
    b = ServiceProcess("outcomes", {**env, "OPS_PORT": str(free_port())}, tmp_path / "b")
    (tmp_path / "b").mkdir()
    b.start()
    total = SIGNALS * 3
    try:
        done_at_kill = await eventually(
            lambda: count(sessions, SignalOutcome.status == "completed"),
            timeout=60,
            interval=0.02,
            what="first completed evaluation",
        )
        a.kill()
        assert done_at_kill < total, "the kill came too late to test anything"

        async def all_done() -> bool:
            return await count(sessions, SignalOutcome.status == "completed") == total

        await eventually(all_done, timeout=90, interval=0.2, what=f"{total} completed rows")
        assert await count(sessions, SignalOutcome.evaluation_count != 1) == 0
        async with session_scope(sessions) as s:
            assert await s.scalar(select(func.count()).select_from(OutcomeSignal)) == SIGNALS
        await eventually(
            lambda: _unpublished_zero(sessions), timeout=30, what="every outcome published"
        )
        async with TopicReader(kafka_settings, Topic.OUTCOMES) as reader:
            await reader.wait_for(total, timeout=30)
            ids = {e.event_id for e in reader.events() if isinstance(e, OutcomeEvaluatedV1)}
        expected = {outcome_event_id(e.signal_id, h) for e in events for h in ("1h", "4h", "24h")}
        assert ids == expected
    finally:
        a.kill()
        code = b.terminate()
        assert code == 0, b.logs()[-3000:]


async def _unpublished_zero(sessions) -> bool:
    return await count(sessions, SignalOutcome.published_at.is_(None)) == 0
