"""What the outcomes consumer refuses of the judged signals it reads, on the real broker.

* A record whose key is not its event's symbol is dead-lettered and stores nothing: the
  consumer loop orders records per (partition, key), so such a record sits in another
  symbol's partition and lane (the scorer, judge and notifier refuse it the same way).
* First wins on a signal's ids, but a redelivery with other content under a stored id (a
  producer reused it) is made visible: a warning naming the ids, a metric and a dead letter
  with the reason. A byte-identical redelivery stays silent.
"""

from __future__ import annotations

import logging

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select

from perpsignal_common.db.engine import session_scope
from perpsignal_common.db.models.outcomes import OutcomeSignal
from perpsignal_common.embedded import free_port
from perpsignal_common.events.registry import encode
from perpsignal_common.events.signals import SignalJudgedV1
from perpsignal_common.events.topics import Topic, dlq_topic
from perpsignal_common.kafka.admin import ensure_topics
from perpsignal_common.kafka.producer import EventProducer, event_headers
from perpsignal_common.settings import DatabaseSettings, KafkaSettings, OpsSettings
from perpsignal_outcomes.service import OutcomesService
from perpsignal_outcomes.settings import OutcomesSettings
from tests.helpers import InLoop, TopicReader, eventually
from tests.integration.outcomes.conftest import judged
from tests.poison_helpers import assert_dead_lettered_as_misrouted

pytestmark = [pytest.mark.kafka, pytest.mark.db]

CONFLICTS = "perpsignal_outcomes_signal_id_conflicts_total"


class Running(InLoop[OutcomesService]):
    """An OutcomesService running in this event loop."""

    def __init__(self, kafka: KafkaSettings, database_url: str) -> None:
        super().__init__(
            OutcomesService(
                OutcomesSettings(
                    kafka=kafka,
                    database=DatabaseSettings(database_url=database_url),
                    ops=OpsSettings(ops_port=free_port()),
                    outcomes_klines_fallback=False,
                )
            )
        )

    async def stored(self) -> dict[str, str]:
        """signal id -> direction of every stored signal."""
        async with session_scope(self.service.sessions) as s:
            rows = await s.execute(select(OutcomeSignal.signal_id, OutcomeSignal.direction))
            return {r.signal_id: r.direction for r in rows}


async def _send(kafka: KafkaSettings, records: list[tuple[SignalJudgedV1, bytes | None]]) -> None:
    """Publish each signal under `key` (None: its own partition key)."""
    await ensure_topics(kafka)
    producer = EventProducer(kafka, "test")
    await producer.start()
    try:
        for event, key in records:
            await producer.send_raw(
                kafka.topic(Topic.SIGNALS_JUDGED),
                event.partition_key() if key is None else key,
                encode(event),
                event_headers(event),
                wait=True,
            )
    finally:
        await producer.stop()


async def test_a_signal_keyed_by_another_symbol_is_dead_lettered_and_not_stored(
    kafka_settings: KafkaSettings, database_url: str
) -> None:
    first, last = judged(signal_id="first"), judged(signal_id="last")
    misrouted = judged(symbol="BTCUSDT", price=65000.0, signal_id="misrouted")
    await _send(kafka_settings, [(first, None), (misrouted, b"XRPUSDT"), (last, None)])
    async with (
        Running(kafka_settings, database_url) as running,
        TopicReader(kafka_settings, dlq_topic(Topic.SIGNALS_JUDGED)) as dlq,
    ):
        letters = await dlq.wait_for(1, timeout=60)
        await eventually(lambda: running.service.loop.processed >= 2, what="both good signals")
        stored = await running.stored()

    [letter] = letters
    assert_dead_lettered_as_misrouted(letter.value, dict(letter.headers), misrouted, "XRPUSDT")
    assert set(stored) == {"first", "last"}


