"""`perpsignal demo` as a newcomer runs it, offline: judged signals with trade plans, outcomes
measured on the replayed prices, Telegram previews, a replay banner, and Ctrl-C leaves nothing.
"""

from __future__ import annotations

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

from tests.helpers import REPO

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _get(url: str) -> dict | None:
    try:
        r = httpx.get(url, timeout=5)
    except httpx.HTTPError:
        return None
    return r.json() if r.status_code == 200 else None


def _wait(what: str, check, deadline: float, proc: subprocess.Popen, out: Path):
    while True:
        assert proc.poll() is None, f"demo exited while waiting for {what}:\n{out.read_text()}"
        got = check()
        if got:
            return got
        assert time.monotonic() < deadline, f"no {what} in time:\n{out.read_text()[-3000:]}"
        time.sleep(1)


def test_demo_serves_judged_signals_outcomes_and_previews_then_stops_cleanly(
    tmp_path: Path,
) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "TELEGRAM_BOT_TOKEN")
    }
    # vendor hosts made unreachable: the demo must not need the network
    env.update({"PYTHONUNBUFFERED": "1", "HTTPS_PROXY": "http://127.0.0.1:9", "NO_PROXY": ""})
    data_dir = tmp_path / "demo"
    out = tmp_path / "demo.out"
    cmd = [sys.executable, "-m", "perpsignal_cli", "demo", "--port", "0", "--data-dir"]
    with open(out, "wb") as fh:
        proc = subprocess.Popen(
            [*cmd, str(data_dir)],
            cwd=REPO,
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    started = time.monotonic()
    try:
        text = _wait(
            "ready",
            lambda: "replay started" in out.read_text() and out.read_text(),
            started + 120,
            proc,
            out,
        )
        url = re.search(r"gateway:\s+(http://\S+)", text).group(1)  # type: ignore[union-attr]
        stack = json.loads((data_dir / "stack.json").read_text())
        pids = [*stack["services"].values(), stack["kafka_pid"], stack["postgres_pid"]]
        children = _descendants(proc.pid)

        def directional() -> dict | None:
            body = _get(f"{url}/signals")
            for sig in (body or {}).get("signals", []):
                stop = sig["aiVerdictLayer"]["volatilityMetrics"].get("stopLossPrice")
                if sig["signal"] in ("LONG", "SHORT") and stop:
                    return sig
            return None

        # the acceptance bar: a LONG or SHORT judged signal with a stop loss within 180 s
        sig = _wait("LONG/SHORT signal", directional, started + 180, proc, out)
        assert sig["symbol"] == "XRPUSDT" and sig["timestamp"].startswith("2021-11-")

        health = _get(f"{url}/health/services")
        assert (
            health is not None
            and "replay of recorded real market data" in (health["demo"]["message"])
        )
        assert health["sources"] == []  # vendor polling is off: no outage noise
        ui = _get(f"{url}/ui/status")
        assert ui is not None and ui["demo"]["speed"] > 1

        # outcomes are measured on the replayed price path (market time, not the wall clock)
        def measured() -> dict | None:
            body = _get(f"{url}/analytics/outcomes-history?symbol=XRPUSDT&horizon=1h&limit=500")
            rows = [o for o in (body or {}).get("items", []) if o["status"] == "completed"]
            return rows[0] if rows else None

        outcome = _wait("a measured outcome", measured, started + 300, proc, out)
        assert outcome["exitPrice"] > 0

        # the Telegram-format preview, without a bot token
        assert "Telegram alert preview" in out.read_text()
        preview = (data_dir / "alerts-preview.jsonl").read_text().splitlines()[0]
        assert "<b>" in json.loads(preview)["html"]

        proc.send_signal(signal.SIGINT)
        assert proc.wait(90) == 0, out.read_text()[-2000:]
        leftovers = [c for c in children if c.is_running() and c.status() != "zombie"]
        assert leftovers == [], [c.cmdline() for c in leftovers]
        assert not [p for p in pids if p and psutil.pid_exists(p)]
        assert not (data_dir / "stack.json").exists()
    finally:
        if proc.poll() is None:
            proc.kill()
        for c in _descendants(proc.pid):
            c.kill()
