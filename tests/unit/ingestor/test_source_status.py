"""Honest source status: one log line and one `source.status` event per change, no tracebacks."""

from __future__ import annotations

import asyncio
import logging
import random
from datetime import UTC, datetime

import httpx

from perpsignal_common.errors import TransientError
from perpsignal_common.events.market import FearGreedV1
from perpsignal_common.events.registry import decode, encode
from perpsignal_common.events.status import SourceStatusV1
from perpsignal_ingestor.publisher import Publisher
from perpsignal_ingestor.scheduler import SourceLoop
from tests.helpers import eventually


def fg(n: int) -> FearGreedV1:
    return FearGreedV1(
        event_id=f"fg{n}",
        source="t",
        symbol="fear_greed",
        observed_at=datetime(2024, 1, 1 + n % 27, tzinfo=UTC),
        value=50,
    )


def statuses(producer) -> list[SourceStatusV1]:
    # as a consumer decodes them off the topic
    return [
        e for e in (decode(encode(x)) for x in producer.events) if isinstance(e, SourceStatusV1)
    ]


async def test_an_outage_is_one_warning_and_one_event_per_state_change(producer, caplog) -> None:
    """up -> degraded -> down -> up: three warnings/infos over many failed polls, no traceback."""
    publisher = Publisher(producer)  # type: ignore[arg-type]
    calls = {"n": 0}
    failing = {"on": False}

    async def poll() -> list[FearGreedV1]:
        calls["n"] += 1
        if failing["on"]:
            raise TransientError("fear_greed fng: ConnectError('[Errno -3] name resolution')")
        return [fg(calls["n"])]

    loop = SourceLoop(
        "fear_greed", 0.01, poll, publisher, min_backoff_s=0.001, rng=random.Random(1)
    )
    stop = asyncio.Event()
    caplog.set_level(logging.DEBUG, logger="perpsignal_ingestor.scheduler")
    task = asyncio.create_task(loop.run(stop))
    await eventually(lambda: loop.state == "up", timeout=5, what="source up")
    failing["on"] = True
    start = calls["n"]
    await eventually(lambda: calls["n"] - start >= 12, timeout=10, what="many failed polls")
    failing["on"] = False
    await eventually(lambda: loop.state == "up" and loop.failures == 0, timeout=5, what="back up")
    stop.set()
    await task

    states = [(s.name, s.state) for s in statuses(producer)]
    assert states == [
        ("fear_greed", "up"),
        ("fear_greed", "degraded"),
        ("fear_greed", "down"),
        ("fear_greed", "up"),
    ]
    down = statuses(producer)[2]
    assert down.symbol == "source:fear_greed"
    assert down.reason is not None and "name resolution" in down.reason
    assert down.failures == 3

    records = [r for r in caplog.records if r.name == "perpsignal_ingestor.scheduler"]
    loud = [r for r in records if r.levelno >= logging.INFO]
    assert [r.getMessage().split(":")[0] for r in loud] == [
        "source fear_greed is degraded",
        "source fear_greed is down",
        "source fear_greed is up again",
    ]
    assert all(r.exc_info is None for r in records)  # no traceback per poll


async def test_a_source_that_never_came_up_is_down_at_once(producer, caplog) -> None:
    publisher = Publisher(producer)  # type: ignore[arg-type]

    async def poll() -> list[FearGreedV1]:
        raise httpx.ConnectError("[Errno -3] Temporary failure in name resolution")

    loop = SourceLoop("binance", 0.01, poll, publisher, min_backoff_s=0.001)
    stop = asyncio.Event()
    task = asyncio.create_task(loop.run(stop))
    await eventually(lambda: loop.failures >= 5, timeout=10, what="failed polls")
    stop.set()
    await task
    events = statuses(producer)
    assert [e.state for e in events] == ["down"]
    assert "Temporary failure in name resolution" in (events[0].reason or "")
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "binance is down" in warnings[0].getMessage()
