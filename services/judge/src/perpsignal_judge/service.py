"""The judge service: signals.v1 in, signals.judged.v1 out; judge requests answered.

One consumer loop (group `judge`) reads both topics. ConsumerLoop handles different keys
(symbols, request ids) concurrently and the same key in order, so a slow LLM call delays
only its own symbol; the LLM's own semaphore bounds the calls in flight.
"""

from __future__ import annotations

import logging

from perpsignal_common.errors import PermanentError
from perpsignal_common.events.base import Event
from perpsignal_common.events.signals import JudgeRequestV1, SignalScoredV1
from perpsignal_common.events.topics import Topic
from perpsignal_common.kafka.consumer import ConsumerLoop, ConsumerOptions, Record
from perpsignal_common.runtime import KafkaService
from perpsignal_judge.judge import Judge
from perpsignal_judge.settings import JudgeSettings

log = logging.getLogger(__name__)

GROUP = "judge"


class JudgeService(KafkaService):
    """Consume scored signals and judge requests; publish judged signals and replies."""

    def __init__(self, settings: JudgeSettings, judge: Judge | None = None) -> None:
        super().__init__("judge", settings)
        self.judge = judge or Judge(settings)
        self.loop = ConsumerLoop(
            kafka=settings.kafka,
            service=self.name,
            options=ConsumerOptions(
                group_id=GROUP,
                topics=[Topic.SIGNALS, Topic.JUDGE_REQUESTS],
                concurrency=settings.judge_concurrency,
                handler_timeout_s=settings.judge_handler_timeout_s,
            ),
            handler=self.handle,
            producer=self.producer,
        )
        self.loops.append(self.loop)

    async def on_close(self) -> None:
        """Close the LLM client."""
        await self.judge.close()

    async def handle(self, event: Event, record: Record) -> None:
        """Judge one signal or answer one request; idempotent on the input's event id."""
        if isinstance(event, SignalScoredV1):
            await self.producer.publish(await self.judge.judge(event))
        elif isinstance(event, JudgeRequestV1):
            if not event.reply_topic.startswith(Topic.JUDGE_REPLIES):
                raise PermanentError(
                    f"reply_topic {event.reply_topic!r} is not a judge reply topic"
                )
            reply = await self.judge.judge_request(event)
            await self.producer.publish(reply, topic=event.reply_topic)
        else:
            log.debug("ignoring event", extra={"type": event.type, "topic": record.topic})
