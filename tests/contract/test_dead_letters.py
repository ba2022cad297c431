"""Dead letters, held to schemas/asyncapi.json as the operators' tools read them.

Each consumed topic's `<topic>.dlq` is a channel of the published document. A real record of
the topic (tests/contract/wire_events.py), poisoned, goes through the real consumer loop and
its real dead-letter publisher; the dead letter it writes must carry the headers the channel's
message documents (an independent JSON Schema validator, ECMA-262 patterns, formats checked),
on the documented address, with the original bytes. So do the dead letters that cannot copy
the original: too large for the DLQ topic, and unreadable by the client.
"""

from __future__ import annotations

import asyncio
import json
import re
from functools import cache
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import MessageSizeTooLargeError
from aiokafka.structs import ConsumerRecord
from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError

from perpsignal_common.errors import DependencyUnavailable, PoisonMessage
from perpsignal_common.events.base import Event
from perpsignal_common.events.topics import TOPIC_SPECS, all_topic_specs, dlq_topic
from perpsignal_common.kafka.consumer import ConsumerLoop, ConsumerOptions
from perpsignal_common.kafka.dlq import DeadLetterPublisher
from perpsignal_common.kafka.unreadable import placeholder
from perpsignal_common.retry import RetryPolicy
from perpsignal_common.settings import KafkaSettings
from tests.contract.wire_events import real_events, record
from tests.helpers import REPO
from tests.poison_helpers import poison

FORMATS = Draft202012Validator.FORMAT_CHECKER
DEAD_LETTERED = [s for s in TOPIC_SPECS if s.dead_letters]


def _ecma_pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Any:
    if validator.is_type(instance, "string") and not re.search(pattern, instance, re.ASCII):
        yield ValidationError(f"{instance!r} does not match {pattern!r} (ECMA-262 reading)")


EcmaValidator = validators.extend(Draft202012Validator, {"pattern": _ecma_pattern})


@cache
def _asyncapi() -> dict[str, Any]:
    return json.loads((REPO / "schemas" / "asyncapi.json").read_text())  # type: ignore[no-any-return]


def _message(address: str) -> dict[str, Any]:
    doc = _asyncapi()
    channels = [c for c in doc["channels"].values() if c["address"] == address]
    assert len(channels) == 1, f"{address} is not a channel of schemas/asyncapi.json"
    (ref,) = channels[0]["messages"].values()
    return doc["components"]["messages"][ref["$ref"].split("/")[-1]]  # type: ignore[no-any-return]


def _check(address: str, key: bytes | None, headers: list[tuple[str, bytes]]) -> dict[str, str]:
    message = _message(address)
    declared = message["headers"]
    sent = {k: v.decode() for k, v in headers}
    # every header the runtime writes is named in the document, and validates
    assert set(sent) <= set(declared["properties"]), set(sent) - set(declared["properties"])
    errors = [e.message for e in EcmaValidator(declared, format_checker=FORMATS).iter_errors(sent)]
    assert not errors, (address, errors[:5])
    if key is not None:
        Draft202012Validator(message["bindings"]["kafka"]["key"]).validate(key.decode())
    return sent


class RecordingProducer:
    def __init__(self, refuse_first_as_too_large: bool = False) -> None:
        self.sent: list[tuple[str, bytes | None, bytes | None, list[tuple[str, bytes]]]] = []
        self._refuse = refuse_first_as_too_large

    async def wait_delivered(self, deliveries: object = None) -> None:
        return None

    async def send_raw(self, topic, key, value, headers=(), *, wait=False):  # type: ignore[no-untyped-def]
        if self._refuse:
            self._refuse = False
            raise DependencyUnavailable("too large") from MessageSizeTooLargeError()
        self.sent.append((topic, key, value, list(headers)))


@pytest.fixture(scope="module")
def origins() -> dict[str, Event]:
    """One real event per topic, built outside any event loop."""
    out: dict[str, Event] = {}
    for events in real_events().values():
        for event in events:
            out.setdefault(type(event).topic, event)
    return out


