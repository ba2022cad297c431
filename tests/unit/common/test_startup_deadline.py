"""A start-up that outlives STARTUP_TIMEOUT_S says so and exits as a dependency failure.

A broker address that accepts connections and never answers (a half-up load balancer, a
wrong port on a busy host) kept `start()` waiting until the start-up deadline, which then
surfaced as a bare `TimeoutError` traceback (exit 1) naming neither the deadline nor what
was waited for. Deadlines that cannot work are refused before anything starts.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator

import pytest

from perpsignal_common.embedded import free_port
from perpsignal_common.errors import ConfigError
from perpsignal_common.runtime import KafkaService, Service, run_service
from perpsignal_common.settings import ServiceSettings


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A TCP address that accepts connections and never sends a byte."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    done = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not done.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue
            except OSError:
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{listener.getsockname()[1]}"
    finally:
        done.set()
        thread.join()
        for conn in held:
            conn.close()
        listener.close()


def _build() -> tuple[Service, ServiceSettings]:
    settings = ServiceSettings()
    return KafkaService("test", settings), settings


def _error_lines(err: str) -> list[dict[str, str]]:
    lines = [json.loads(x) for x in err.splitlines() if x.startswith("{")]
    return [x for x in lines if x.get("level") == "error" and "error" in x]


def test_a_start_up_past_its_deadline_exits_3_naming_the_deadline(
    silent_server: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", silent_server)
    monkeypatch.setenv("STARTUP_TIMEOUT_S", "1")
    monkeypatch.setenv("OPS_PORT", str(free_port()))
    with pytest.raises(SystemExit) as exited:
        run_service(_build)
    assert exited.value.code == 3
    [line] = _error_lines(capsys.readouterr().err)
    assert line["msg"] == "dependency unavailable; exiting"
    assert "STARTUP_TIMEOUT_S (1 s)" in line["error"]


@pytest.mark.parametrize(
    ("name", "value"), [("STARTUP_TIMEOUT_S", "0"), ("SHUTDOWN_TIMEOUT_S", "-1")]
)
def test_a_deadline_that_cannot_work_is_a_configuration_error(
    name: str, value: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exited:
        run_service(_build)
    assert exited.value.code == 2
    [line] = _error_lines(capsys.readouterr().err)
    assert line["msg"] == "invalid configuration"
    assert name in line["error"]


class _RefusedAtStart:
    """A service whose start-up finds a setting unusable (as the notifier's getMe does)."""

    name = "test"

    async def start(self) -> None:
        raise ConfigError("TELEGRAM_BOT_TOKEN is invalid or revoked")

    async def run(self, stop: asyncio.Event) -> None:
        await stop.wait()

    async def close(self) -> None:
        return None

    def is_ready(self) -> bool:
        return False


def test_a_setting_refused_during_start_up_exits_2_naming_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Found only once start-up tries it, it was a traceback and exit 1 for every service."""
    monkeypatch.setenv("OPS_PORT", str(free_port()))

    def build() -> tuple[Service, ServiceSettings]:
        settings = ServiceSettings()
        return _RefusedAtStart(), settings

    with pytest.raises(SystemExit) as exited:
        run_service(build)
    assert exited.value.code == 2
    [line] = _error_lines(capsys.readouterr().err)
    assert line["msg"] == "invalid configuration"
    assert "TELEGRAM_BOT_TOKEN" in line["error"]
