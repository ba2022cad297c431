"""Through-the-broker backtest: history on the topics, the real scorer and judge services.

The services run in this process as their own `KafkaService` classes (consumer loops,
producer, codec, commit semantics all real) against a broker: the embedded one unless
KAFKA_BOOTSTRAP_SERVERS is set. Topics get a unique prefix, so a run never touches live
topics. Judged signals are collected from `signals.judged.v1` and measured with the same
outcome code as the in-process mode.

Causality across topics: the scorer reads market-wide events (fear & greed) on its own loop,
which could run ahead of the candles. So before a global event is published, every candle
published so far must have come back judged, and the scorer's global loop must have taken
the event before the next candle goes out. Candles of one symbol share a partition, so they
stay in order on their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
import uuid
from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer, TopicPartition

from perpsignal_cli.backtesting.pipeline import (
    DEFAULT_HORIZONS,
    History,
    Progress,
    RunResult,
    engine_config,
    evaluate_outcomes,
)
from perpsignal_common.embedded import EmbeddedKafka
from perpsignal_common.events.base import Event
from perpsignal_common.events.market import CandleClosedV1
from perpsignal_common.events.registry import decode_as
from perpsignal_common.events.signals import SignalJudgedV1
from perpsignal_common.events.topics import Topic
from perpsignal_common.kafka.producer import EventProducer
from perpsignal_common.settings import KafkaSettings
from perpsignal_domain.scoring.config import EngineConfig
from perpsignal_domain.scoring.engine import ScoringEngine
from perpsignal_judge.service import JudgeService
from perpsignal_judge.settings import JudgeSettings
from perpsignal_scorer.service import ScorerService
from perpsignal_scorer.settings import ScorerSettings


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
) -> RunResult:
    """Publish `history`, let the real services score and judge it, then measure outcomes."""
    started = time.perf_counter()
    stop = stop or asyncio.Event()
    cfg = cfg or engine_config(history.primary.timeframe)
    scorer = ScorerService(
        ScorerSettings(kafka=kafka, scorer_global_warmup_s=0.5), engine=ScoringEngine(cfg)
    )
    judge = JudgeService(JudgeSettings(kafka=kafka, enable_ai_judge=False))
    services = [scorer, judge]
    halt = asyncio.Event()
    for s in services:
        await s.start()
    tasks = [asyncio.create_task(s.run(halt)) for s in services]
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
        halt.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        for s in services:
            await s.close()
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
    scorer: ScorerService,
    candles: int,
    timeout_s: float,
) -> None:
    if ev.topic != Topic.MARKET_GLOBAL:
        await producer.publish(ev)
        return
    # a market-wide value: let the candles before it finish, then make sure it was taken
    await producer.wait_delivered()
    if not await collector.wait_for(candles, timeout_s):
        raise TimeoutError(f"scorer/judge did not keep up ({len(collector.judged)}/{candles})")
    before = scorer.global_loop.processed
    await producer.publish(ev, wait=True)
    deadline = time.monotonic() + timeout_s
    while scorer.global_loop.processed <= before:
        if time.monotonic() > deadline:
            raise TimeoutError("the scorer did not take a fear & greed event")
        await asyncio.sleep(0.005)


def run_through_broker(
    history: History,
    *,
    horizons: Sequence[str] = DEFAULT_HORIZONS,
    progress: bool | None = None,
) -> RunResult:
    """CLI entry: embedded broker (unless KAFKA_BOOTSTRAP_SERVERS), unique topic prefix."""
    env = KafkaSettings()
    import os

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
            history, kafka, horizons=horizons, progress=progress, stop=stop
        )

    try:
        return asyncio.run(run())
    finally:
        if broker is not None:
            broker.stop()