def test_every_dead_letter_topic_is_a_channel_with_its_topic_settings() -> None:
    doc = _asyncapi()
    specs = {s.name: s for s in all_topic_specs(with_dlq=True)}
    for spec in DEAD_LETTERED:
        dlq = specs[dlq_topic(spec.name)]
        (channel,) = [c for c in doc["channels"].values() if c["address"] == dlq.name]
        kafka = channel["bindings"]["kafka"]
        assert kafka["topic"] == dlq.name and kafka["partitions"] == dlq.partitions
        assert kafka["topicConfiguration"]["retention.ms"] == dlq.retention_ms
        assert _message(dlq.name)["headers"]["properties"]["dlq.topic"]["const"] == spec.name
    addresses = {c["address"] for c in doc["channels"].values()}
    assert addresses == {s.name for s in all_topic_specs(with_dlq=True)}


@pytest.mark.parametrize("spec", DEAD_LETTERED, ids=lambda s: s.name)
async def test_a_real_poison_record_is_dead_lettered_as_the_document_says(
    spec: Any, origins: dict[str, Event]
) -> None:
    event = origins.get(spec.name)
    assert event is not None, f"no real event of {spec.name}"
    key, clean, origin = record(event)
    value = poison(clean, "observed_at", "NaN")  # no time: the loop cannot decode it

    async def handler(event: Event, record: Any) -> None:
        raise AssertionError("a poison record reached the handler")

    producer = RecordingProducer()
    loop = ConsumerLoop(
        kafka=KafkaSettings(),
        service="contract",
        handler=handler,
        producer=producer,  # type: ignore[arg-type]
        options=ConsumerOptions(
            group_id="contract-group", topics=[spec.name], retry=RetryPolicy(max_attempts=2)
        ),
    )

    class Committer:
        async def commit(self, offsets: Any) -> None:
            return None

    loop._consumer = Committer()  # type: ignore[assignment]
    tp = TopicPartition(spec.name, 0)
    poisoned = ConsumerRecord(
        spec.name, 0, 41, 1_712_707_200_000, 0, key, value, None, 0, 0, list(origin.items())
    )
    await asyncio.wait_for(loop.process_batch({tp: [poisoned]}, asyncio.Event()), 10)
    ((topic, sent_key, sent_value, headers),) = producer.sent
    assert topic == dlq_topic(spec.name)
    assert (sent_key, sent_value) == (key, value)  # the original, byte for byte
    sent = _check(topic, sent_key, headers)
    assert sent["dlq.topic"] == spec.name and sent["dlq.offset"] == "41"
    assert sent["dlq.group"] == "contract-group"
    assert sent["dlq.error_type"] == PoisonMessage.__name__
    for name, value_bytes in origin.items():
        assert sent[name] == value_bytes.decode()  # the original's own headers ride along


async def test_dead_letters_that_cannot_copy_the_original_match_the_document(
    origins: dict[str, Event],
) -> None:
    spec = DEAD_LETTERED[0]
    event = origins.get(spec.name)
    assert event is not None
    key, value, origin = record(event)
    big = ConsumerRecord(spec.name, 2, 7, 0, 0, key, value, None, 0, 0, list(origin.items()))
    # too large for the DLQ topic: sent without the value, dlq.dropped says so
    producer = RecordingProducer(refuse_first_as_too_large=True)
    publisher = DeadLetterPublisher(producer, service="contract", group="g")  # type: ignore[arg-type]
    await publisher.publish(big, PoisonMessage("bad"), attempts=1)
    ((topic, sent_key, sent_value, headers),) = producer.sent
    sent = _check(topic, sent_key, headers)
    assert sent_value in (None, b"") and sent["dlq.dropped"] == f"value={len(value)}"
    # a record the client cannot unpack: only its position, an empty value, "unreadable"
    producer = RecordingProducer()
    publisher = DeadLetterPublisher(producer, service="contract", group="g")  # type: ignore[arg-type]
    where = placeholder(TopicPartition(spec.name, 1), 99)
    await publisher.publish(where, PoisonMessage("unreadable"), attempts=0, unreadable=True)
    ((topic, sent_key, sent_value, headers),) = producer.sent
    sent = _check(topic, sent_key, headers)
    assert sent["dlq.dropped"] == "unreadable" and sent["dlq.timestamp"] == "-1"
    assert sent.get("dlq.null_value") == "true" or sent_value == b""
