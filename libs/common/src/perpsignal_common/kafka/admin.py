"""Idempotent topic creation from the topic registry."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from perpsignal_common.errors import DependencyUnavailable
from perpsignal_common.events.topics import TopicSpec, all_topic_specs
from perpsignal_common.settings import KafkaSettings

log = logging.getLogger(__name__)


async def ensure_topics(
    kafka: KafkaSettings, specs: Iterable[TopicSpec] | None = None
) -> list[str]:
    """Create the topics that do not exist yet; return the names created."""
    specs = list(specs if specs is not None else all_topic_specs())
    admin = AIOKafkaAdminClient(**kafka.client_kwargs(), client_id="perpsignal-admin")
    try:
        await admin.start()
    except KafkaError as exc:
        raise DependencyUnavailable(f"kafka admin cannot connect: {exc}") from exc
    try:
        return await _create_missing(kafka, admin, specs)
    except KafkaError as exc:  # the broker went away between connect and request
        raise DependencyUnavailable(f"kafka admin request failed: {exc!r}") from exc
    finally:
        await admin.close()


async def _create_missing(
    kafka: KafkaSettings, admin: AIOKafkaAdminClient, specs: list[TopicSpec]
) -> list[str]:
    existing = set(await admin.list_topics())
    partitions = kafka.kafka_topic_partitions
    wanted = [
        NewTopic(
            name=kafka.topic(s.name),
            # a one-partition topic relies on its total order: no override applies
            num_partitions=s.partitions if s.partitions == 1 else partitions or s.partitions,
            replication_factor=1 if kafka.kafka_bootstrap_servers.count(",") == 0 else 3,
            topic_configs=s.configs(),
        )
        for s in specs
        if kafka.topic(s.name) not in existing
    ]
    if not wanted:
        return []
    try:
        await admin.create_topics(wanted)
    except TopicAlreadyExistsError:
        log.info("topics created concurrently by another process")
    created = [t.name for t in wanted]
    log.info("topics created", extra={"topics": created})
    return created


async def describe_topics(kafka: KafkaSettings) -> dict[str, int]:
    """Return {topic: partition count} for every platform topic that exists."""
    admin = AIOKafkaAdminClient(**kafka.client_kwargs(), client_id="perpsignal-admin")
    try:
        await admin.start()
    except KafkaError as exc:
        raise DependencyUnavailable(f"kafka admin cannot connect: {exc}") from exc
    try:
        names = [kafka.topic(s.name) for s in all_topic_specs()]
        existing = set(await admin.list_topics())
        present = [n for n in names if n in existing]
        described = await admin.describe_topics(present) if present else []
        return {d["topic"]: len(d["partitions"]) for d in described}
    finally:
        await admin.close()
