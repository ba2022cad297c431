"""Through-the-broker backtest: history on the topics, the real scorer and judge services.

The services run as subprocesses, exactly as deployed (`python -m perpsignal_scorer`, as
`perpsignal up` starts them; the command line never imports a service package), against a
broker: the embedded one unless KAFKA_BOOTSTRAP_SERVERS is set. Topics get a unique prefix,
so a run never touches live topics. Judged signals are collected from `signals.judged.v1`
and measured with the same outcome code as the in-process mode. The children get the
backtest's engine timeframes as SCORER_* variables; every other setting comes from the
environment, as for a live service (so `--llm` is the judge service with ENABLE_AI_JUDGE).

Causality across topics: the scorer reads market-wide events (fear & greed) on its own loop,
which could run ahead of the candles. So before a global event is published, every candle
published so far must have come back judged, and the scorer must have taken the event (its
`perpsignal_consumer_messages_total` for the topic, read from its ops server's /metrics)
before the next candle goes out. Candles of one symbol share a partition, so they stay in
order on their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Sequence
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition

from perpsignal_cli.backtesting.errors import BrokerRunError
from perpsignal_cli.backtesting.pipeline import (
    DEFAULT_HORIZONS,
    History,
    Progress,
    RunResult,
    engine_config,
    evaluate_outcomes,
)
from perpsignal_common.embedded import EmbeddedKafka, free_port
from perpsignal_common.events.base import Event
from perpsignal_common.events.market import CandleClosedV1
from perpsignal_common.events.registry import decode_as
from perpsignal_common.events.signals import SignalJudgedV1
from perpsignal_common.events.topics import Topic
from perpsignal_common.kafka.producer import EventProducer
from perpsignal_common.settings import KafkaSettings
from perpsignal_domain.scoring.config import EngineConfig


class _Collector:
    """Reads judged signals from the beginning of their topic, deduplicated by event id."""

    def __init__(self, kafka: KafkaSettings) -> None:
        self.kafka = kafka
        self.topic = kafka.topic(Topic.SIGNALS_JUDGED)
        self.judged: dict[str, SignalJudgedV1] = {}
        self._consumer = AIOKafkaConsumer(
            **kafka.client_kwargs(), enable_auto_commit=False, fetch_max_wait_ms=25
        )

    async def start(self) -> None:
        await self._consumer.start()
        deadline = time.monotonic() + 30
        while not self._consumer.partitions_for_topic(self.topic):
            if time.monotonic() > deadline:
                raise TimeoutError(f"topic {self.topic} did not appear")
            await self._consumer._client.force_metadata_update()
            await asyncio.sleep(0.05)
        parts = [
            TopicPartition(self.topic, p) for p in self._consumer.partitions_for_topic(self.topic)
        ]
        self._consumer.assign(parts)
        await self._consumer.seek_to_beginning(*parts)

    async def poll(self) -> int:
        batches = await self._consumer.getmany(timeout_ms=50)
        for recs in batches.values():
            for r in recs:
                ev = decode_as(r.value or b"", SignalJudgedV1)
                self.judged[ev.event_id] = ev
        return len(self.judged)

    async def wait_for(self, n: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while await self.poll() < n:
            if time.monotonic() > deadline:
                return False
        return True

    async def stop(self) -> None:
        await self._consumer.stop()


class _ServiceProcess:
    """One service as a child process (`python -m perpsignal_<name>`) with its ops port."""

    def __init__(self, name: str, env: dict[str, str], logs: Path) -> None:
        self.name = name
        self.port = free_port()
        self.log_path = logs / f"{name}.log"
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", f"perpsignal_{name}"],
            env={**env, "OPS_HOST": "127.0.0.1", "OPS_PORT": str(self.port)},
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def _get(self, path: str) -> tuple[int, str]:
        url = f"http://127.0.0.1:{self.port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return int(resp.status), resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, ""
        except OSError:
            return 0, ""

    def check_alive(self) -> None:
        """Raise with the tail of the child's log when it has exited."""
        if self.proc.poll() is not None:
            tail = self.log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"the {self.name} service exited ({self.proc.returncode}):\n{tail}")

    async def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while (await asyncio.to_thread(self._get, "/readyz"))[0] != 200:
            self.check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError(f"the {self.name} service was not ready in {timeout_s}s")
            await asyncio.sleep(0.1)

    async def consumed(self, topic: str) -> float:
        """Return how many records of `topic` the service has finished (ok or dead-lettered)."""
        status, text = await asyncio.to_thread(self._get, "/metrics")
        if status != 200:
            self.check_alive()
            return -1.0
        total = 0.0
        for m in _CONSUMED.finditer(text):
            labels = m.group("labels")
            if f'topic="{topic}"' in labels and re.search(r'outcome="(ok|dead_lettered)"', labels):
                total += float(m.group("value"))
        return total

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self._log.close()


_CONSUMED = re.compile(
    r"^perpsignal_consumer_messages_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$", re.MULTILINE
)


