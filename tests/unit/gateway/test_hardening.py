"""Secure by default: refusing to run open, client identity, throttled failures, budgets."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import httpx
import pytest

from perpsignal_common.errors import ConfigError
from perpsignal_common.settings import DatabaseSettings, KafkaSettings
from perpsignal_gateway.redaction import RedactingFilter
from perpsignal_gateway.settings import GatewaySettings

TLS_KAFKA = KafkaSettings(kafka_security_protocol="SASL_SSL")
PROD_OK: dict[str, Any] = {
    "environment": "prod",
    "kafka": TLS_KAFKA,
    "gateway_api_keys": "3f9a1c7e5b2d4068a9e1f3c5b7d90e2a",
    "gateway_public_url": "https://api.example.com",
}


@pytest.mark.parametrize("environment", ["prod", "staging"])
@pytest.mark.parametrize(
    ("override", "named"),
    [
        ({"gateway_api_keys": ""}, "GATEWAY_API_KEYS"),
        ({"gateway_api_keys": "changeme"}, "1 of 1 keys are shorter than 32"),
        (
            {"gateway_api_keys": "3f9a1c7e5b2d4068a9e1f3c5b7d90e2a,k1"},
            "1 of 2 keys are shorter than 32",
        ),
        ({"kafka": KafkaSettings(kafka_security_protocol="SASL_PLAINTEXT")}, "SASL_PLAINTEXT"),
        ({"kafka": KafkaSettings(kafka_security_protocol="PLAINTEXT")}, "KAFKA_SECURITY_PROTOCOL"),
        ({"gateway_cors_origins": "*"}, "GATEWAY_CORS_ORIGINS"),
        ({"gateway_public_paths": "/healthz,/signals"}, "GATEWAY_PUBLIC_PATHS"),
        ({"gateway_public_paths": "/healthz,/invoke"}, "/invoke"),
        ({"gateway_public_paths": "/judge/validate"}, "/judge/validate"),
        ({"gateway_public_url": "http://api.example.com"}, "GATEWAY_PUBLIC_URL"),
    ],
)
def test_staging_and_prod_refuse_insecure_settings(
    environment: str, override: dict[str, Any], named: str
) -> None:
    GatewaySettings(**{**PROD_OK, "environment": environment})  # the baseline is accepted
    with pytest.raises((ConfigError, ValueError), match=named):
        GatewaySettings(**{**PROD_OK, "environment": environment, **override})


def test_prod_names_every_setting_at_fault_in_one_refusal() -> None:
    """The Kafka check refused first, alone: a prod gateway without keys, TLS, origins or an
    https URL took two start-ups to learn what to fix (README: "the error names each setting")."""
    with pytest.raises(ConfigError) as refused:
        GatewaySettings(
            environment="prod",
            gateway_cors_origins="*",
            db=DatabaseSettings(database_url="postgresql://u:p@db.example.com/x"),
        )
    for setting in (
        "KAFKA_SECURITY_PROTOCOL",
        "requires TLS to the database",
        "GATEWAY_API_KEYS",
        "GATEWAY_CORS_ORIGINS",
        "GATEWAY_PUBLIC_URL",
    ):
        assert setting in str(refused.value), setting


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("gateway_rate_limit", "lots", "not a limit"),
        ("gateway_rate_limit", "0/minute", "allows nothing"),  # every request was a 429
        ("gateway_public_rate_limit", "10/fortnight", "not a limit"),
        ("gateway_judge_rate_limit", "", "not a limit"),
        ("gateway_auth_failure_limit", "-1/minute", "not a limit"),
        ("gateway_vendor_rate_limit", "0/second", "allows nothing"),
        ("gateway_research_rate_limit", "thirty", "not a limit"),
    ],
)
def test_a_limit_that_cannot_work_fails_at_start_up_naming_its_setting(
    field: str, value: str, named: str
) -> None:
    """It was parsed only when the first request built the middleware: a typo failed every
    request, and 0/minute refused every one with 429, on a gateway that looked healthy."""
    with pytest.raises(ValueError, match=f"{field.upper()}: .*{named}"):
        GatewaySettings(**{field: value})
    assert GatewaySettings(**{field: "5 per second"})  # the notation's other forms still work


def test_an_open_gateway_listens_on_loopback_unless_told_otherwise() -> None:
    assert GatewaySettings().listen_host() == "127.0.0.1"
    assert GatewaySettings(gateway_api_keys="k").listen_host() == "0.0.0.0"
    assert GatewaySettings(gateway_host="0.0.0.0").listen_host() == "0.0.0.0"  # containers


def test_settings_repr_hides_url_credentials_and_keys() -> None:
    cfg = GatewaySettings(
        gateway_api_keys="api-key-123",
        gateway_service_urls="judge=http://user:svc-pass-9@judge:9103",
        db=DatabaseSettings(database_url="postgresql://u:db-pass-7@h/x"),
        kafka=KafkaSettings(kafka_sasl_password="sasl-pass-5"),
    )
    for text in (repr(cfg), str(cfg)):
        for secret in ("api-key-123", "svc-pass-9", "db-pass-7", "sasl-pass-5"):
            assert secret not in text
    assert "judge:9103" in repr(cfg)  # the rest of the URL stays readable


def test_log_filter_redacts_query_credentials_and_known_secrets() -> None:
    flt = RedactingFilter(["vendor-key-42", "k1"])
    record = logging.makeLogRecord(
        {
            "msg": '%s - "WebSocket %s" [accepted]',
            "args": ("1.2.3.4:5", "/ws/signals?symbols=BTC&apiKey=abc123&ticket=t.x.y.z"),
            "error": "GET https://u:pw@host/x?key=vendor-key-42 failed",
            "details": {"urls": ["/ws/liquidations?apiKey=nested-secret"], "n": 3},
        }
    )
    flt.filter(record)
    text = record.getMessage() + record.error + str(record.details)
    for secret in ("abc123", "t.x.y.z", "vendor-key-42", "pw@", "nested-secret"):
        assert secret not in text
    assert "symbols=BTC" in text and "apiKey=***" in text


def test_a_logged_traceback_is_redacted_too(capsys: pytest.CaptureFixture[str]) -> None:
    from perpsignal_common.logging import configure_logging
    from perpsignal_gateway.redaction import install_redaction

    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        configure_logging("gateway", fmt="json")
        install_redaction(["vendor-key-42"])
        try:
            raise RuntimeError("GET https://api.example/v1?key=vendor-key-42 refused")
        except RuntimeError:
            logging.getLogger("perpsignal_gateway.test").exception("vendor call failed")
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert "vendor-key-42" not in line
    assert "RuntimeError" in line and "Traceback" in line  # the traceback is still there


async def test_forwarded_for_is_believed_only_from_trusted_proxies(make_client) -> None:
    # the ASGI test transport's peer is 127.0.0.1
    _, direct = await make_client(gateway_rate_limit="2/minute")
    codes = [
        (await direct.get("/ping", headers={"X-Forwarded-For": f"10.0.0.{i}"})).status_code
        for i in range(4)
    ]
    assert codes == [200, 200, 429, 429]  # spoofed addresses share the peer's budget
    _, proxied = await make_client(
        gateway_rate_limit="2/minute", gateway_trusted_proxies="127.0.0.0/8"
    )
    for i in range(3):  # behind a trusted proxy each real client has its own budget
        r = await proxied.get("/ping", headers={"X-Forwarded-For": f"10.0.0.{i}"})
        assert r.status_code == 200
    # a client cannot prepend a fake hop: the proxy appended the real address last
    spoofed = {"X-Forwarded-For": "10.9.9.9, 10.0.0.1"}
    assert [(await proxied.get("/ping", headers=spoofed)).status_code for _ in range(2)] == [
        200,
        429,
    ]


async def test_an_open_gateway_budgets_by_address_whatever_key_is_sent(make_client) -> None:
    """Without GATEWAY_API_KEYS no key is checked: an invented one must not buy a budget."""
    _, client = await make_client(gateway_rate_limit="2/minute")
    codes = [
        (await client.get("/ping", headers={"X-API-Key": f"made-up-{i}"})).status_code
        for i in range(4)
    ]
    assert codes == [200, 200, 429, 429]
    keyless = await client.get("/ping")
    assert keyless.status_code == 429  # the same client, keyless
    # and the refusal does not blame a key the gateway never checked
    assert "of this client address" in keyless.json()["error"]["message"]


async def test_an_ipv6_client_is_its_64_block_not_each_address(make_client) -> None:
    """A host owns a whole /64: rotating through it bought a fresh budget per address."""

    async def get(app, address: str, **headers: str) -> int:
        transport = httpx.ASGITransport(app=app, client=(address, 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as c:
            return (await c.get("/signals", headers=headers)).status_code

    open_app, _ = await make_client(gateway_rate_limit="2/minute")
    rotating = [await get(open_app, f"2001:db8:0:7::{i:x}") for i in range(1, 5)]
    assert rotating == [200, 200, 429, 429]
    assert await get(open_app, "2001:db8:0:8::1") == 200  # the next /64 is someone else
    keyed, _ = await make_client(gateway_api_keys="k1", gateway_auth_failure_limit="2/minute")
    guesses = [await get(keyed, f"2001:db8:0:9::{i:x}", **{"X-API-Key": f"g{i}"}) for i in range(4)]
    assert guesses == [401, 401, 429, 429]  # failed keys are counted for the block too


async def test_a_trusted_proxy_seen_through_a_dual_stack_socket_is_still_trusted(
    make_client,
) -> None:
    """Listening on `::`, an IPv4 proxy's address arrives IPv4-mapped (::ffff:a.b.c.d)."""
    app, _ = await make_client(gateway_rate_limit="2/minute", gateway_trusted_proxies="10.0.0.0/8")
    transport = httpx.ASGITransport(app=app, client=("::ffff:10.1.2.3", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as proxied:
        for i in range(3):  # each real client behind the proxy has its own budget
            r = await proxied.get("/ping", headers={"X-Forwarded-For": f"203.0.113.{i}"})
            assert r.status_code == 200, i


async def test_failed_authentications_are_throttled_per_client(make_client) -> None:
    _, client = await make_client(gateway_api_keys="k1", gateway_auth_failure_limit="5/minute")
    codes = [
        (await client.get("/signals", headers={"X-API-Key": f"guess-{i}"})).status_code
        for i in range(7)
    ]
    assert codes == [401] * 5 + [429] * 2
    locked = await client.get("/signals", headers={"X-API-Key": "k1"})
    assert locked.status_code == 429  # even a right guess is not checked while locked out
    assert locked.json()["error"]["code"] == "too_many_auth_failures"
    assert int(locked.headers["Retry-After"]) >= 1


async def test_costly_operations_have_their_own_budget_per_key(make_client, producer) -> None:
    from tests.unit.gateway import builders as b

    vendor_http = httpx.AsyncClient(transport=httpx.MockTransport(lambda _: httpx.Response(200)))
    app, client = await make_client(
        vendor_http=vendor_http,
        gateway_api_keys="k1,k2",
        gateway_judge_rate_limit="2/minute",
        gateway_vendor_rate_limit="1/minute",
    )
    app.state.model.apply(b.signal("BTCUSDT"))
    k1, k2 = {"X-API-Key": "k1"}, {"X-API-Key": "k2"}
    body = {"symbol": "BTC", "direction": "LONG"}
    judged = [(await client.post("/judge/validate", json=body, headers=k1)).status_code]
    judged.append(
        (
            await client.post(
                "/invoke", json={"operation": "validate_signal", "args": body}, headers=k1
            )
        ).status_code
    )
    third = await client.post("/judge/validate", json=body, headers=k1)
    assert judged == [504, 504] and third.status_code == 429  # no judge here: 504s
    assert "judge budget" in third.json()["error"]["message"]
    assert (await client.post("/judge/validate", json=body, headers=k2)).status_code == 504
    # the cheap reads are not charged to the judge budget
    assert (await client.get("/signals/BTC", headers=k1)).status_code == 200
    vendor = {"operation": "feargreed.listings", "args": {}}
    first = await client.post("/invoke", json=vendor, headers=k1)
    assert first.status_code == 200
    limited = await client.post("/invoke", json=vendor, headers=k1)
    assert limited.status_code == 429 and "vendor budget" in limited.text


async def test_signal_research_has_its_own_budget_per_key(make_client) -> None:
    """Each uncached research query bootstraps over up to 100k rows: a budget per key."""
    _, client = await make_client(gateway_api_keys="k1,k2", gateway_research_rate_limit="2/minute")
    k1, k2 = {"X-API-Key": "k1"}, {"X-API-Key": "k2"}
    # no database in these tests: the answers are 503, but each one is charged
    first = await client.get("/analytics/signal-research", headers=k1)
    rpc = {"operation": "signal_research", "args": {"since": "2026-01-01T00:00:00Z"}}
    second = await client.post("/invoke", json=rpc, headers=k1)
    assert first.status_code != 429 and second.status_code != 429
    third = await client.get("/analytics/signal-research?since=2025-01-01T00:00:00Z", headers=k1)
    assert third.status_code == 429 and "research budget" in third.json()["error"]["message"]
    assert third.headers["retry-after"].isdigit()
    assert (await client.get("/analytics/signal-research", headers=k2)).status_code != 429
    assert (await client.get("/signals/BTC", headers=k1)).status_code != 429  # reads are free


@pytest.mark.parametrize(
    "encode",
    [
        lambda text: b"\xef\xbb\xbf" + text.encode(),  # a UTF-8 byte order mark
        lambda text: text.encode("utf-16"),
    ],
    ids=["utf8-bom", "utf16"],
)
async def test_judge_budget_holds_for_every_json_encoding_the_app_reads(
    make_client, producer, encode
) -> None:
    from tests.unit.gateway import builders as b

    app, client = await make_client(gateway_api_keys="k1", gateway_judge_rate_limit="1/minute")
    app.state.model.apply(b.signal("BTCUSDT"))
    headers = {"X-API-Key": "k1", "Content-Type": "application/json"}
    body = json.dumps({"operation": "validate_signal", "symbol": "BTC", "direction": "LONG"})
    first = await client.post("/invoke", content=body, headers=headers)
    assert first.status_code == 504  # judged (no judge here: it times out)
    # the app reads this body too (the standard library's JSON): it must spend the budget
    again = await client.post("/invoke", content=encode(body), headers=headers)
    assert again.status_code == 429, again.text
    assert "judge budget" in again.json()["error"]["message"]
    assert len(producer.events) == 1  # one judge request on the bus, not two


async def test_a_price_the_judge_contract_refuses_is_a_422_naming_the_field_sent(
    make_client, producer
) -> None:
    from perpsignal_common.events.values import MAX_PRICE

    _, client = await make_client()
    doc = (await client.get("/openapi.json")).json()
    entry = json.dumps(doc["components"]["schemas"]["ValidateBody"]["properties"]["entryPrice"])
    assert '"maximum"' in entry  # the document says what is refused
    for body in (
        {"symbol": "SOL", "direction": "LONG", "entryPrice": MAX_PRICE * 10},
        {
            "operation": "validate_signal",
            "symbol": "SOL",
            "direction": "LONG",
            "stopLossPrice": 1e-300,
        },
    ):
        path = "/invoke" if "operation" in body else "/judge/validate"
        r = await client.post(path, json=body)
        assert r.status_code == 422, r.text
        fields = [d["field"] for d in r.json()["error"]["details"]]
        assert fields in (["entryPrice"], ["stopLossPrice"]), fields
    assert producer.events == []  # refused up front: nothing tracked, nothing judged


async def test_bodies_and_queries_are_held_to_their_schema(make_client) -> None:
    _, client = await make_client()
    for path, body in (
        ("/gpt/signals", {"minScore": False}),
        ("/gpt/signal", {"symbol": "BTC", "debug": 0}),
        ("/judge/validate", {"symbol": "BTC", "direction": "LONG", "score": "80"}),
        ("/invoke", {"operation": "list_signals", "limit": "5"}),
        ("/invoke", {"operation": "list_signals", "args": {"minScore": True}}),
    ):
        r = await client.post(path, json=body)
        assert r.status_code == 422, (path, body, r.text)
    # an integral float is an integer in JSON Schema
    assert (await client.post("/gpt/signals", json={"limit": 5.0})).status_code == 200
    # undeclared query parameters are an error, not silently ignored
    r = await client.get("/liquidations/BTC", params={"limt": 5})
    assert r.status_code == 422 and "limt" in r.json()["error"]["message"]
    assert (await client.get("/liquidations/BTC", params={"limit": 5})).status_code == 200


async def test_a_query_parameter_given_twice_is_refused_not_half_read(make_client) -> None:
    """No parameter takes a list: ?verdict=CONFIRM&verdict=SKIP answered SKIP signals alone."""
    from tests.unit.gateway import builders as b

    app, client = await make_client()
    app.state.model.apply(b.signal("BTCUSDT", verdict="CONFIRM"))
    app.state.model.apply(b.signal("ETHUSDT", verdict="SKIP"))
    for url in (
        "/signals?verdict=CONFIRM&verdict=SKIP",
        "/signals?limit=1&limit=500",
        "/liquidations/BTC?limit=5&limit=6",
        "/signals/BTC?debug=false&debug=true",
    ):
        r = await client.get(url)
        assert r.status_code == 422, (url, r.text)
        assert r.json()["error"]["details"][0]["type"] == "repeated", r.text
    one = await client.get("/signals?verdict=CONFIRM&limit=5")
    assert [s["symbol"] for s in one.json()["signals"]] == ["BTCUSDT"]


async def test_an_error_names_a_bounded_number_of_fields_whatever_the_body(make_client) -> None:
    """Thousands of unknown names in one body were each answered: a reply ten times its size."""
    _, client = await make_client()
    many = {f"f{i}": 0 for i in range(4000)}
    for path, body, params in (
        ("/gpt/signals", many, None),
        ("/invoke", {"operation": "list_signals", **many}, None),
        ("/invoke", {"operation": "list_signals", "args": many}, None),
        ("/invoke", {"operation": "list_signals", "args": {}, **many}, None),  # both forms
        ("/liquidations/BTC", None, {f"q{i}": 1 for i in range(1000)}),
    ):
        if body is None:
            r = await client.get(path, params=params)
        else:
            r = await client.post(path, json=body)
        assert r.status_code == 422, (path, r.text[:200])
        error = r.json()["error"]
        assert 1 <= len(error["details"]) <= 20, (path, len(error["details"]))
        assert len(r.content) < 4096, (path, len(r.content))
        named = len(params or many)
        if "not both" not in error["message"]:  # that message names no field
            assert error["message"].endswith(f" and {named - 20} more"), error["message"][-80:]
    # a handful of mistakes is still named in full
    r = await client.post("/gpt/signals", json={"limt": 5, "minscore": 1})
    assert [d["field"] for d in r.json()["error"]["details"]] == ["limt", "minscore"]
    assert "more" not in r.json()["error"]["message"]


async def test_a_date_time_offset_typed_into_a_url_keeps_its_sign(make_client) -> None:
    """A query string decodes '+' to a space: '...T00:00:00+05:30' arrived as '... 05:30'."""
    from datetime import datetime, timedelta, timezone

    from perpsignal_gateway.args import HistoryQuery, PerformanceQuery

    _, client = await make_client()
    for url in (
        "/analytics/verdict-performance?since=2026-01-31T00:00:00+05:30",
        "/analytics/outcomes-history?start=2026-01-01T00:00:00.5+01:00&end=2026-02-01T00:00+0100",
        "/analytics/signal-research?since=2026-01-01 00:00:00+00:00",
    ):
        r = await client.get(url)
        # no database in these tests: past validation, the answer is its 503
        assert r.status_code == 503, (url, r.text)
        assert r.json()["error"]["code"] == "database_disabled"
    # and the offset read is the one typed, east of UTC
    plus = PerformanceQuery.model_validate({"since": "2026-01-31T00:00:00 05:30"})
    assert plus.since == datetime(2026, 1, 31, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    window = HistoryQuery.model_validate({"start": "2026-01-01 00:00 0100"})
    assert window.start is not None and window.start.utcoffset() == timedelta(hours=1)
    # a space is read so only before an offset: a space anywhere else is still an error
    bad = await client.get("/analytics/verdict-performance?since=2026-01-31 junk")
    assert bad.status_code == 422


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
async def test_a_non_finite_number_is_named_as_such(make_client, literal) -> None:
    """NaN was answered 'should be less than or equal to 100': true of no number sent."""
    _, client = await make_client()
    headers = {"Content-Type": "application/json"}
    for path, body in (
        ("/gpt/signals", '{"minScore": ' + literal + "}"),
        ("/invoke", '{"operation": "list_mss", "minScore": ' + literal + "}"),
        ("/judge/validate", '{"symbol": "BTC", "direction": "LONG", "score": ' + literal + "}"),
    ):
        r = await client.post(path, content=body, headers=headers)
        assert r.status_code == 422, (path, r.text)
        (detail,) = r.json()["error"]["details"]
        assert detail["type"] == "finite_number", (path, detail)
    query = await client.get("/signals", params={"minScore": literal.lower()})
    assert query.json()["error"]["details"][0]["type"] == "finite_number"


@pytest.mark.parametrize("name", ["%61piKey", "api%4Bey", "api%5Fkey", "%61%70%69%4b%65%79"])
async def test_a_percent_encoded_key_name_is_redacted_from_the_server_log(
    caplog: pytest.LogCaptureFixture, name: str
) -> None:
    """The server's query parser decodes "%61piKey" to apiKey and authenticates with it: the
    WebSocket line uvicorn logs carried the long-lived key in clear."""
    import websockets

    from tests.unit.gateway.test_streams import open_gateway

    key = "long-lived-key-0123456789abcdef"
    caplog.handler.addFilter(RedactingFilter([]))  # what install_redaction puts on handlers
    with caplog.at_level(logging.INFO, logger="uvicorn.error"):
        async with open_gateway(gateway_api_keys=key, uvicorn_log_level="info") as (_, port):
            url = f"ws://127.0.0.1:{port}/ws/signals?symbols=BTC&{name}={key}"
            async with websockets.connect(url) as ws:
                subscribed = json.loads(await asyncio.wait_for(ws.recv(), 5))
    assert subscribed["type"] == "subscribed"  # the server read the name as apiKey
    lines = [r.getMessage() for r in caplog.records if "WebSocket" in r.getMessage()]
    assert lines and all(key not in line for line in lines), lines
    assert any(f"{name}=***" in line for line in lines), lines


def test_query_redaction_decodes_names_and_values_and_ends_values_where_the_parser_does() -> None:
    flt = RedactingFilter(["key-alpha-secret"])
    cases = {
        "/x?api+key=plus-secret": "plus-secret",  # "+" is a space: "api key"
        "/x?API_KEY=upper-secret": "upper-secret",
        "/x?%2561piKey=double-secret": "double-secret",  # once more behind a proxy
        "/x?apiKey=semi;colon-secret": "colon-secret",  # parse_qs ends a value only at "&"
        '/x?apiKey=quo"te-secret': "te-secret",
        "/x?symbols=BTC&note=%6Bey-alpha-secret": "ey-alpha-secret",  # a configured key, encoded
        "/x?symbols=BTC&note=key%2Dalpha%2Dsecret": "alpha",
    }
    for path, secret in cases.items():
        record = logging.makeLogRecord(
            {"msg": '%s - "WebSocket %s" [accepted]', "args": ("a", path)}
        )
        flt.filter(record)
        assert secret not in record.getMessage(), (path, record.getMessage())
    kept = logging.makeLogRecord({"msg": "GET /signals?symbols=BTC&monkey=1&keys=2"})
    flt.filter(kept)
    assert kept.getMessage() == "GET /signals?symbols=BTC&monkey=1&keys=2"  # no other name
