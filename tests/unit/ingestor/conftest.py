"""Ingestor unit fixtures: a recording stand-in for the Kafka producer, the fake vendors."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import pytest

from perpsignal_common.events.base import Event
from perpsignal_ingestor.publisher import REFUSALS
from tests.fakes.vendors import FakeVendors


class RecordingProducer:
    """Collects published events; `fail` makes the next publish raise (Kafka down)."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.fail: Exception | None = None

    async def publish(self, event: Event, **_: object) -> None:
        if self.fail is not None:
            raise self.fail
        self.events.append(event)

    async def wait_delivered(self) -> None:
        return None

    async def publish_many(self, events: Iterable[Event], **_: object) -> int:
        n = 0
        for event in events:
            await self.publish(event)
            n += 1
        return n


@pytest.fixture(autouse=True)
def _refusals_said_afresh() -> None:
    """Each test hears the first refusal of each reason (the log says it once a minute)."""
    REFUSALS.reset()


@pytest.fixture
def producer() -> RecordingProducer:
    return RecordingProducer()


@pytest.fixture
async def fake(shared_data: Path) -> AsyncIterator[FakeVendors]:
    async with FakeVendors(shared_data) as server:
        yield server