def service_env(kafka: KafkaSettings, cfg: EngineConfig, *, use_llm: bool) -> dict[str, str]:
    """The children's environment: ours, the run's Kafka settings and engine timeframes."""
    env = dict(os.environ)
    for name, value in kafka.model_dump().items():
        if value is None:
            env.pop(name.upper(), None)
            continue
        plain = value.get_secret_value() if hasattr(value, "get_secret_value") else value
        env[name.upper()] = str(plain).lower() if isinstance(plain, bool) else str(plain)
    env["SCORER_PRIMARY_TIMEFRAME"] = cfg.primary_timeframe
    env["SCORER_SMC_TIMEFRAMES"] = ",".join(cfg.smc_timeframes)
    # a history is one venue's series (the importers label it `history`): let it drive its
    # symbol from the first candle, as the in-process engine does; with the service default
    # (Binance) the first SCORER_CANDLE_STALE_BARS - 1 candles would score nothing and the
    # run would wait for their signals until it timed out
    env["SCORER_PRIMARY_VENUE"] = ""
    env["SCORER_PRIMARY_VENUES"] = ""
    env["SCORER_GLOBAL_WARMUP_S"] = "0.5"
    env["ENABLE_AI_JUDGE"] = "true" if use_llm else "false"
    return env


async def run_through_broker_async(
    history: History,
    kafka: KafkaSettings,
    *,
    cfg: EngineConfig | None = None,
    horizons: Sequence[str] = DEFAULT_HORIZONS,
    band_pct: float = 0.1,
    progress: bool | None = None,
    stop: asyncio.Event | None = None,
    timeout_s: float = 120.0,
    use_llm: bool = False,
) -> RunResult:
    """Publish `history`, let the real services score and judge it, then measure outcomes."""
    started = time.perf_counter()
    stop = stop or asyncio.Event()
    cfg = cfg or engine_config(history.primary.timeframe)
    env = service_env(kafka, cfg, use_llm=use_llm)
    with tempfile.TemporaryDirectory(prefix="perpsignal-backtest-") as logs:
        services = [_ServiceProcess(n, env, Path(logs)) for n in ("scorer", "judge")]
        try:
            for s in services:
                await s.wait_ready(timeout_s)
            return await _drive(
                history,
                kafka,
                cfg,
                services[0],
                horizons,
                band_pct,
                progress,
                stop,
                timeout_s,
                started,
            )
        except (TimeoutError, RuntimeError) as exc:
            # a service that exits or falls behind is a run failure the user reads in one
            # line (the service's log tail is in the message), not a traceback
            raise BrokerRunError(str(exc)) from exc
        finally:
            await asyncio.gather(*(asyncio.to_thread(s.stop) for s in services))


async def _drive(
    history: History,
    kafka: KafkaSettings,
    cfg: EngineConfig,
    scorer: _ServiceProcess,
    horizons: Sequence[str],
    band_pct: float,
    progress: bool | None,
    stop: asyncio.Event,
    timeout_s: float,
    started: float,
) -> RunResult:
    collector = _Collector(kafka)
    producer = EventProducer(kafka, service="backtest")
    await producer.start()
    await collector.start()
    bar = Progress(len(history.events), f"backtest {history.symbol} (broker)", progress)
    candles = done = 0
    interrupted = False
    try:
        for ev in history.events:
            if stop.is_set():
                interrupted = True
                break
            await _publish(ev, producer, collector, scorer, candles, timeout_s)
            if isinstance(ev, CandleClosedV1) and ev.timeframe == cfg.primary_timeframe:
                candles += 1
            done += 1
            bar.tick()
        await producer.wait_delivered()
        if not await collector.wait_for(candles, timeout_s):
            raise TimeoutError(
                f"only {len(collector.judged)} of {candles} judged signals arrived in {timeout_s}s"
            )
    finally:
        bar.close()
        await producer.stop()
        await collector.stop()
    records = evaluate_outcomes(list(collector.judged.values()), history, horizons, band_pct)
    return RunResult(
        records, len(history.events), done, interrupted, time.perf_counter() - started, "broker"
    )


async def _publish(
    ev: Event,
    producer: EventProducer,
    collector: _Collector,
    scorer: _ServiceProcess,
    candles: int,
    timeout_s: float,
) -> None:
    if ev.topic != Topic.MARKET_GLOBAL:
        await producer.publish(ev)
        return
    # a market-wide value: let the candles before it finish, then make sure it was taken
    await producer.wait_delivered()
    if not await collector.wait_for(candles, timeout_s):
        scorer.check_alive()
        raise TimeoutError(f"scorer/judge did not keep up ({len(collector.judged)}/{candles})")
    topic = collector.kafka.topic(Topic.MARKET_GLOBAL)
    before = await scorer.consumed(topic)
    await producer.publish(ev, wait=True)
    deadline = time.monotonic() + timeout_s
    while await scorer.consumed(topic) <= before:
        if time.monotonic() > deadline:
            raise TimeoutError("the scorer did not take a fear & greed event")
        await asyncio.sleep(0.005)


def run_through_broker(
    history: History,
    *,
    horizons: Sequence[str] = DEFAULT_HORIZONS,
    progress: bool | None = None,
    use_llm: bool = False,
) -> RunResult:
    """CLI entry: embedded broker (unless KAFKA_BOOTSTRAP_SERVERS), unique topic prefix."""
    env = KafkaSettings()
    broker = None if os.environ.get("KAFKA_BOOTSTRAP_SERVERS") else EmbeddedKafka().start()
    kafka = env.model_copy(
        update={
            "kafka_bootstrap_servers": broker.bootstrap if broker else env.kafka_bootstrap_servers,
            "kafka_topic_prefix": f"{env.kafka_topic_prefix}backtest-{uuid.uuid4().hex[:8]}.",
            "kafka_topic_partitions": 1,
            "kafka_linger_ms": 1,
            "kafka_fetch_max_wait_ms": 25,
        }
    )

    async def run() -> RunResult:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGINT, stop.set)
        return await run_through_broker_async(
            history, kafka, horizons=horizons, progress=progress, stop=stop, use_llm=use_llm
        )

    try:
        return asyncio.run(run())
    finally:
        if broker is not None:
            broker.stop()
