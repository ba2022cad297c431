"""`perpsignal up`'s data-folder lock, address file and restart policy, as an operator sees them."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from perpsignal_cli.stack import (
    AlreadyRunning,
    Stack,
    Supervised,
    acquire_lock,
    use_running_stack,
)
from perpsignal_common import embedded
from perpsignal_common.embedded import free_port


def test_a_held_folder_is_refused_naming_the_holder_and_a_released_one_is_free(
    tmp_path: Path,
) -> None:
    (tmp_path / "stack.json").write_text(
        json.dumps({"pid": os.getpid(), "gateway_url": "http://127.0.0.1:8123"})
    )
    first = acquire_lock(tmp_path)
    with pytest.raises(AlreadyRunning) as refused:
        acquire_lock(tmp_path)
    assert f"pid {os.getpid()}" in str(refused.value)
    assert "http://127.0.0.1:8123" in str(refused.value)
    assert "\n" not in str(refused.value)
    first.close()  # what the kernel does when the holder dies, however it dies
    acquire_lock(tmp_path).close()


def test_commands_use_a_live_stack_unless_a_setting_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    info = {
        "pid": os.getpid(),
        "kafka_bootstrap": "127.0.0.1:40001",
        "database_url": "postgresql+asyncpg://postgres@127.0.0.1:40002/perpsignal",
    }
    (tmp_path / "stack.json").write_text(json.dumps(info))
    # set, then unset: monkeypatch then removes what use_running_stack writes (a leaked
    # address would point later tests of this process at a broker that does not exist)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "")
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.setenv("DATABASE_URL", "postgresql://mine@db/x")
    assert use_running_stack(tmp_path) is not None
    assert os.environ["KAFKA_BOOTSTRAP_SERVERS"] == "127.0.0.1:40001"
    assert os.environ["DATABASE_URL"] == "postgresql://mine@db/x"


def test_a_stack_file_of_a_dead_up_is_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    (tmp_path / "stack.json").write_text(
        json.dumps({"pid": gone.pid, "kafka_bootstrap": "127.0.0.1:40001"})
    )
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    assert use_running_stack(tmp_path) is None
    assert "KAFKA_BOOTSTRAP_SERVERS" not in os.environ


def _exiting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int) -> Supervised:
    """A supervised 'service' whose process exits at once with `code`."""
    script = tmp_path / "svc.sh"
    script.write_text(f"#!/bin/sh\nexit {code}\n")
    script.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(script))
    svc = Supervised("scorer", dict(os.environ), tmp_path / "scorer.log")
    svc.start()
    assert svc.proc is not None
    svc.proc.wait(10)
    return svc


def test_a_crashed_service_is_restarted_with_growing_backoff_one_line_each(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = Stack(tmp_path)
    stack.services["scorer"] = svc = _exiting(tmp_path, monkeypatch, 1)
    stack.supervise_once(tmp_path)
    assert capsys.readouterr().out.splitlines() == [
        f"[perpsignal] scorer exited with code 1; restarting in 1s (see {tmp_path}/scorer.log)"
    ]
    assert svc.restart_at is not None
    svc.restart_at = 0  # the backoff has passed
    stack.supervise_once(tmp_path)
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and out[0].startswith("[perpsignal] scorer restarted (pid ")
    assert json.loads((tmp_path / "stack.json").read_text())["services"]["scorer"] == svc.proc.pid
    svc.proc.wait(10)
    stack.supervise_once(tmp_path)
    assert "restarting in 2s" in capsys.readouterr().out


def test_a_service_with_an_invalid_setting_is_not_restarted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = Stack(tmp_path)
    stack.services["scorer"] = svc = _exiting(tmp_path, monkeypatch, 2)
    stack.supervise_once(tmp_path)
    stack.supervise_once(tmp_path)
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and "invalid configuration); not restarting it" in out[0]
    assert svc.restart_at is None


def test_a_restart_moves_off_an_ops_port_another_program_took(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = Stack(tmp_path)
    stack.services["scorer"] = svc = _exiting(tmp_path, monkeypatch, 3)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        svc.env["OPS_PORT"] = str(taken)
        stack.supervise_once(tmp_path)
        svc.restart_at = 0
        stack.supervise_once(tmp_path)
    out = capsys.readouterr().out
    assert f"scorer's ops port {taken} was taken by another program; now " in out
    assert int(svc.env["OPS_PORT"]) != taken
    assert json.loads((tmp_path / "stack.json").read_text())["ops_ports"]["scorer"] == int(
        svc.env["OPS_PORT"]
    )


def test_a_database_that_does_not_answer_stops_up_with_one_line_and_no_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from perpsignal_cli.main import main as cli_main
    from perpsignal_common.embedded import free_port

    closed = free_port()  # nothing listens there
    monkeypatch.setenv("DATABASE_URL", f"postgresql://app:s3cret-pw@127.0.0.1:{closed}/app")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", f"127.0.0.1:{closed}")  # not reached
    stop_signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    handlers = {sig: signal.getsignal(sig) for sig in stop_signals}
    try:
        with pytest.raises(SystemExit) as exit_:
            cli_main(["up", "--port", "0", "--data-dir", str(tmp_path)])
    finally:  # `up` takes Ctrl-C, SIGTERM and SIGHUP over; give them back to pytest
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    assert exit_.value.code == 1
    out = capsys.readouterr()
    text = out.out + out.err
    assert "Traceback" not in text and "s3cret-pw" not in text
    failed = [line for line in text.splitlines() if "failed" in line]
    assert len(failed) == 1, text
    assert failed[0].startswith(
        f"[perpsignal] applying database migrations to postgresql://app:***@127.0.0.1:{closed}/app"
        " failed: ConnectionRefusedError: "
    )
    assert failed[0].endswith("(check DATABASE_URL)")  # the address came from that setting
    assert not (tmp_path / "stack.json").exists()


def test_a_second_up_waits_for_the_port_choice_lock_and_ctrl_c_ends_the_wait(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from perpsignal_cli import stack

    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))  # a lock of this test's own
    said: list[str] = []
    first = stack.hold_port_choice(said.append)
    assert first is not None
    started = time.monotonic()
    assert stack.hold_port_choice(said.append, stopping=lambda: True) is None
    assert time.monotonic() - started < 5  # Ctrl-C does not wait out PORT_LOCK_WAIT_S
    assert said == ["waiting for another perpsignal up to bind its ports..."]
    first.close()  # the first stack's ports are bound: the next one goes on at once
    second = stack.hold_port_choice(said.append)
    assert second is not None
    second.close()


_HEALTH_SERVER = """
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b'{"status":"ok"}')
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


