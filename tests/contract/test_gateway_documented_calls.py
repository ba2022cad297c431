"""The gateway called as a client built from its published OpenAPI documents only.

Inputs come from the document (parameter and property `examples`, defaults, enums), the read
model holds real events (tests/contract/wire_events.py), and every answer is checked against
the document: its status is one the operation declares, its body validates against that
status's schema. Validation reads regular expressions as ECMA-262 (the dialect JSON Schema
names), Java and Go do (`\\w` is ASCII there), since GPT Actions and the generated clients
are not Python. The schemathesis fuzz in test_openapi_gateway.py explores further; this is
the deterministic, document-driven pass (one call per operation and per GPT action).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from perpsignal_common.events.base import Event
from tests.contract.test_openapi_gateway import _app
from tests.contract.wire_events import NON_ASCII_LISTING, real_events

FORMATS = Draft202012Validator.FORMAT_CHECKER
# what the symbol descriptions promise ("BTC, btc, BTCUSDT or 币安人生USDT")
DOCUMENTED_SYMBOLS = ["BTC", "btc", "BTCUSDT", NON_ASCII_LISTING[0]]
FED = (
    "market.candle",
    "market.funding",
    "market.open_interest",
    "liquidation.order",
    "mss.scored",
    "listing.new",
    "global.fear_greed",
    "source.status",
)


def _ecma_pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Any:
    if validator.is_type(instance, "string") and not re.search(pattern, instance, re.ASCII):
        yield ValidationError(f"{instance!r} does not match {pattern!r} (ECMA-262 reading)")


EcmaValidator = validators.extend(Draft202012Validator, {"pattern": _ecma_pattern})


@pytest.fixture(scope="module")
def events() -> dict[str, tuple[Event, ...]]:
    return real_events()  # built outside any event loop


@pytest.fixture
async def client(events: dict[str, tuple[Event, ...]]) -> AsyncIterator[httpx.AsyncClient]:
    app = _app()
    async with app.router.lifespan_context(app):
        for kind in FED:
            for event in events[kind]:
                app.state.model.apply(event)
        for event in events["signal.judged"][-20:]:
            app.state.model.apply(event)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as c:
            yield c


class Doc:
    """One published document, with its `$ref`s resolvable by JSON pointer."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        resource = Resource.from_contents(doc, default_specification=DRAFT202012)
        self.registry = Registry().with_resource("urn:doc", resource)

    def validator(self, pointer: list[str]) -> Any:
        path = "/".join(p.replace("~", "~0").replace("/", "~1") for p in pointer)
        ref = f"urn:doc#/{path}" if path else "urn:doc#"
        return EcmaValidator({"$ref": ref}, registry=self.registry, format_checker=FORMATS)

    def errors(self, pointer: list[str], instance: Any) -> list[str]:
        return [
            f"{'/'.join(map(str, e.absolute_path))}: {e.message[:300]}"
            for e in self.validator(pointer).iter_errors(instance)
        ]

    def sample(self, schema: dict[str, Any]) -> Any:
        """A valid value as a client reads it off the schema: example, default, enum..."""
        if "$ref" in schema:
            return self.sample(self.doc["components"]["schemas"][schema["$ref"].split("/")[-1]])
        for key in ("examples", "enum"):
            if schema.get(key):
                return schema[key][0]
        if schema.get("default") is not None:
            return schema["default"]
        if "const" in schema:
            return schema["const"]
        for key in ("anyOf", "oneOf"):
            if key in schema:
                return self.sample(next(s for s in schema[key] if s.get("type") != "null"))
        if schema.get("type") == "object":
            required = schema.get("required", [])
            props = schema.get("properties", {})
            return {n: self.sample(props[n]) for n in required}
        return {"string": "X", "integer": 1, "number": 1.0, "boolean": True, "array": []}[
            schema["type"]
        ]

    def check_answer(self, path: str, method: str, response: httpx.Response) -> None:
        op = self.doc["paths"][path][method]
        status = str(response.status_code)
        assert status in op["responses"], (method, path, status, response.text[:300])
        content = op["responses"][status].get("content", {})
        assert "application/json" in content, (method, path, status)
        pointer = ["paths", path, method, "responses", status, "content", "application/json"]
        errors = self.errors([*pointer, "schema"], response.json())
        assert not errors, (method, path, status, errors[:5])


async def _doc(client: httpx.AsyncClient, url: str) -> Doc:
    return Doc((await client.get(url)).json())


def _walk(node: Any, pointer: list[str]) -> Any:
    if isinstance(node, dict):
        yield pointer, node
        for k, v in node.items():
            yield from _walk(v, [*pointer, k])
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _walk(v, [*pointer, str(i)])


