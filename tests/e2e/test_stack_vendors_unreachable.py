"""`perpsignal up` with every vendor unreachable (a clone without network): it says so, once.

The terminal prints one line per source that went down, the ingestor log carries one warning
per state change and no traceback, `/readyz` stays 200 but says "degraded", and a symbol the
topics never showed answers 503 with Retry-After instead of a 404 that blames the symbol.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.helpers import REPO

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

NOWHERE = "127.0.0.1:9"  # the discard port: nothing listens, connections are refused


def test_unreachable_vendors_give_one_line_each_and_honest_http_status(tmp_path: Path) -> None:
    env = {
        k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL")
    }
    env.update(
        {
            "PYTHONUNBUFFERED": "1",
            "PERPSIGNAL_DATA_DIR": str(tmp_path / "data"),
            "BINANCE_FAPI_BASE_URL": f"http://{NOWHERE}",
            "BINANCE_WS_URL": f"ws://{NOWHERE}",
            "OKX_BASE_URL": f"http://{NOWHERE}",
            "COINGECKO_BASE_URL": f"http://{NOWHERE}",
            "FEAR_GREED_URL": f"http://{NOWHERE}/fng/",
            "OUTCOMES_BINANCE_BASE_URL": f"http://{NOWHERE}",
        }
    )
    out = tmp_path / "up.out"
    with open(out, "wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "perpsignal_cli", "up", "--port", "0"],
            cwd=REPO,
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 180
        text = ""
        while not re.search(r"source binance is down since \d\d:\d\d UTC: ", text):
            assert proc.poll() is None, text
            assert time.monotonic() < deadline, text
            time.sleep(0.5)
            text = out.read_text()
        url = re.search(r"gateway:\s+(http://\S+)", text).group(1)  # type: ignore[union-attr]
        assert "Connection refused" in text or "connection attempts failed" in text

        ready = httpx.get(f"{url}/readyz", timeout=5)
        assert ready.status_code == 200 and ready.json()["status"] == "degraded"
        assert any(s.startswith("binance down") for s in ready.json()["degradedSources"])

        r = httpx.get(f"{url}/signals/BTCUSDT", timeout=30)
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] == "symbol_list_unavailable"
        assert int(r.headers["Retry-After"]) >= 1

        time.sleep(12)  # several more failed polls: still one line per source
        text = out.read_text()
        assert len(re.findall(r"source binance is down", text)) == 1
        log = (tmp_path / "data" / "logs" / "ingestor.log").read_text()
        assert "Traceback" not in log
        assert len(re.findall(r'"msg":"source binance is down', log)) == 1

        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
