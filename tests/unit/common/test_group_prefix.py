"""Consumer groups carry the topic prefix: deployments (and tests) sharing a broker under
different prefixes must not share a group. The service loops joined a fixed group (`scorer`,
`outcomes`, ...) whatever the prefix, so two deployments rebalanced together, and a replica
one test had SIGKILLed was still a member when the next test's service joined."""

from __future__ import annotations

from typing import Any

import pytest

from perpsignal_common.kafka import rebalance
from perpsignal_common.kafka.consumer import ConsumerLoop, ConsumerOptions
from perpsignal_common.kafka.producer import EventProducer
from perpsignal_common.settings import KafkaSettings


class _Consumer:
    """Stands in for aiokafka's consumer: records how the loop made it."""

    made: list[dict[str, Any]] = []

    def __init__(self, *topics: str, **kwargs: Any) -> None:
        self.made.append(kwargs)

    async def start(self) -> None:
        return None

    def subscribe(self, topics: list[str], listener: object) -> None:
        return None

    def assign(self, parts: object) -> None:
        return None

    async def seek_to_beginning(self, *parts: object) -> None:
        return None


async def _no_partitions(*_: object) -> set[int]:
    return set()


async def _handler(event: object, record: object) -> None:
    return None


@pytest.mark.parametrize("assign_all", [False, True])
async def test_a_loops_group_is_prefixed_like_its_topics(
    monkeypatch: pytest.MonkeyPatch, assign_all: bool
) -> None:
    monkeypatch.setattr(rebalance, "AIOKafkaConsumer", _Consumer)
    monkeypatch.setattr(rebalance, "partitions_for", _no_partitions)
    _Consumer.made.clear()
    kafka = KafkaSettings(kafka_topic_prefix="staging.")
    loop = ConsumerLoop(
        kafka=kafka,
        service="scorer",
        options=ConsumerOptions(
            group_id="scorer", topics=["perpsignal.market.v1"], assign_all=assign_all
        ),
        handler=_handler,
        producer=EventProducer(kafka, "scorer"),
    )
    await loop.start()
    # a fan-in loop (assign_all) reads every partition without a group
    assert _Consumer.made[-1]["group_id"] == (None if assign_all else "staging.scorer")
    assert kafka.group("scorer") == "staging.scorer"
