"""The judge service on the embedded broker: signals in, judged signals out, restart-safe."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from perpsignal_common.events.signals import JudgeReplyV1, JudgeRequestV1, SignalJudgedV1
from perpsignal_common.events.topics import Topic
from perpsignal_common.kafka.admin import ensure_topics
from perpsignal_common.kafka.producer import EventProducer
from perpsignal_common.settings import KafkaSettings
from perpsignal_judge.service import JudgeService
from perpsignal_judge.settings import JudgeSettings
from tests.fakes.openai import AGREEING_SUMMARY, RecordedOpenAI, agreeing_verdict
from tests.helpers import InLoop, TopicReader, eventually
from tests.unit.judge.builders import T0, load_candles, signal

pytestmark = pytest.mark.kafka

SYMBOLS = ("XRPUSDT", "BTCUSDT", "ETHUSDT")


class Running(InLoop[JudgeService]):
    """A JudgeService running in this event loop."""

    def __init__(self, kafka: KafkaSettings, **settings: Any) -> None:
        super().__init__(JudgeService(JudgeSettings(kafka=kafka, judge_concurrency=8, **settings)))


async def test_signals_in_judged_out_and_restart_safe(
    kafka_settings: KafkaSettings, shared_data: Path
) -> None:
    candles = load_candles(shared_data)
    await ensure_topics(kafka_settings)
    producer = EventProducer(kafka_settings, "test")
    await producer.start()
    first = [
        signal(symbol=s, seq=i, candles=candles[i : i + 60], factors={"momentum": 70.0})
        for i in range(4)
        for s in SYMBOLS
    ]
    second = [
        signal(symbol=s, seq=i, candles=candles[i : i + 60], factors={"momentum": 70.0})
        for i in range(4, 8)
        for s in SYMBOLS
    ]
    try:
        async with TopicReader(kafka_settings, Topic.SIGNALS_JUDGED) as reader:
            await producer.publish_many(first)
            async with Running(kafka_settings):
                await reader.wait_for(len(first))
            # while the judge is down, more signals arrive; a new process picks them up
            await producer.publish_many(second)
            async with Running(kafka_settings):

                async def all_judged() -> bool:
                    await reader.poll()
                    ids = {e.causation_id for e in reader.events()}
                    return ids >= {s.event_id for s in first + second}

                await eventually(all_judged, timeout=40, what="every signal judged")
            events = [e for e in reader.events() if isinstance(e, SignalJudgedV1)]
    finally:
        await producer.stop()

    by_cause: dict[str, set[str]] = {}
    for e in events:
        by_cause.setdefault(e.causation_id or "", set()).add(e.event_id)
    # one judged id per signal, even when a redelivery produced it twice
    assert all(len(ids) == 1 for ids in by_cause.values())
    assert set(by_cause) == {s.event_id for s in first + second}
    # per-symbol order is kept on the output topic
    for sym in SYMBOLS:
        seqs = [e.observed_at for e in events if e.symbol == sym]
        firsts = list(dict.fromkeys(seqs))
        assert firsts == sorted(firsts)
    sample = events[0].ai_verdict_layer
    assert sample.judge == "rules" and sample.volatility_metrics.stop_loss_price is not None


async def test_a_reasoning_model_judges_the_signals_on_the_topic(
    kafka_settings: KafkaSettings, shared_data: Path
) -> None:
    """OPENAI_MODEL=o4-mini: the API refuses temperature 0 from a reasoning model, so every
    judged signal used to be the rules' (`api_error`). Against the recorded OpenAI envelope,
    refusing as the API does, each one is now the model's."""
    candles = load_candles(shared_data)
    signals = [
        signal(symbol=s, seq=0, candles=candles[:60], factors={"momentum": 70.0}) for s in SYMBOLS
    ]
    await ensure_topics(kafka_settings)
    producer = EventProducer(kafka_settings, "test")
    await producer.start()
    try:
        with RecordedOpenAI(shared_data, agreeing_verdict) as fake:
            llm = {
                "enable_ai_judge": True,
                "openai_api_key": "sk-test",
                "openai_base_url": fake.base_url,
                "openai_model": "o4-mini",
            }
            async with (
                TopicReader(kafka_settings, Topic.SIGNALS_JUDGED) as reader,
                Running(kafka_settings, **llm),
            ):
                await producer.publish_many(signals)
                await reader.wait_for(len(signals))
            sent = list(fake.requests)
    finally:
        await producer.stop()
    layers = [e.ai_verdict_layer for e in reader.events() if isinstance(e, SignalJudgedV1)]
    assert len(layers) == len(signals)
    for layer in layers:
        assert (layer.judge, layer.fallback_reason, layer.model) == ("llm", None, "o4-mini")
        assert layer.ai_summary == AGREEING_SUMMARY
    assert len(sent) == len(signals)  # no refused request first
    assert all("temperature" not in r for r in sent)


