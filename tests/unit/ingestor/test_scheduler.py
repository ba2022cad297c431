"""Source loops: an unreachable vendor never stops the others; re-polls publish nothing new."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime

import pytest

from perpsignal_common.errors import DependencyUnavailable, TransientError
from perpsignal_common.events.market import FearGreedV1
from perpsignal_ingestor.publisher import Publisher
from perpsignal_ingestor.scheduler import SourceLoop
from tests.helpers import eventually


def fg(day: int) -> FearGreedV1:
    return FearGreedV1(
        event_id=f"fg{day}",
        source="t",
        symbol="fear_greed",
        observed_at=datetime(2024, 1, day, tzinfo=UTC),
        value=50,
    )


async def test_failing_source_backs_off_while_others_publish(producer) -> None:
    publisher = Publisher(producer)  # type: ignore[arg-type]
    calls = {"bad": 0, "good": 0}

    async def bad() -> list[FearGreedV1]:
        calls["bad"] += 1
        raise TransientError("vendor unreachable")

    async def good() -> list[FearGreedV1]:
        calls["good"] += 1
        return [fg(min(calls["good"], 28))]

    loops = [
        SourceLoop("bad", 0.02, bad, publisher, min_backoff_s=0.01, rng=random.Random(0)),
        SourceLoop("good", 0.02, good, publisher),
    ]
    stop = asyncio.Event()
    tasks = [asyncio.create_task(loop.run(stop)) for loop in loops]
    await eventually(
        lambda: calls["good"] >= 5 and calls["bad"] >= 3, timeout=10, what="both loops polling"
    )
    stop.set()
    await asyncio.gather(*tasks)
    assert loops[0].failures >= 3
    market = [e for e in producer.events if isinstance(e, FearGreedV1)]
    assert len(market) >= 5 and all(e.source == "t" for e in market)


async def test_repolled_events_are_not_republished(producer) -> None:
    publisher = Publisher(producer)  # type: ignore[arg-type]

    async def poll() -> list[FearGreedV1]:
        return [fg(1), fg(2)]

    loop = SourceLoop("fg", 60, poll, publisher)
    assert await loop.run_once() == 2
    assert await loop.run_once() == 0
    assert [e.event_id for e in producer.events] == ["fg1", "fg2"]


async def test_kafka_down_longer_than_the_grace_ends_the_loop(producer) -> None:
    producer.fail = DependencyUnavailable("broker down")
    publisher = Publisher(producer)  # type: ignore[arg-type]

    async def poll() -> list[FearGreedV1]:
        return [fg(3)]

    loop = SourceLoop("fg", 0.01, poll, publisher, min_backoff_s=0.01, dependency_grace_s=0.2)
    with pytest.raises(DependencyUnavailable):
        await asyncio.wait_for(loop.run(asyncio.Event()), 10)
    assert loop.failures >= 2  # retried within the grace before giving up
    # the unacknowledged event is not remembered: the next poll will send it again
    assert not publisher.seen("fg3")


async def test_a_short_kafka_outage_is_ridden_out_and_the_event_sent_later(producer) -> None:
    producer.fail = DependencyUnavailable("broker down")
    publisher = Publisher(producer)  # type: ignore[arg-type]

    async def poll() -> list[FearGreedV1]:
        return [fg(5)]

    stop = asyncio.Event()
    loop = SourceLoop("fg", 0.01, poll, publisher, min_backoff_s=0.01, dependency_grace_s=60)
    task = asyncio.create_task(loop.run(stop))
    for _ in range(500):  # until the loop has failed twice (bounded)
        if loop.failures >= 2:
            break
        await asyncio.sleep(0.01)
    assert loop.failures >= 2 and not task.done()
    producer.fail = None  # the broker is back
    while not publisher.seen("fg5"):
        assert not task.done(), task
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert [e.event_id for e in producer.events].count("fg5") == 1


async def test_stop_cancels_a_poll_stuck_on_a_budget(producer) -> None:
    publisher = Publisher(producer)  # type: ignore[arg-type]
    started = asyncio.Event()

    async def stuck() -> list[FearGreedV1]:
        started.set()
        await asyncio.Event().wait()  # e.g. waiting for the next weight minute
        return [fg(4)]

    stop = asyncio.Event()
    task = asyncio.create_task(SourceLoop("slow", 60, stuck, publisher).run(stop))
    await asyncio.wait_for(started.wait(), 5)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert producer.events == []
