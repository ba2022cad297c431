"""The whole platform for end-to-end tests: six service processes, fakes for every outside party.

`Stack` starts, on one background event loop (so they answer whatever the test is doing):

* `TapeVendors`: every market-data vendor (HTTP + WebSocket), Binance candles and positioning
  statistics replayed from real history on the wall clock (see `tape.py`);
* `FakeTelegram`: the Bot API the notifier talks to;
* `RecordedOpenAI` (its own thread): the OpenAI endpoint of the LLM judge;

and then ingestor, scorer, judge, outcomes, notifier and gateway, each as its own OS process
(`python -m perpsignal_<svc>`) on the given Kafka bootstrap and database. Every knob that makes
the run fast is an ordinary setting documented in the services' READMEs: 1-minute candles,
horizons scaled by `OUTCOMES_TIME_SCALE`, short cadences, no notifier cooldown.

Fault windows are scaled by `E2E_FAULT_SCALE` (default 0.25: a 20 s outage lasts 5 s and a
minute of vendor garbage 15 s, so CI stays fast; set 1 for the issue's full windows).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import threading
import time
from collections import Counter
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import httpx

from perpsignal_common.embedded import free_port
from tests.e2e.tape import MarketTape, TapeVendors
from tests.fakes.openai import RecordedOpenAI, agreeing_verdict
from tests.fakes.telegram import DEFAULT_TOKEN, FakeTelegram
from tests.helpers import ServiceProcess

T = TypeVar("T")

SERVICES = ("ingestor", "scorer", "judge", "outcomes", "notifier", "gateway")
FAULT_SCALE = float(os.environ.get("E2E_FAULT_SCALE", "0.25"))
CHAT_IDS = (1001, 1002)
# positioning statistics: a new row every 5 s (ingestor polls every 5 s), stale after 25 s
STATS_PERIOD_MS = 5_000
STATS_STALE_S = 25
# 1h horizon = 60 s, 4h = 4 min, 24h = 24 min: with 1-minute candles every horizon spans
# whole candles, and signals from the backfill (up to ~100 min old) complete at once
TIME_SCALE = 1 / 60


def fault_window(seconds: float) -> float:
    """Return a fault window of the issue (`seconds`) scaled by E2E_FAULT_SCALE."""
    return max(2.0, seconds * FAULT_SCALE)


class BackgroundLoop:
    """An asyncio loop on its own thread: fakes keep serving while a test blocks."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        """Run `coro` on the loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


