"""`perpsignal up` supervises: killed services and a killed PostgreSQL come back and the terminal
says so; "ready" means the gateway answers; a second `up` on the same folder is refused in
one line; other commands find the running stack through its data folder's `stack.json`."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from perpsignal_cli.backtesting.eventfile import write_events
from tests.helpers import REPO, kill_group, kill_on_exit
from tests.unit.notifier.builders import judged

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


class Up:
    """A `perpsignal up` process and its terminal output."""

    def __init__(self, data_dir: Path, out: Path, env: dict[str, str]) -> None:
        self.data_dir = data_dir
        self.out = out
        self.env = env
        with open(out, "wb") as fh:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "perpsignal_cli", "up", "--port", "0"],
                cwd=REPO,
                env=env,
                stdout=fh,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.forget = kill_on_exit(lambda: kill_group(self.proc))

    def text(self) -> str:
        return self.out.read_text(errors="replace")

    def wait_for(self, needle: str, timeout: float, since: int = 0) -> str:
        deadline = time.monotonic() + timeout
        while needle not in self.text()[since:]:
            assert self.proc.poll() is None, self.text()
            assert time.monotonic() < deadline, f"no {needle!r} in:\n{self.text()}"
            time.sleep(0.1)
        return self.text()

    def info(self) -> dict[str, Any]:
        return dict(json.loads((self.data_dir / "stack.json").read_text()))


def clean_env(tmp_path: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "EMBEDDED_POSTGRES_DURABLE")
    }
    return env | {"PERPSIGNAL_DATA_DIR": str(tmp_path / "data"), "PYTHONUNBUFFERED": "1"}


def cli(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "perpsignal_cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    tmp = tmp_path_factory.mktemp("up")
    stack = Up(tmp / "data", tmp / "up.out", clean_env(tmp))
    try:
        text = stack.wait_for("ready", timeout=240)
        # "ready" is printed only once the gateway answers: it must answer right now
        url = stack.info()["gateway_url"]
        assert f"gateway:   {url}" in text
        assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200
        yield stack
    finally:
        children = _descendants(stack.proc.pid)
        if stack.proc.poll() is None:
            stack.proc.send_signal(signal.SIGINT)
            try:
                stack.proc.wait(60)
            finally:
                kill_group(stack.proc)
        stack.forget()
        left = [c for c in children if c.is_running() and c.status() != "zombie"]
        assert left == [], [c.cmdline() for c in left]
        assert not (stack.data_dir / "stack.json").exists()


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def test_stack_file_names_the_running_stack(up: Up) -> None:
    info = up.info()
    assert info["pid"] == up.proc.pid
    assert info["kafka_bootstrap"].startswith("127.0.0.1:")
    assert info["database_url"].startswith("postgresql+asyncpg://postgres@127.0.0.1:")
    assert set(info["services"]) == {
        "ingestor",
        "scorer",
        "judge",
        "outcomes",
        "notifier",
        "gateway",
    }
    assert all(psutil.pid_exists(pid) for pid in info["services"].values())


def test_a_killed_service_is_restarted_and_the_terminal_says_so(up: Up) -> None:
    old = up.info()["services"]["scorer"]
    mark = len(up.text())
    os.kill(old, signal.SIGKILL)
    text = up.wait_for("scorer restarted", timeout=30, since=mark)[mark:]
    # the backoff grows with earlier restarts of this stack, so any delay is fine here
    assert re.search(r"scorer exited with code -9; restarting in \d+s", text), text
    deadline = time.monotonic() + 10
    while up.info()["services"]["scorer"] == old:
        assert time.monotonic() < deadline, "stack.json still names the dead scorer"
        time.sleep(0.1)
    assert psutil.pid_exists(up.info()["services"]["scorer"])


def test_a_second_up_on_the_same_folder_is_refused_in_one_line(up: Up) -> None:
    logs = up.data_dir / "logs"
    before = {p.name: p.stat().st_size for p in logs.iterdir()}
    info = up.info()
    started = time.monotonic()
    second = cli(up.env, "up", "--port", "0", timeout=60)
    assert second.returncode == 1
    lines = (second.stdout + second.stderr).strip().splitlines()
    assert len(lines) == 1, lines
    assert "already running" in lines[0] and f"pid {up.proc.pid}" in lines[0]
    assert info["gateway_url"] in lines[0]
    assert time.monotonic() - started < 30  # refused before starting anything
    # the first stack is untouched: same address file, logs only grown, still answering
    assert up.info() == info
    after = {p.name: p.stat().st_size for p in logs.iterdir()}
    assert set(after) == set(before)
    assert all(after[n] >= size for n, size in before.items())
    assert httpx.get(f"{info['gateway_url']}/healthz", timeout=5).status_code == 200


def test_replay_and_export_find_the_running_stack(up: Up, tmp_path: Path) -> None:
    event = judged("BTCUSDT", minutes=7)
    file = tmp_path / "one.jsonl"
    write_events(file, [event])
    # no KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL: the default 127.0.0.1:9092 is not this broker
    replayed = cli(up.env, "replay", str(file), "--no-progress")
    assert replayed.returncode == 0, replayed.stderr
    assert "replayed 1 events" in replayed.stdout
    assert f"using the running stack (pid {up.proc.pid})" in replayed.stderr
    out = tmp_path / "history.jsonl"
    deadline = time.monotonic() + 60
    while True:  # the outcomes service stores it; export reads the stack's database
        exported = cli(up.env, "export", "--out", str(out))
        assert exported.returncode == 0, exported.stderr
        if event.signal_id in out.read_text():
            break
        assert time.monotonic() < deadline, out.read_text()
        time.sleep(1)


def test_a_killed_postgres_is_restarted(up: Up, tmp_path: Path) -> None:
    pg = up.info()["postgres_pid"]
    mark = len(up.text())
    os.kill(pg, signal.SIGKILL)
    text = up.wait_for("embedded PostgreSQL is back", timeout=90, since=mark)[mark:]
    assert "the embedded PostgreSQL died; restarting it on the same port" in text
    assert up.info()["postgres_pid"] != pg
    # the database answers again through the address file
    exported = cli(up.env, "export", "--out", str(tmp_path / "history.jsonl"))
    assert exported.returncode == 0, exported.stderr