@pytest.mark.parametrize("url", ["/openapi.json", "/openapi-gpt.json"])
async def test_every_documented_example_validates_against_its_own_schema(
    client: httpx.AsyncClient, url: str
) -> None:
    doc = await _doc(client, url)
    checked = 0
    for pointer, node in _walk(doc.doc, []):
        if pointer and pointer[-1] == "properties":
            continue  # a property named "examples" is no example
        if isinstance(node.get("examples"), list):
            for example in node.get("examples", []):
                assert not doc.errors(pointer, example), (pointer, example)
                checked += 1
        if "example" in node and "schema" in node:
            assert not doc.errors([*pointer, "schema"], node["example"]), pointer
            checked += 1
    assert checked >= 5


@pytest.mark.parametrize("url", ["/openapi.json", "/openapi-gpt.json"])
async def test_every_symbol_the_descriptions_name_passes_the_published_pattern(
    client: httpx.AsyncClient, url: str
) -> None:
    """The symbol parameters say "BTC, btc, BTCUSDT or 币安人生USDT": a client that checks
    arguments against the pattern (as ECMA-262, Java and Go read it) must let them through."""
    doc = await _doc(client, url)
    patterns = 0
    for pointer, node in _walk(doc.doc, []):
        if "pattern" in node and "币安人生USDT" in node.get("description", ""):
            patterns += 1
            for symbol in DOCUMENTED_SYMBOLS:
                assert not doc.errors(pointer, symbol), (pointer, symbol)
    assert patterns >= 3


async def test_every_operation_answers_documented_inputs_as_documented(
    client: httpx.AsyncClient,
) -> None:
    doc = await _doc(client, "/openapi.json")
    calls = 0
    for path, item in doc.doc["paths"].items():
        for method, op in item.items():
            for symbol in DOCUMENTED_SYMBOLS:
                url, query = path, {}
                for p in op.get("parameters", []):
                    value = symbol if p["name"] == "symbol" else doc.sample(p["schema"])
                    if p["in"] == "path":
                        url = url.replace("{" + p["name"] + "}", str(value))
                    elif p.get("required") or "examples" in p["schema"]:
                        query[p["name"]] = value
                body = None
                if "requestBody" in op:
                    schema = op["requestBody"]["content"]["application/json"]["schema"]
                    body = doc.sample(schema)
                    if isinstance(body, dict) and "symbol" in body:
                        body["symbol"] = symbol
                r = await client.request(method.upper(), url, params=query, json=body)
                doc.check_answer(path, method, r)
                calls += 1
                if "{symbol}" not in path and not (body and "symbol" in body):
                    break  # no symbol to vary
    assert calls >= 40


async def test_every_gpt_action_answers_as_the_gpt_document_says(
    client: httpx.AsyncClient,
) -> None:
    """GPT Actions read /openapi-gpt.json: every platform operation of POST /invoke, called
    with arguments built from its published parameter schema, answers a declared status
    with a body of that status's schema; its arguments pass that parameter schema."""
    gpt = await _doc(client, "/openapi-gpt.json")
    listing = (await client.get("/invoke/operations", params={"kind": "platform"})).json()
    gpt.check_answer("/invoke/operations", "get", await client.get("/invoke/operations"))
    assert len(listing["operations"]) >= 10
    for op in listing["operations"]:
        params = Doc(op["parameters"])
        symbols = DOCUMENTED_SYMBOLS if "symbol" in params.doc.get("properties", {}) else [None]
        for symbol in symbols:
            args = params.sample(params.doc)
            if symbol is not None:
                args["symbol"] = symbol
            if op["name"] == "validate_signal":
                args.setdefault("direction", "LONG")
            assert not params.errors([], args), (op["name"], args)
            r = await client.post("/invoke", json={"operation": op["name"], "args": args})
            gpt.check_answer("/invoke", "post", r)
            if r.status_code == 200:
                assert r.json()["operation"] == op["name"]


BAD_REQUESTS: list[tuple[str, str, Any, int]] = [
    ("/invoke", "post", {"operation": "no_such_operation"}, 404),
    ("/invoke", "post", {}, 422),
    ("/invoke", "post", {"operation": "get_signal"}, 422),
    ("/invoke", "post", {"operation": "get_signal", "args": {"symbol": "BTC\u200dUSDT"}}, 422),
    ("/invoke", "post", {"operation": "get_signal", "args": {"symbol": "X", "x": 1}}, 422),
    ("/gpt/signal", "post", {"symbol": "<b>"}, 422),
    ("/gpt/signal", "post", {}, 422),
    ("/gpt/signals", "post", {"limit": 0}, 422),
    ("/gpt/market", "post", {"symbol": "NOPEUSDT"}, 404),
    ("/judge/validate", "post", {"symbol": "BTC", "direction": "UP"}, 422),
    ("/signals/{symbol}", "get", "12345", 422),
    ("/signals", "get", {"limit": 0}, 422),
    ("/mss", "get", {"tier": "1; drop"}, 422),
]