class Stack:
    """Fakes plus the six services; see the module docstring."""

    def __init__(
        self,
        *,
        shared_data: Path,
        kafka_env: dict[str, str],
        database_url: str,
        log_dir: Path,
        symbols: list[str],
        listed: list[str] | None = None,
        extra_env: dict[str, dict[str, str]] | None = None,
    ) -> None:
        self.shared_data = shared_data
        self.kafka_env = kafka_env
        self.database_url = database_url
        self.log_dir = log_dir
        self.symbols = symbols
        self.extra_env = extra_env or {}
        self.bg = BackgroundLoop()
        self.tape = MarketTape(shared_data / "market", stats_period_ms=STATS_PERIOD_MS)
        # listed on the (fake) exchange; only `symbols` are watched, the rest are on demand
        self.vendors = TapeVendors(shared_data, self.tape, symbols=listed or symbols)
        self.telegram = FakeTelegram()
        self.openai = RecordedOpenAI(shared_data, agreeing_verdict)
        self.gateway_port = free_port()
        self.procs: dict[str, ServiceProcess] = {}
        self._ws_tasks: list[Any] = []
        self.ops_ports: dict[str, int] = {}
        self.starts: Counter[str] = Counter()
        self.start_times: dict[str, float] = {}
        self.first_kill: dict[str, float] = {}
        self.ws_inbox: list[dict[str, Any]] = []
        self.started_at = time.time()

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.gateway_port}"

    def env_for(self, name: str) -> dict[str, str]:
        """Return the environment of service `name`."""
        env = {
            **self.kafka_env,
            "DATABASE_URL": self.database_url,
            "ENVIRONMENT": "test",
            "LOG_FORMAT": "json",
            "OPS_HOST": "127.0.0.1",
            "OPS_PORT": str(self.ops_ports.setdefault(name, free_port())),
            "SHUTDOWN_TIMEOUT_S": "10",
        }
        if name == "ingestor":
            env |= self.vendors.env() | {
                "INGESTOR_SYMBOLS": ",".join(self.symbols),
                "INGESTOR_TIMEFRAMES": "1m",
                "INGESTOR_ENABLED_SOURCES": "binance,binance_ratios,binance_stream,fear_greed",
                "INGESTOR_BINANCE_CADENCE_S": "3",
                "INGESTOR_BINANCE_WEIGHT_BUDGET": "2400",
                "INGESTOR_RATIO_CADENCE_S": "5",
                "INGESTOR_FEAR_GREED_CADENCE_S": "5",
                "INGESTOR_HTTP_TIMEOUT_S": "3",
            }
        elif name == "scorer":
            env |= {
                "SCORER_PRIMARY_TIMEFRAME": "1m",
                "SCORER_SMC_TIMEFRAMES": "1m,5m,15m",
                "SCORER_GLOBAL_WARMUP_S": "2",
                # a narrower neutral band: more LONG/SHORT signals, so a short run exercises
                # the judge's LLM path, alerts and outcome tracking on every symbol
                "SCORER_LONG_THRESHOLD": "55",
                "SCORER_SHORT_THRESHOLD": "45",
                # positioning statistics step every STATS_PERIOD_MS here (not 5 min), so a
                # vendor fault longer than this makes them stale within the test
                "SCORER_STALE_S": f"long_short={STATS_STALE_S},oi_trend={STATS_STALE_S}",
                # levels are ranked against the symbol's own history: a short run has only a
                # few observations, so rank from the second one (default 12)
                "SCORER_NEUTRAL_MIN_HISTORY": "2",
                # the vendor-fault test needs statistics stale after STATS_STALE_S: the
                # configured limit alone (the 3x-own-cadence rule has its unit tests)
                "SCORER_STALE_CADENCE_MULTIPLE": "0",
            }
        elif name == "judge":
            env |= {
                "ENABLE_AI_JUDGE": "true",
                "OPENAI_API_KEY": "sk-e2e-fake",
                "OPENAI_BASE_URL": self.openai.base_url,
                "AI_JUDGE_TIMEOUT": "5",
                "JUDGE_LLM_CALLS_PER_MINUTE": "100000",
                "JUDGE_LLM_TOKENS_PER_MINUTE": "0",
            }
        elif name == "outcomes":
            env |= {
                "OUTCOMES_TIME_SCALE": str(TIME_SCALE),
                "OUTCOMES_SETTLE_S": "3",
                "OUTCOMES_RETRY_S": "3",
                "OUTCOMES_POLL_INTERVAL_S": "0.5",
                "OUTCOMES_CANDLE_TIMEFRAMES": "1m",
                "OUTCOMES_KLINES_TIMEFRAME": "1m",
                "OUTCOMES_BINANCE_BASE_URL": self.vendors.url("binance"),
            }
        elif name == "notifier":
            env |= {
                "TELEGRAM_BOT_TOKEN": DEFAULT_TOKEN,
                "TELEGRAM_API_BASE": self.telegram.base_url,
                "TELEGRAM_CHAT_IDS": ",".join(str(c) for c in CHAT_IDS),
                "NOTIFIER_COOLDOWN_S": "0",
                "NOTIFIER_RATE_PRIVATE_PER_S": "1000",
                "NOTIFIER_RATE_GLOBAL_PER_S": "1000",
                "NOTIFIER_POLL_COMMANDS": "false",
                # a timed-out send is retried, and the fake may have recorded the first one:
                # on a busy machine a 10 s default turned slow answers into duplicates
                "TELEGRAM_REQUEST_TIMEOUT_S": "60",
            }
        elif name == "gateway":
            env |= self.vendors.env() | {
                "GATEWAY_HOST": "127.0.0.1",
                "GATEWAY_PORT": str(self.gateway_port),
                "GATEWAY_API_KEYS": "e2e-key",
                "GATEWAY_RATE_LIMIT": "100000/minute",
                "GATEWAY_PUBLIC_RATE_LIMIT": "100000/minute",  # every page loads ~15 assets
                "GATEWAY_ON_DEMAND_WAIT_S": "1",
                "GATEWAY_JUDGE_TIMEOUT_S": "5",
            }
        return env | self.extra_env.get(name, {})

    # lifecycle -------------------------------------------------------------------------
    def start_fakes(self) -> None:
        self.bg.run(self.vendors.start())
        self.bg.run(self.telegram.start())
        self.openai.__enter__()

    def start(self, name: str) -> ServiceProcess:
        """Start (or restart) service `name` as its own process."""
        proc = ServiceProcess(name, self.env_for(name), self.log_dir)
        self.procs[name] = proc.start()
        self.starts[name] += 1
        self.start_times[name] = time.time()
        return proc

    def start_all(self, names: tuple[str, ...] = SERVICES) -> None:
        for name in names:
            self.start(name)

    def kill(self, name: str) -> None:
        """SIGKILL: no drain, no commit."""
        self.first_kill.setdefault(name, time.time())
        self.procs[name].kill()

    def restart(self, name: str) -> ServiceProcess:
        self.kill(name)
        return self.start(name)

    def alive(self) -> dict[str, bool]:
        return {n: p.proc is not None and p.proc.poll() is None for n, p in self.procs.items()}

    def stop(self) -> None:
        for task in self._ws_tasks:
            task.cancel()
        for proc in self.procs.values():
            with contextlib.suppress(Exception):
                proc.terminate(15)
            proc.kill()
        with contextlib.suppress(Exception):
            self.bg.run(self.vendors.stop(), timeout=10)
        with contextlib.suppress(Exception):
            self.bg.run(self.telegram.stop(), timeout=10)
        with contextlib.suppress(Exception):
            self.openai.__exit__(None, None, None)
        self.bg.close()

    # observations ------------------------------------------------------------------------
    def logs(self, name: str) -> str:
        return self.procs[name].logs()

    def log_records(self, name: str) -> list[dict[str, Any]]:
        """Return the JSON log lines of service `name` (other lines are skipped)."""
        out = []
        for line in self.logs(name).splitlines():
            with contextlib.suppress(ValueError):
                rec = json.loads(line)
                if isinstance(rec, dict):
                    out.append(rec)
        return out

    def open_ws(self, query: str = "") -> list[dict[str, Any]]:
        """Connect a `/ws/signals` client on the background loop; return its growing inbox."""
        inbox: list[dict[str, Any]] = []
        url = f"{self.ws_url}/ws/signals?apiKey=e2e-key{query}"
        ready = threading.Event()

        async def listen() -> None:
            import websockets

            while True:  # reconnect after a gateway restart, like a dashboard does
                with contextlib.suppress(OSError, websockets.ConnectionClosed):
                    async with websockets.connect(url, open_timeout=5) as ws:
                        async for raw in ws:
                            msg = json.loads(raw)
                            msg["_received_at"] = time.time()
                            inbox.append(msg)
                            if msg.get("type") == "subscribed":
                                ready.set()
                await asyncio.sleep(0.2)

        self._ws_tasks.append(asyncio.run_coroutine_threadsafe(listen(), self.bg.loop))
        assert ready.wait(15), "no subscription ack on /ws/signals"
        return inbox

    def metric(self, name: str, metric: str, labels: str = "") -> float | None:
        """Return one sample of service `name`'s /metrics (None when absent or unreachable)."""
        try:
            text = httpx.get(f"http://127.0.0.1:{self.ops_ports[name]}/metrics", timeout=3).text
        except httpx.HTTPError:
            return None
        for line in text.splitlines():
            if line.startswith(metric) and labels in line:
                return float(line.rsplit(" ", 1)[1])
        return None

    def metric_total(self, name: str, metric: str, labels: str = "") -> float:
        """Return the sum of service `name`'s samples of `metric` with `labels` (0 when none)."""
        try:
            text = httpx.get(f"http://127.0.0.1:{self.ops_ports[name]}/metrics", timeout=3).text
        except httpx.HTTPError:
            return 0.0
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith(metric + "{") and labels in line
        )

    def telegram_texts(self, chat_id: int) -> list[str]:
        return [m.text for m in self.telegram.messages if m.chat_id == chat_id]

    def started(self, name: str, since: int = 0) -> bool:
        """Return True once service `name` logged that it started (after byte `since`)."""
        text = self.logs(name)[since:]
        marker = "Application startup complete" if name == "gateway" else '"service started"'
        return marker in text

    def wait_started(
        self,
        names: tuple[str, ...] | None = None,
        timeout: float = 240,
        since: dict[str, int] | None = None,
    ) -> None:
        """Wait until every named service is up (imports are slow on a busy 2-core box)."""
        names = names or tuple(self.procs)
        since = since or {}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            dead = [n for n in names if not self.alive().get(n)]
            assert not dead, {n: self.logs(n)[-3000:] for n in dead}
            if all(self.started(n, since.get(n, 0)) for n in names):
                return
            time.sleep(0.2)
        late = [n for n in names if not self.started(n, since.get(n, 0))]
        raise AssertionError(f"services not started in {timeout}s: {late}")

    def restart_and_wait(self, name: str, timeout: float = 240) -> None:
        """SIGKILL `name`, start it again and wait until it is up."""
        self.kill(name)
        mark = len(self.logs(name))
        self.start(name)
        self.wait_started((name,), timeout, {name: mark})
