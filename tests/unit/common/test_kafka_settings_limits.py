"""KAFKA_* settings no client can work with stop the start-up, naming the variable.

aiokafka took a request timeout of 0, a negative fetch wait or linger, a heartbeat longer
than the session: the service started and every request timed out, the group never formed,
or nothing was said at all. A batch size of 0 failed only when the consumer started, in a
traceback that named aiokafka's parameter, not ours.
"""

from __future__ import annotations

import json

import pytest

from perpsignal_common.runtime import KafkaService, Service, run_service
from perpsignal_common.settings import ServiceSettings

BAD = [
    ("KAFKA_REQUEST_TIMEOUT_MS", "0"),
    ("KAFKA_REQUEST_TIMEOUT_MS", "-1"),
    ("KAFKA_SESSION_TIMEOUT_MS", "0"),
    ("KAFKA_HEARTBEAT_INTERVAL_MS", "-5"),
    ("KAFKA_HEARTBEAT_INTERVAL_MS", "6000"),  # not less than the 6000 ms session
    ("KAFKA_MAX_POLL_RECORDS", "0"),
    ("KAFKA_MAX_POLL_INTERVAL_MS", "0"),
    ("KAFKA_LINGER_MS", "-1"),
    ("KAFKA_FETCH_MAX_WAIT_MS", "-25"),
    ("KAFKA_TOPIC_PARTITIONS", "0"),
    ("KAFKA_BOOTSTRAP_SERVERS", " , "),
    ("KAFKA_BOOTSTRAP_SERVERS", "localhost:abc"),
    ("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092,kafka-1:99999"),
    ("KAFKA_BOOTSTRAP_SERVERS", ":9092"),
    ("KAFKA_BOOTSTRAP_SERVERS", "[::1:9092"),
    ("KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT"),  # and no KAFKA_SASL_USERNAME/PASSWORD
]


def _build() -> tuple[Service, ServiceSettings]:
    settings = ServiceSettings()
    return KafkaService("test", settings), settings


@pytest.mark.parametrize(("name", "value"), BAD)
def test_a_setting_that_cannot_work_fails_the_start_up_by_name(
    name: str, value: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exited:
        run_service(_build)
    assert exited.value.code == 2  # invalid configuration, before anything is connected
    [line] = [json.loads(x) for x in capsys.readouterr().err.splitlines() if x.startswith("{")]
    assert line["msg"] == "invalid configuration"
    assert name in line["error"], line


def test_the_defaults_and_the_test_settings_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    service, _ = _build()
    assert isinstance(service, KafkaService)
    monkeypatch.setenv("KAFKA_SESSION_TIMEOUT_MS", "2000")
    monkeypatch.setenv("KAFKA_HEARTBEAT_INTERVAL_MS", "500")
    monkeypatch.setenv("KAFKA_LINGER_MS", "0")
    monkeypatch.setenv("KAFKA_FETCH_MAX_WAIT_MS", "0")
    _build()
    # addresses a client takes: a port or not, several, a bracketed or bare IPv6 address
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka-0:9092, kafka-1,[::1]:9093,::1")
    _build()