async def test_judge_request_gets_a_reply(kafka_settings: KafkaSettings, shared_data: Path) -> None:
    ctx = signal(candles=load_candles(shared_data), factors={"momentum": 70.0})
    req = JudgeRequestV1(
        event_id="req-int-1",
        source="gateway",
        symbol="XRPUSDT",
        observed_at=T0,
        correlation_id="corr-int-1",
        direction="SHORT",
        signal=ctx,
    )
    await ensure_topics(kafka_settings)
    producer = EventProducer(kafka_settings, "test")
    await producer.start()
    try:
        async with TopicReader(kafka_settings, Topic.JUDGE_REPLIES) as reader:
            async with Running(kafka_settings):
                await producer.publish(req, wait=True)
                await reader.wait_for(1)
            reply = reader.events()[0]
    finally:
        await producer.stop()
    assert isinstance(reply, JudgeReplyV1) and reply.correlation_id == "corr-int-1"
    assert reply.judged is not None and reply.judged.direction == "SHORT"
    plan = reply.judged.ai_verdict_layer.volatility_metrics
    assert plan.stop_loss_price is not None and plan.stop_loss_price > ctx.price


@pytest.mark.parametrize(
    ("lookback_s", "read_back_delay_s"),
    [(900.0, 0.0), (900.0, 1.5), (0.0, 0.0)],
    ids=["read back", "slow read back", "no read back"],
)
async def test_restarted_judge_does_not_rejudge_what_its_predecessor_published(
    kafka_settings: KafkaSettings,
    shared_data: Path,
    monkeypatch: pytest.MonkeyPatch,
    lookback_s: float,
    read_back_delay_s: float,
) -> None:
    """A judge killed after publishing but before committing: its successor gets the signals
    again. The predecessor's verdict (an LLM answer, say) is already on the topic, so the
    successor must not publish a second, possibly different verdict under the same id."""
    from perpsignal_judge import service as judge_service
    from perpsignal_judge.judge import Judge

    real_read_back = judge_service.recent_event_ids

    async def slow_read_back(*args: Any, **kwargs: Any) -> set[str]:
        # aiokafka hands out an assignment's records while the assignment callback (this
        # read-back) still runs: a slow one must still hold the redelivered signals back
        await asyncio.sleep(read_back_delay_s)
        return await real_read_back(*args, **kwargs)

    monkeypatch.setattr(judge_service, "recent_event_ids", slow_read_back)
    candles = load_candles(shared_data)
    signals = [
        signal(symbol="XRPUSDT", seq=i, candles=candles[i : i + 60], factors={"momentum": 70.0})
        for i in range(4)
    ]
    judge = Judge(JudgeSettings(kafka=kafka_settings))
    earlier = []
    for s in signals[:2]:  # what the killed predecessor published (and never committed)
        j = await judge.judge(s)
        layer = j.ai_verdict_layer.model_copy(update={"ai_summary": "predecessor's verdict"})
        earlier.append(j.model_copy(update={"ai_verdict_layer": layer}))
    await ensure_topics(kafka_settings)
    producer = EventProducer(kafka_settings, "test")
    await producer.start()
    try:
        await producer.publish_many(signals)
        await producer.publish_many(earlier)
        async with TopicReader(kafka_settings, Topic.SIGNALS_JUDGED) as reader:
            settings = JudgeSettings(kafka=kafka_settings, judge_resume_lookback_s=lookback_s)
            service = Running(kafka_settings)
            service.service = JudgeService(settings)
            async with service:

                async def all_judged() -> bool:
                    await reader.poll()
                    return {e.causation_id for e in reader.events()} >= {
                        s.event_id for s in signals
                    }

                await eventually(all_judged, timeout=40, what="every signal judged")
                await asyncio.sleep(0.5)  # a second verdict, if any, would arrive by now
                await reader.poll()
            events = [e for e in reader.events() if isinstance(e, SignalJudgedV1)]
    finally:
        await producer.stop()
    summaries: dict[str, list[str]] = {}
    for e in events:
        summaries.setdefault(e.event_id, []).append(e.ai_verdict_layer.ai_summary)
    for j in earlier:
        if lookback_s:  # read back: the predecessor's verdict stands alone
            assert summaries[j.event_id] == ["predecessor's verdict"]
        else:  # switched off: judged again, the same id now carries two verdicts
            assert summaries[j.event_id][0] == "predecessor's verdict"
            assert len(summaries[j.event_id]) == 2
    for s in signals[2:]:
        assert len(summaries[judge.judged_id(s)]) == 1