@pytest.mark.parametrize(("path", "method", "data", "status"), BAD_REQUESTS)
async def test_refusals_are_documented_with_their_error_body(
    client: httpx.AsyncClient, path: str, method: str, data: Any, status: int
) -> None:
    doc = await _doc(client, "/openapi.json")
    if "{symbol}" in path:
        r = await client.request(method.upper(), path.replace("{symbol}", data))
    elif method == "get":
        r = await client.get(path, params=data)
    else:
        r = await client.post(path, json=data)
    assert r.status_code == status, r.text
    doc.check_answer(path, method, r)
    assert set(r.json()["error"]) >= {"code", "message"}


@pytest.mark.parametrize("url", ["/openapi.json", "/openapi-gpt.json"])
async def test_a_body_that_is_not_json_gets_the_status_the_document_names_for_it(
    client: httpx.AsyncClient, url: str
) -> None:
    """The documents promised "400: The body is not JSON"; such a body got 422 (the shape
    of every invalid argument), so a client's handler for it never ran."""
    doc = await _doc(client, url)
    checked = 0
    for path, item in doc.doc["paths"].items():
        op = item.get("post")
        if op is None or "requestBody" not in op:
            continue
        named = sorted(s for s, r in op["responses"].items() if "not JSON" in r["description"])
        for content, ctype in (
            (b"{not json", "application/json"),
            (b"symbol=BTC", "application/x-www-form-urlencoded"),
        ):
            r = await client.post(path, content=content, headers={"Content-Type": ctype})
            assert named == [str(r.status_code)], (path, named, r.status_code, r.text[:200])
            doc.check_answer(path, "post", r)
            assert "JSON" in r.json()["error"]["message"], r.text  # it says what is wrong
            checked += 1
    assert checked >= 8


@pytest.mark.parametrize("url", ["/openapi.json", "/openapi-gpt.json"])
async def test_bytes_that_are_no_text_get_the_documented_400(
    client: httpx.AsyncClient, url: str
) -> None:
    doc = await _doc(client, url)
    for path, item in doc.doc["paths"].items():
        op = item.get("post")
        if op is None or "requestBody" not in op:
            continue
        r = await client.post(
            path, content=b'{"symbol": "\xc3\x28"}', headers={"Content-Type": "application/json"}
        )
        assert r.status_code == 400, (path, r.status_code, r.text[:200])
        doc.check_answer(path, "post", r)
        assert "UTF-8" in op["responses"]["400"]["description"], path


async def test_a_vendor_refusal_through_invoke_is_the_documented_400() -> None:
    """POST /invoke answers a vendor's 4xx with 400 vendor_rejected: the document said its
    400 meant "the body is not JSON"."""
    from perpsignal_connectors.catalog import load_catalogs
    from perpsignal_gateway.vendors import budget_env

    refused = httpx.AsyncClient(
        transport=httpx.MockTransport(lambda _: httpx.Response(400, json={"msg": "bad pair"}))
    )
    env = {c.key_env: "k" for c in load_catalogs() if c.key_env}
    env.update({budget_env(c): "1000" for c in load_catalogs()})
    app = _app(vendor_env=env, vendor_http=refused)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as c:
            gpt = await _doc(c, "/openapi-gpt.json")
            listing = (await c.get("/invoke/operations", params={"kind": "vendor"})).json()
            op = next(o for o in listing["operations"] if o["name"].startswith("coingecko."))
            params = Doc(op["parameters"])
            r = await c.post("/invoke", json={"operation": op["name"], **params.sample(params.doc)})
            assert r.status_code == 400 and r.json()["error"]["code"] == "vendor_rejected", r.text
            gpt.check_answer("/invoke", "post", r)
            described = gpt.doc["paths"]["/invoke"]["post"]["responses"]["400"]["description"]
            assert "vendor" in described.lower(), described
    await refused.aclose()


def _chars(body: str) -> list[str]:
    """The characters of a regex class body made of plain characters and `a-b` ranges."""
    out, i = [], 0
    while i < len(body):
        if i + 2 < len(body) and body[i + 1] == "-":
            out += [chr(c) for c in range(ord(body[i]), ord(body[i + 2]) + 1)]
            i += 3
        else:
            out.append(body[i])
            i += 1
    return out


