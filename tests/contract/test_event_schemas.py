"""The published event contract: a schema change must come with regenerated snapshots."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from perpsignal_common.events.export import render_all
from perpsignal_common.events.registry import EVENT_CLASSES, decode, encode
from perpsignal_common.events.topics import all_topic_specs
from tests.helpers import REPO

SCHEMAS = REPO / "schemas"


@pytest.mark.parametrize("rel", sorted(render_all()))
def test_snapshot_matches_the_code(rel: str) -> None:
    path = SCHEMAS / rel
    assert path.exists(), f"{rel} is not exported: run `perpsignal schemas` (make schemas)"
    assert path.read_text() == render_all()[rel], (
        f"{rel} changed: review the contract change, then run `make schemas`"
    )


def test_no_stale_snapshot_files() -> None:
    expected = set(render_all())
    present = {str(p.relative_to(SCHEMAS)) for p in SCHEMAS.rglob("*.json")}
    assert present == expected


def test_every_event_carries_the_envelope() -> None:
    for cls in EVENT_CLASSES:
        props = json.loads(
            (SCHEMAS / "events" / f"{cls.model_fields['type'].default}.json").read_text()
        )["properties"]
        for field in (
            "event_id",
            "type",
            "schema_version",
            "source",
            "symbol",
            "observed_at",
            "produced_at",
        ):
            assert field in props, f"{cls.__name__} lacks {field}"


def test_every_topic_has_a_channel_and_known_messages() -> None:
    doc = json.loads((SCHEMAS / "asyncapi.json").read_text())
    addresses = {c["address"] for c in doc["channels"].values()}
    # every topic, and the dead-letter companion of each consumed one
    assert addresses == {s.name for s in all_topic_specs(with_dlq=True)}
    market = doc["channels"]["perpsignal_market_v1"]["messages"]
    assert "CandleClosedV1" in market and "FundingRateV1" in market


def test_round_trip_keeps_every_field() -> None:
    from perpsignal_common.events.market import FundingRateV1

    at = datetime(2024, 3, 1, 8, tzinfo=UTC)
    event = FundingRateV1(
        event_id="e1",
        source="binance",
        symbol="BTCUSDT",
        observed_at=at,
        rate=0.0001,
        mark_price=61000.5,
        next_funding_at=at,
    )
    assert decode(encode(event)) == event


def test_unknown_fields_are_ignored_by_tolerant_readers() -> None:
    from perpsignal_common.events.market import FearGreedV1

    raw = (
        b'{"event_id":"x","type":"global.fear_greed","source":"alternative_me",'
        b'"symbol":"fear_greed","observed_at":"2024-01-01T00:00:00Z",'
        b'"produced_at":"2024-01-01T00:00:01Z","value":71,"added_later":"ok"}'
    )
    event = decode(raw)
    assert isinstance(event, FearGreedV1) and event.value == 71


ASYNCAPI_TOOL = REPO / "deploy" / "tools" / "asyncapi"


def test_event_schemas_are_standalone_2020_12_documents_that_accept_real_events() -> None:
    import jsonschema

    from perpsignal_common.events.market import FundingRateV1

    ids = set()
    for rel, text in render_all().items():
        if not rel.startswith("events/"):
            continue
        schema = json.loads(text)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema", rel
        jsonschema.Draft202012Validator.check_schema(schema)
        ids.add(schema["$id"])
    assert len(ids) == len(EVENT_CLASSES)
    at = datetime(2024, 3, 1, 8, tzinfo=UTC)
    event = FundingRateV1(
        event_id="e1",
        source="binance",
        symbol="BTCUSDT",
        observed_at=at,
        rate=0.0001,
        mark_price=61000.5,
        next_funding_at=at,
    )
    schema = json.loads((SCHEMAS / "events" / f"{event.type}.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(json.loads(encode(event)))


def test_asyncapi_names_servers_both_directions_and_kafka_keys() -> None:
    doc = json.loads((SCHEMAS / "asyncapi.json").read_text())
    assert {"production", "local"} <= set(doc["servers"])
    assert doc["servers"]["production"]["protocol"] == "kafka-secure"
    for cid, channel in doc["channels"].items():
        if not channel["messages"]:
            continue
        actions = {
            op["action"]
            for op in doc["operations"].values()
            if op["channel"]["$ref"] == f"#/channels/{cid}"
        }
        assert actions == {"send", "receive"}, cid
        assert channel["bindings"]["kafka"]["topic"] == channel["address"]
    for name, message in doc["components"]["messages"].items():
        assert message["bindings"]["kafka"]["key"]["type"] == "string", name


def test_asyncapi_document_passes_the_reference_parser() -> None:
    import shutil
    import subprocess

    node = shutil.which("node")
    if node is None or not (ASYNCAPI_TOOL / "node_modules" / "@asyncapi" / "parser").is_dir():
        pytest.skip("AsyncAPI parser not installed (make install runs npm ci in deploy/tools)")
    proc = subprocess.run(
        [node, "validate.mjs", str(SCHEMAS / "asyncapi.json")],
        cwd=ASYNCAPI_TOOL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "is valid AsyncAPI" in proc.stdout
