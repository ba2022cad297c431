"""The judge service: signals.v1 in, signals.judged.v1 out; judge requests answered.

One consumer loop (group `judge`) reads both topics. ConsumerLoop handles different keys
(symbols, request ids) concurrently and the same key in order, so a slow LLM call delays
only its own symbol; the LLM's own semaphore bounds the calls in flight.

A verdict is not a pure function of the signal (the LLM may answer differently, or time out
into the rule fallback), so a judge killed between publishing and committing must not judge
the same signal again: on every assignment it reads back the judged ids published in the last
`JUDGE_RESUME_LOOKBACK_S` and skips those signals. Downstream (notifier, outcomes) then never
sees one judged id with two verdicts. No signal is judged before that read-back ends: the
consumer loop keeps new partitions paused until its `on_assigned` callback returns (aiokafka
otherwise hands out their records meanwhile: the intermittent double verdict CI saw).
"""

from __future__ import annotations

import logging
import time

from aiokafka import TopicPartition

from perpsignal_common.errors import DependencyUnavailable, PermanentError
from perpsignal_common.events.base import Event
from perpsignal_common.events.signals import JudgeRequestV1, SignalScoredV1
from perpsignal_common.events.topics import Topic
from perpsignal_common.kafka.consumer import ConsumerLoop, ConsumerOptions, Record
from perpsignal_common.kafka.keys import check_record_key
from perpsignal_common.kafka.recent import recent_event_ids
from perpsignal_common.runtime import KafkaService
from perpsignal_judge.codec import JudgeCodec
from perpsignal_judge.judge import Judge
from perpsignal_judge.settings import JudgeSettings

log = logging.getLogger(__name__)

GROUP = "judge"


class JudgeService(KafkaService):
    """Consume scored signals and judge requests; publish judged signals and replies."""

    def __init__(self, settings: JudgeSettings, judge: Judge | None = None) -> None:
        super().__init__("judge", settings)
        self.codec = JudgeCodec()  # the shared codec's results, each candle validated once
        self.judge = judge or Judge(settings, known_ranges=self.codec.true_ranges)
        self.settings: JudgeSettings = settings
        self._published: set[str] = set()  # judged ids already on the topic (read back)
        self.loop = ConsumerLoop(
            kafka=settings.kafka,
            service=self.name,
            options=ConsumerOptions(
                group_id=GROUP,
                topics=[Topic.SIGNALS, Topic.JUDGE_REQUESTS],
                concurrency=settings.judge_concurrency,
                handler_timeout_s=settings.judge_handler_timeout_s,
                on_assigned=self.read_back,
            ),
            handler=self.handle,
            producer=self.producer,
            decoder=self.codec.decode,
        )
        self.loops.append(self.loop)

    async def on_close(self) -> None:
        """Close the LLM client."""
        await self.judge.close()

    async def read_back(self, assigned: set[TopicPartition]) -> None:
        """Remember which judged ids reached the topic lately (a predecessor's uncommitted work)."""
        lookback = self.settings.judge_resume_lookback_s
        if lookback <= 0:
            return
        since_ms = int((time.time() - lookback) * 1000)
        try:
            self._published = await recent_event_ids(
                self.settings.kafka, Topic.SIGNALS_JUDGED, since_ms, client_id="judge-readback"
            )
        except DependencyUnavailable as exc:
            # degraded, not fatal: a redelivered signal may be judged again (same id)
            log.warning("cannot read back judged signals", extra={"error": str(exc)})
            self._published = set()

    async def handle(self, event: Event, record: Record) -> None:
        """Judge one signal or answer one request; idempotent on the input's event id."""
        # a record under another key's partition: out of its symbol's order (dead-lettered)
        check_record_key(event, record)
        if isinstance(event, SignalScoredV1):
            if self._published:
                judged_id = self.judge.judged_id(event)
                # kept, not discarded on a hit: the same signal may come again (a rebalance or
                # a re-read from the committed offsets); the set is replaced on each assignment
                if judged_id in self._published:
                    log.info(
                        "signal already judged before a restart; not judging it again",
                        extra={"event_id": event.event_id, "symbol": event.symbol},
                    )
                    return
            judged = await self.judge.judge(event)
            await self.producer.publish(judged, value=self.codec.encode(judged))
        elif isinstance(event, JudgeRequestV1):
            # exactly the reply topic: any other name (even one starting with it) would have
            # the broker create a topic per request, or write into its dead-letter topic
            if event.reply_topic != Topic.JUDGE_REPLIES:
                raise PermanentError(
                    f"reply_topic {event.reply_topic[:300]!r} is not the judge reply topic "
                    f"{Topic.JUDGE_REPLIES!r}"
                )
            reply = await self.judge.judge_request(event)
            await self.producer.publish(reply, topic=event.reply_topic)
        else:
            log.debug("ignoring event", extra={"type": event.type, "topic": record.topic})