def test_every_symbol_the_published_patterns_allow_is_one_the_gateway_takes() -> None:
    """The published symbol patterns are a subset of the gateway's rule (letters and digits
    of any script): a client that obeys the document never meets a 422 for its symbol."""
    from pydantic import TypeAdapter

    from perpsignal_gateway.symbols import (
        PUBLISHED_ALNUM,
        PUBLISHED_ALPHA,
        BodySymbol,
        PathSymbol,
        QuerySymbol,
    )

    alnum, alpha = _chars(PUBLISHED_ALNUM), _chars(PUBLISHED_ALPHA)
    assert "币" in alpha and "Å" in alpha and "Ж" in alpha and len(alnum) > 20_000
    assert set(alpha) <= set(alnum)
    for kind in (PathSymbol, QuerySymbol, BodySymbol):
        adapter = TypeAdapter(kind)
        for c in alnum:
            adapter.validate_python("X" + c)
        for c in alpha:
            adapter.validate_python("1" + c)


@pytest.mark.parametrize("url", ["/openapi.json", "/openapi-gpt.json"])
async def test_every_invoke_result_validates_against_its_documented_schema(
    client: httpx.AsyncClient, url: str
) -> None:
    """`result` was documented as anything: a GPT Action could not know what comes back.
    Each platform operation's result is now its REST twin's documented answer: real answers
    (a read model fed by real events) validate, and an answer of the wrong shape does not."""
    doc = await _doc(client, url)
    pointer = ["components", "schemas", "InvokeResult"]
    branches = doc.doc["components"]["schemas"]["InvokeResult"]["oneOf"]
    listing = (await client.get("/invoke/operations", params={"kind": "platform"})).json()
    platform = {op["name"] for op in listing["operations"]}
    documented = {b["properties"]["operation"].get("const") for b in branches}
    assert platform <= documented, platform - documented
    answered = set()
    signals = (await client.get("/signals")).json()["signals"]
    # the fed events judge one symbol and carry market data of another (BTCUSDT)
    symbols = [signals[0]["symbol"], "BTC"]
    for op in listing["operations"]:
        if op["name"] == "validate_signal":
            continue  # no judge here: a 504 (tests/unit/gateway: round trip through the judge)
        params = Doc(op["parameters"])
        for symbol in symbols:
            args = params.sample(params.doc)
            if "symbol" in args:
                args["symbol"] = symbol
            r = await client.post("/invoke", json={"operation": op["name"], "args": args})
            if r.status_code != 200:
                continue  # the database is absent here; a symbol without data is a 404
            body = r.json()
            assert not doc.errors(pointer, body), (op["name"], doc.errors(pointer, body)[:3])
            # an answer of another shape is refused: the document says what comes back
            assert doc.errors(pointer, {"operation": op["name"], "result": {}}), op["name"]
            assert doc.errors(pointer, {"operation": op["name"], "result": "x"}), op["name"]
            answered.add(op["name"])
    assert answered >= {
        "get_signal",
        "list_signals",
        "get_market",
        "get_smc",
        "list_mss",
        "list_new_listings",
        "get_liquidations",
    }
    # a vendor answer is the vendor's JSON, whatever it is; a name that is no operation is not
    assert not doc.errors(pointer, {"operation": "coinglass.futures_supported_coins", "result": 1})
    assert doc.errors(pointer, {"operation": "nope", "result": {}})


async def test_verdict_risk_mode_and_volatility_class_are_documented_enums(
    client: httpx.AsyncClient, events: dict[str, tuple[Event, ...]]
) -> None:
    """They were plain strings in the document although the judge's values are a closed set:
    a client could not know which verdicts to handle. The enums are the event's own types,
    and every real judged signal, as the gateway shows it, validates against them."""
    from typing import get_args

    from perpsignal_common.events.signals import RiskMode, Verdict, VolatilityClass
    from perpsignal_gateway.schemas import signal_out

    for url in ("/openapi.json", "/openapi-gpt.json"):
        doc = await _doc(client, url)
        schemas = doc.doc["components"]["schemas"]
        layer = schemas["VerdictLayerOut"]["properties"]
        assert layer["verdict"]["enum"] == list(get_args(Verdict))
        assert layer["riskMode"]["enum"] == list(get_args(RiskMode))
        volatility = schemas["VolatilityOut"]["properties"]["volatilityClass"]["anyOf"]
        assert {"enum": list(get_args(VolatilityClass)), "type": "string"} in volatility
        pointer = ["components", "schemas", "SignalOut"]
        seen: dict[str, set[Any]] = {"verdict": set(), "risk": set(), "volatility": set()}
        for event in events["signal.judged"]:
            shown = signal_out(event).model_dump(mode="json", by_alias=True)
            assert not doc.errors(pointer, shown), doc.errors(pointer, shown)[:3]
            out = shown["aiVerdictLayer"]
            seen["verdict"].add(out["verdict"])
            seen["risk"].add(out["riskMode"])
            seen["volatility"].add(out["volatilityMetrics"]["volatilityClass"])
        assert len(seen["verdict"]) >= 2 and len(seen["volatility"]) >= 2, seen
        shown["aiVerdictLayer"]["verdict"] = "MAYBE"  # a value outside the set is refused
        assert doc.errors(pointer, shown)
