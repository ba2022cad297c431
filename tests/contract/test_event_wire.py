"""Kafka records of every event type, held to the published documents as a foreign client.

A Java, Go or Node consumer knows only schemas/events/*.json and schemas/asyncapi.json. So
each real record (tests/contract/wire_events.py: the real producers on recorded data) is
checked as such a client checks it: the value with an independent JSON Schema 2020-12
validator with format checking, reading regular expressions as ECMA-262 does (the dialect
JSON Schema names; Java's and Go's engines read `\\w` the same way: ASCII only), and the key
and headers against the AsyncAPI message they belong to.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from perpsignal_common.events.base import Event
from tests.contract.wire_events import all_types, real_events, record
from tests.helpers import REPO

SCHEMAS = REPO / "schemas"
FORMATS = Draft202012Validator.FORMAT_CHECKER


@cache
def _schema(event_type: str) -> dict[str, Any]:
    return json.loads((SCHEMAS / "events" / f"{event_type}.json").read_text())  # type: ignore[no-any-return]


@cache
def _asyncapi() -> dict[str, Any]:
    return json.loads((SCHEMAS / "asyncapi.json").read_text())  # type: ignore[no-any-return]


def _errors(validator: Any, instance: Any) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message[:300]}"
        for e in validator.iter_errors(instance)
    ]


def test_every_event_type_has_real_records() -> None:
    assert sorted(real_events()) == all_types()


@pytest.mark.parametrize("event_type", all_types())
def test_real_records_validate_against_the_published_schema(event_type: str) -> None:
    schema = _schema(event_type)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    python = Draft202012Validator(schema, format_checker=FORMATS)
    for event in real_events()[event_type]:
        value = json.loads(record(event)[1])
        assert not _errors(python, value), (event_type, _errors(python, value)[:5])


def _message(event: Event) -> tuple[str, dict[str, Any]]:
    doc = _asyncapi()
    name = type(event).__name__
    channel = next(c for c in doc["channels"].values() if c["address"] == type(event).topic)
    assert name in channel["messages"], f"{name} is not listed on {channel['address']}"
    return name, doc["components"]["messages"][name]


@pytest.mark.parametrize("event_type", all_types())
def test_record_key_and_headers_are_the_ones_asyncapi_promises(event_type: str) -> None:
    for event in real_events()[event_type]:
        key, _, headers = record(event)
        name, message = _message(event)
        Draft202012Validator(message["bindings"]["kafka"]["key"]).validate(key.decode())
        declared = message["headers"]
        sent = {k: v.decode() for k, v in headers.items()}
        # every header the producer writes is named in the document, with its value's schema
        assert set(sent) <= set(declared["properties"]), (
            name,
            set(sent) - set(declared["properties"]),
        )
        Draft202012Validator(declared).validate(sent)
        # and what the document requires is always there
        assert set(declared.get("required", [])) <= set(sent)
        assert {"event_type", "event_id"} <= set(declared.get("required", [])), name
