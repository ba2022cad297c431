"""The published event contract: a schema change must come with regenerated snapshots."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from perpsignal_common.events.export import render_all
from perpsignal_common.events.registry import EVENT_CLASSES, decode, encode
from perpsignal_common.events.topics import TOPIC_SPECS
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
    assert addresses == {s.name for s in TOPIC_SPECS}
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
