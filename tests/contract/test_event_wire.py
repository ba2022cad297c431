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
import re
import shutil
import subprocess
from functools import cache
from typing import Any

import pytest
from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError
from pydantic import TypeAdapter
from pydantic import ValidationError as PydanticValidationError

from perpsignal_common.events.base import Event
from perpsignal_common.events.values import (
    PUBLISHED_IDENT_PATTERN,
    PUBLISHED_SYMBOL_PATTERN,
    TEXT_PATTERN,
    Ident,
)
from tests.contract.wire_events import NON_ASCII_LISTING, all_types, real_events, record
from tests.helpers import REPO

SCHEMAS = REPO / "schemas"
FORMATS = Draft202012Validator.FORMAT_CHECKER


def _ecma_pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Any:
    """`pattern` as ECMA-262, Java and Go read it: `\\w`, `\\d`, `\\s` are ASCII classes."""
    if validator.is_type(instance, "string") and not re.search(pattern, instance, re.ASCII):
        yield ValidationError(f"{instance!r} does not match {pattern!r} (ECMA-262 reading)")


EcmaValidator = validators.extend(Draft202012Validator, {"pattern": _ecma_pattern})


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
    ecma = EcmaValidator(schema, format_checker=FORMATS)
    for event in real_events()[event_type]:
        value = json.loads(record(event)[1])
        assert not _errors(python, value), (event_type, _errors(python, value)[:5])
        assert not _errors(ecma, value), (event_type, event.symbol, _errors(ecma, value)[:5])


def test_a_listing_in_another_script_validates_in_every_client_engine() -> None:
    """Binance lists 币安人生USDT; the contract takes letters of any script, and the
    published pattern must say so to an ECMA-262, Java or Go engine, not only to Python."""
    symbol = NON_ASCII_LISTING[0]
    (event,) = [e for e in real_events()["listing.new"] if e.symbol == symbol]
    EcmaValidator(_schema("listing.new"), format_checker=FORMATS).validate(
        json.loads(record(event)[1])
    )


def _patterns() -> list[str]:
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("pattern"), str):
                found.add(node["pattern"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    for path in (SCHEMAS / "events").glob("*.json"):
        walk(json.loads(path.read_text()))
    return sorted(found)


SYMBOLS_KEPT = ["BTCUSDT", "1000PEPEUSDT", "BTC-USDT-SWAP", "BTCUSDT_220325", "币安人生USDT",
                "fear_greed", "source:binance", "Ωmega"]  # fmt: skip
SYMBOLS_REFUSED = ["", "BTC USDT", "BTC\nUSDT", "BTC\u200dUSDT", "BTC<b>", "A\u0301B", "\u00a0"]
# ids: UUIDs, deterministic ids, vendor trade ids, sources, topics, coins in any script
IDS_KEPT = ["0b6c3c1e-5d7a-4c55-9a43-2f6f0f4a9d11", "ev-xrp-1", "binance", "fear_greed",
            "perpsignal.judge.replies.v1", "币安人生", "Ωmega", "4h", "emoji-\U0001f680",
            "a" * 256]  # fmt: skip
# NUL (PostgreSQL refuses it), other controls, spaces, newlines (a forged log line), zero-width
# and bidi characters (one id drawn like another), the BOM
IDS_REFUSED = ["", "ev\u0000", "ev\u0001x", "ev\x7f", "ev\x85", "ev 1", "ev\t1", "ev\n1",
               "ev\r1", "ev\u00a01", "ev\u200b1", "ev\u200d1", "ev\u202e1", "ev\u2066",
               "ev\u2028", "\ufeffev", "ev\u3000", "ev\u00ad"]  # fmt: skip


def _node_check(patterns: list[str], kept: list[str], refused: list[str]) -> list[Any]:
    """Run `patterns` in Node's RegExp (with and without the `u` flag ajv and others use);
    return the strings read otherwise than the producer reads them."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    script = (
        "const [ps, ok, bad] = JSON.parse(require('fs').readFileSync(0, 'utf8'));"
        "const out = [];"
        "for (const p of ps) for (const f of ['', 'u']) {"
        " const r = new RegExp(p, f);"
        " for (const s of ok) if (!r.test(s)) out.push(['refused', p, f, s]);"
        " for (const s of bad) if (r.test(s)) out.push(['accepted', p, f, s]);"
        "}"
        "console.log(JSON.stringify(out));"
    )
    payload = json.dumps([patterns, kept, refused])
    proc = subprocess.run(
        [node, "-e", script], input=payload, capture_output=True, text=True, timeout=30, check=True
    )
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def test_every_published_pattern_is_one_checked_here() -> None:
    assert set(_patterns()) == {
        PUBLISHED_SYMBOL_PATTERN,
        PUBLISHED_IDENT_PATTERN,
        TEXT_PATTERN,
    }


def test_published_symbol_pattern_in_a_real_ecmascript_engine() -> None:
    """Node reads the published symbol pattern as the producer validates: real symbols in,
    look-alikes and markup out."""
    assert _node_check([PUBLISHED_SYMBOL_PATTERN], SYMBOLS_KEPT, SYMBOLS_REFUSED) == []


def test_published_id_pattern_in_a_real_ecmascript_engine() -> None:
    """Node reads the published id pattern as the producer validates: real ids in, any
    control, space, zero-width or bidi character out (so a NUL, which PostgreSQL refuses,
    is refused by every client, not first by a consumer's database)."""
    assert _node_check([PUBLISHED_IDENT_PATTERN], IDS_KEPT, IDS_REFUSED) == []
    ident: TypeAdapter[str] = TypeAdapter(Ident)
    for s in IDS_KEPT:
        ident.validate_python(s)
    for s in IDS_REFUSED:
        with pytest.raises(PydanticValidationError):
            ident.validate_python(s)


def test_published_text_pattern_in_a_real_ecmascript_engine() -> None:
    """Free text takes anything but NUL, in Node as in the producer."""
    kept = ["", "BOS up @ 1h", "line\nbreak\ttab", "\u202eRTL", "币安人生 \U0001f680"]
    assert _node_check([TEXT_PATTERN], kept, ["a\u0000b", "\u0000"]) == []


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


def test_every_factor_input_validates_against_its_published_factor_schema() -> None:
    """schemas/factors/<name>.json describe a signal's `factors[].inputs` (additional keys
    refused but momentum's `return_<n>b`): the scorer's real inputs must fit them."""
    validators_by_name = {
        p.stem: Draft202012Validator(json.loads(p.read_text()), format_checker=FORMATS)
        for p in (SCHEMAS / "factors").glob("*.json")
    }
    seen = set()
    for event_type in ("signal.scored", "signal.judged"):
        for event in real_events()[event_type]:
            for factor in json.loads(record(event)[1])["factors"]:
                errors = _errors(validators_by_name[factor["name"]], factor["inputs"])
                assert not errors, (event_type, factor["name"], errors[:3])
                seen.add(factor["name"])
    assert seen == set(validators_by_name)