def _health_server(port: int) -> subprocess.Popen[bytes]:
    """A process answering 200 on every path of `port` (any program's /healthz)."""
    proc = subprocess.Popen([sys.executable, "-c", _HEALTH_SERVER, str(port)])
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("health server did not listen")


def test_the_stack_is_up_only_when_its_own_gateway_answers_on_the_gateway_port(
    tmp_path: Path,
) -> None:
    """Another program answering /healthz on the gateway's port (it took the port before the
    gateway bound it) must not get the stack announced: the CI run at 31e2a1a printed "stack
    is up" with a worker's ops server at the gateway URL, and every REST call got 404."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    stack = Stack(tmp_path)
    squatter = _health_server(port)
    gateway = Supervised("gateway", {"GATEWAY_PORT": str(port)}, tmp_path / "gateway.log")
    gateway.proc = subprocess.Popen(["sleep", "60"])  # still importing, not bound yet
    stack.services["gateway"] = gateway
    try:
        assert not stack.gateway_answers(url)
    finally:
        gateway.proc.kill()
        squatter.kill()
        squatter.wait(10)
    gateway.proc = _health_server(port)  # now the stack's own gateway process listens
    try:
        assert stack.gateway_answers(url)
    finally:
        gateway.proc.kill()


def test_the_stack_is_announced_where_the_system_hides_its_gateways_sockets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """psutil may be refused a process's sockets (AccessDenied: a hardened /proc, a macOS
    policy); `up` then waited for ever without saying the stack was up. The gateway's own
    answer is what can be seen: it is taken, and a dead gateway process still is not."""

    def denied(self: psutil.Process, kind: str = "inet") -> list[object]:
        raise psutil.AccessDenied(self.pid)

    monkeypatch.setattr(psutil.Process, "net_connections", denied)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    stack = Stack(tmp_path)
    gateway = Supervised("gateway", {"GATEWAY_PORT": str(port)}, tmp_path / "gateway.log")
    gateway.proc = _health_server(port)
    stack.services["gateway"] = gateway
    try:
        assert stack.gateway_answers(url)
    finally:
        gateway.proc.kill()
        gateway.proc.wait(10)
    assert not stack.gateway_answers(url)


def test_free_port_never_hands_the_same_port_out_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    """`up --port 0` draws the gateway's and each service's port before any binds: a port
    drawn twice went to two servers, and the one that bound first answered for both."""
    drawn = iter(range(20_000, 20_100))
    first = next(drawn)
    replays = iter([first, first, first])  # the random source repeats itself
    monkeypatch.setattr(
        embedded.random.SystemRandom, "randint", lambda self, a, b: next(replays, next(drawn))
    )
    monkeypatch.setattr(embedded, "_ephemeral_range", lambda: (32768, 60999))
    ports = [free_port() for _ in range(3)]
    assert len(set(ports)) == 3, ports
