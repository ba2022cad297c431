"""`perpsignal up` as a new user runs it: the stack comes up, answers, and Ctrl-C leaves nothing."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from perpsignal_cli.stack import SERVICES
from perpsignal_common.embedded import free_port
from tests.helpers import REPO, kill_on_exit

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _env_example() -> dict[str, str]:
    """Return the values `set -a; . ./.env.example` exports (its uncommented NAME=value lines)."""
    out = {}
    for line in (REPO / ".env.example").read_text().splitlines():
        name, sep, value = line.partition("=")
        if sep and not line.startswith("#"):
            out[name] = value
    return out


def test_up_prints_where_things_are_serves_health_and_stops_cleanly(tmp_path: Path) -> None:
    env = {
        k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL")
    }
    # a new user's `.env.example`, exported whole: its empty values (GATEWAY_SERVICE_URLS=,
    # GATEWAY_HOST=) count as unset, as in the settings classes
    env.update(_env_example())
    env.update({"PERPSIGNAL_DATA_DIR": str(tmp_path / "data"), "PYTHONUNBUFFERED": "1"})
    out_path = tmp_path / "up.out"
    with open(out_path, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "perpsignal_cli", "up", "--port", "0"],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    forget = kill_on_exit(proc.kill)  # its children die with it (parent-death signal)
    try:
        deadline = time.monotonic() + 90
        text = ""
        while "stack is up" not in text:
            assert proc.poll() is None, out_path.read_text()
            assert time.monotonic() < deadline, text
            time.sleep(0.2)
            text = out_path.read_text()
        gateway = re.search(r"gateway:\s+(http://\S+)", text)
        assert gateway, text
        assert re.search(r"kafka:\s+127\.0\.0\.1:\d+", text)
        assert re.search(r"database:\s+postgresql\+asyncpg://\S+", text)
        assert "logs:" in text
        children = _descendants(proc.pid)
        names = " ".join(" ".join(c.cmdline()) for c in children)
        for svc in ("ingestor", "scorer", "judge", "outcomes", "notifier", "gateway"):
            assert f"perpsignal_{svc}" in names, names

        url = gateway.group(1)
        health = None
        while time.monotonic() < deadline + 60:
            try:
                health = httpx.get(f"{url}/healthz", timeout=2)
                if health.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        assert health is not None and health.status_code == 200
        # the health view knows every service's ops server (an empty GATEWAY_SERVICE_URLS once
        # left it with none), and the GPT Actions document names this gateway, not port 8000
        listed = httpx.get(f"{url}/health/services", timeout=5).json()["services"]
        assert {s["name"] for s in listed} == set(SERVICES) - {"gateway"}
        gpt = httpx.get(f"{url}/openapi-gpt.json", timeout=5).json()
        assert gpt["servers"] == [{"url": url}]

        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0
        assert "stopped" in out_path.read_text()
        leftovers = [c for c in children if c.is_running() and c.status() != "zombie"]
        assert leftovers == [], [c.cmdline() for c in leftovers]
    finally:
        forget()
        if proc.poll() is None:
            proc.kill()
        for c in _descendants(proc.pid):
            c.kill()


def test_two_ups_started_at_once_each_print_their_own_gateway(tmp_path: Path) -> None:
    """Two `up`s on two data folders, started together on the same fixed ports.

    Both used to find the gateway port and the ops ports 9101-9105 free, and the loser's
    terminal printed the winner's gateway as "ready" before its own moved elsewhere.
    """
    env = {
        k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL")
    }
    env.update({"PYTHONUNBUFFERED": "1", "INGESTOR_ENABLED_SOURCES": ""})
    port = free_port()  # fixed for both, as 8000 is for two users' `make up`
    procs, outs, forgets = [], [], []
    for name in ("a", "b"):
        out_path = tmp_path / f"{name}.out"
        cmd = [sys.executable, "-m", "perpsignal_cli", "up", "--port", str(port), "--data-dir"]
        with open(out_path, "wb") as out:
            proc = subprocess.Popen(
                [*cmd, str(tmp_path / name)],
                cwd=REPO,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        procs.append(proc)
        outs.append(out_path)
        forgets.append(kill_on_exit(proc.kill))
    try:
        deadline = time.monotonic() + 150
        texts = ["", ""]
        while not all("stack is up" in t for t in texts):
            assert all(p.poll() is None for p in procs), texts
            assert time.monotonic() < deadline, texts
            time.sleep(0.3)
            texts = [o.read_text() for o in outs]
        urls = []
        ports: list[int] = []
        for name, text in zip(("a", "b"), texts, strict=True):
            assert "was taken by another program" not in text, text
            url = re.search(r"gateway:\s+(http://\S+)", text).group(1)  # type: ignore[union-attr]
            info = json.loads((tmp_path / name / "stack.json").read_text())
            assert info["gateway_url"] == url, (text, info)
            urls.append(url)
            ports.append(int(url.rsplit(":", 1)[1]))
            ports += info["ops_ports"].values()
        assert urls[0] != urls[1] and port in ports
        assert len(ports) == len(set(ports)), ports  # no port is both stacks'
        # Ctrl-C, and a closed terminal (SIGHUP), each stop a stack in order
        procs[0].send_signal(signal.SIGINT)
        procs[1].send_signal(signal.SIGHUP)
        assert [p.wait(60) for p in procs] == [0, 0]
        assert not (tmp_path / "a" / "stack.json").exists()
        assert not (tmp_path / "b" / "stack.json").exists()
    finally:
        for forget, p in zip(forgets, procs, strict=True):
            forget()
            if p.poll() is None:
                p.kill()
            for c in _descendants(p.pid):
                with contextlib.suppress(psutil.NoSuchProcess):
                    c.kill()