async def test_a_reused_id_with_other_content_is_kept_first_and_made_visible(
    kafka_settings: KafkaSettings, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    original = judged(signal_id="s1", direction="LONG")
    reused = judged(signal_id="s1", direction="SHORT")  # same signal and event ids
    assert (reused.signal_id, reused.event_id) == (original.signal_id, original.event_id)
    marker = judged(signal_id="s2")
    before = REGISTRY.get_sample_value(CONFLICTS) or 0.0
    # the identical redelivery (same bytes) comes first: it must stay silent
    await _send(kafka_settings, [(original, None), (original, None), (reused, None)])
    await _send(kafka_settings, [(marker, None)])
    async with (
        Running(kafka_settings, database_url) as running,
        TopicReader(kafka_settings, dlq_topic(Topic.SIGNALS_JUDGED)) as dlq,
    ):
        letters = await dlq.wait_for(1, timeout=60)
        await eventually(lambda: running.service.loop.processed >= 3, what="the other three")
        stored = await running.stored()

    assert stored == {"s1": "LONG", "s2": "LONG"}  # first wins
    assert [r.value for r in letters] == [encode(reused)]  # not the identical redelivery
    reason = dict(letters[0].headers)["dlq.error"].decode()
    assert "'s1'" in reason and "direction" in reason and "reused an id" in reason, reason
    assert (REGISTRY.get_sample_value(CONFLICTS) or 0.0) - before == 1
    warned = [r for r in caplog.records if "redelivered with other content" in r.getMessage()]
    assert len(warned) == 1
    assert warned[0].signal_id == "s1"  # type: ignore[attr-defined]


async def test_a_new_signal_reusing_a_stored_event_id_is_dead_lettered_at_once(
    kafka_settings: KafkaSettings, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # a new signal id under the event id of a stored signal: the signal is not stored (event
    # ids are unique), so its due rows had no signal to belong to. It was retried on the
    # foreign key error and then dead-lettered with the raw database error
    caplog.set_level(logging.WARNING)
    original = judged(signal_id="s1")
    reused = judged(signal_id="s2", direction="SHORT").model_copy(
        update={"event_id": original.event_id}
    )
    marker = judged(signal_id="s3")
    before = REGISTRY.get_sample_value(CONFLICTS) or 0.0
    await _send(kafka_settings, [(original, None), (reused, None), (marker, None)])
    async with (
        Running(kafka_settings, database_url) as running,
        TopicReader(kafka_settings, dlq_topic(Topic.SIGNALS_JUDGED)) as dlq,
    ):
        letters = await dlq.wait_for(1, timeout=60)
        await eventually(lambda: running.service.loop.processed >= 2, what="the other two")
        stored = await running.stored()

    assert stored == {"s1": "LONG", "s3": "LONG"}  # first wins, the partition went on
    assert [r.value for r in letters] == [encode(reused)]
    headers = dict(letters[0].headers)
    assert headers["dlq.error_type"] == b"PermanentError"
    assert headers["dlq.attempts"] == b"1"  # at once, not after retries
    reason = headers["dlq.error"].decode()
    assert "event id 'ev-s1'" in reason and "'s1'" in reason and "'s2'" in reason, reason
    assert "ForeignKey" not in reason and "violates" not in reason, reason
    assert (REGISTRY.get_sample_value(CONFLICTS) or 0.0) - before == 1
    warned = [r for r in caplog.records if "under a stored id" in r.getMessage()]
    assert len(warned) == 1
    assert warned[0].signal_id == "s2"  # type: ignore[attr-defined]


async def test_an_id_with_a_nul_is_dead_lettered_at_decode_naming_it(
    kafka_settings: KafkaSettings, database_url: str
) -> None:
    """A NUL in a signal id reached the database (which refuses it) and a notifier's ledger
    (retried, then dead-lettered with a raw database error, nothing sent); the contract now
    refuses it, so this consumer dead-letters it at decode, saying which field and character."""
    refused = judged(signal_id="s\x001")  # model_copy: built past the contract, as a
    marker = judged(signal_id="s2")  # foreign producer without it would
    await _send(kafka_settings, [(refused, None), (marker, None)])
    async with (
        Running(kafka_settings, database_url) as running,
        TopicReader(kafka_settings, dlq_topic(Topic.SIGNALS_JUDGED)) as dlq,
    ):
        letters = await dlq.wait_for(1, timeout=60)
        await eventually(lambda: running.service.loop.processed >= 1, what="the good signal")
        stored = await running.stored()

    assert stored == {"s2": "LONG"}
    assert [r.value for r in letters] == [encode(refused)]
    headers = dict(letters[0].headers)
    # at once, before any attempt (was: each attempt's INSERT refused, then the raw error)
    assert (headers["dlq.error_type"], headers["dlq.attempts"]) == (b"PoisonMessage", b"0")
    reason = headers["dlq.error"].decode()
    assert "signal_id" in reason and "U+0000" in reason, reason
