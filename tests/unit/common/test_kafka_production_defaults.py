"""Apache Kafka production defaults: idempotent producers where the broker is Apache Kafka,
off where it is the embedded broker; every topic's cleanup policy as created."""

from __future__ import annotations

import pytest

from perpsignal_common.events.topics import Topic, all_topic_specs
from perpsignal_common.settings import ServiceSettings

ENV_NAMES = ("ENVIRONMENT", "KAFKA_IDEMPOTENT_PRODUCER", "KAFKA_SECURITY_PROTOCOL")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(
    ("environment", "expected"),
    [("dev", False), ("test", False), ("staging", True), ("prod", True)],
)
def test_idempotence_follows_the_environment_when_unset(
    monkeypatch: pytest.MonkeyPatch, environment: str, expected: bool
) -> None:
    monkeypatch.setenv("ENVIRONMENT", environment)
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SSL")
    kafka = ServiceSettings().kafka
    assert kafka.idempotent_producer() is expected


@pytest.mark.parametrize(("raw", "expected"), [("true", True), ("false", False)])
def test_an_explicit_setting_wins(
    monkeypatch: pytest.MonkeyPatch, raw: str, expected: bool
) -> None:
    monkeypatch.setenv("ENVIRONMENT", "prod")
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("KAFKA_IDEMPOTENT_PRODUCER", raw)
    assert ServiceSettings().kafka.idempotent_producer() is expected
    monkeypatch.setenv("ENVIRONMENT", "dev")
    assert ServiceSettings().kafka.idempotent_producer() is expected


def test_only_the_snapshot_topic_is_compacted_and_it_has_no_dead_letters() -> None:
    specs = {s.name: s for s in all_topic_specs()}
    compacted = {name for name, s in specs.items() if s.compacted}
    assert compacted == {Topic.GATEWAY_SNAPSHOT}
    snapshot = specs[Topic.GATEWAY_SNAPSHOT]
    assert snapshot.partitions == 1  # the dump marker must follow its records
    assert snapshot.configs()["cleanup.policy"] == "compact"
    assert "segment.ms" in snapshot.configs()  # else the active segment is never compacted
    assert Topic.GATEWAY_SNAPSHOT + ".dlq" not in specs
    assert specs[Topic.MARKET].configs()["cleanup.policy"] == "delete"


def test_an_empty_value_as_in_env_example_means_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_IDEMPOTENT_PRODUCER", "")
    monkeypatch.setenv("ENVIRONMENT", "prod")
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SSL")
    assert ServiceSettings().kafka.idempotent_producer() is True
