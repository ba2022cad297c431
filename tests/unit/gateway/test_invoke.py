"""`/invoke`: both body forms, every operation listed with a schema, errors, vendor pass-through."""

from __future__ import annotations

import time

import httpx
import pytest
import respx

from perpsignal_common.events.signals import JudgeRequestV1
from perpsignal_connectors.catalog import all_endpoints
from perpsignal_gateway.operations import changes_vendor_state
from tests.unit.gateway import builders as b
from tests.unit.gateway.conftest import model_of, recorded

CG = "https://open-api-v4.coinglass.com"


async def test_nested_and_flat_forms_give_the_same_answer(make_client) -> None:
    app, client = await make_client()
    model_of(app).apply(b.signal("BTCUSDT"))
    nested = await client.post(
        "/invoke", json={"operation": "get_signal", "args": {"symbol": "BTC"}}
    )
    flat = await client.post("/invoke", json={"operation": "get_signal", "symbol": "BTC"})
    assert nested.status_code == flat.status_code == 200
    assert nested.json() == flat.json()
    assert nested.json()["result"]["symbol"] == "BTCUSDT"
    rest = (await client.get("/signals/BTC")).json()
    assert nested.json()["result"] == rest


@pytest.mark.parametrize(
    "content_type",
    [None, "application/x-www-form-urlencoded", "text/plain"],  # None: no header; curl -d
)
async def test_a_body_not_sent_as_json_gets_one_answer_whatever_the_symbol(
    make_client, content_type
) -> None:
    """The cached signal answered 200 where an uncached one got a 422 for the same request."""
    app, client = await make_client()
    model_of(app).apply(b.signal("BTCUSDT"))  # cached: the fast path knows it
    headers = {"Content-Type": content_type} if content_type else {}
    answers = []
    for symbol in ("BTC", "ETH"):  # ETH is listed but not yet tracked
        body = f'{{"operation": "get_signal", "symbol": "{symbol}"}}'
        r = await client.post("/invoke", content=body, headers=headers)
        answers.append((r.status_code, r.json()["error"]["message"] if r.is_error else None))
    assert answers[0] == answers[1], answers
    status, message = answers[0]
    assert status == 422 and message is not None and "Content-Type: application/json" in message
    # sent as JSON, in any of its media types, it is read
    for kind in ("application/json", "application/json; charset=utf-8", "application/x+json"):
        body = '{"operation": "get_signal", "symbol": "BTC"}'
        r = await client.post("/invoke", content=body, headers={"Content-Type": kind})
        assert r.status_code == 200 and r.json()["result"]["symbol"] == "BTCUSDT", kind


async def test_a_body_that_is_not_json_names_the_body_not_a_field_called_17(make_client) -> None:
    """A truncated body was answered `{"field": "17", ...}`: the parse position read as the
    name of a field. The position belongs in the message; the field is the body."""
    _, client = await make_client()
    for path in ("/invoke", "/gpt/signal", "/judge/validate"):
        r = await client.post(
            path, content='{"symbol": "BTC",', headers={"Content-Type": "application/json"}
        )
        assert r.status_code == 422, path
        error = r.json()["error"]
        assert error["message"] == "the body is not valid JSON (error at character 17)", path
        assert [(d["field"], d["type"]) for d in error["details"]] == [("<body>", "json_invalid")]


async def test_every_operation_is_listed_with_a_parameter_schema(make_client) -> None:
    _, client = await make_client()
    body = (await client.get("/invoke/operations")).json()
    names = {op["name"] for op in body["operations"]}
    assert body["count"] == len(names) >= 192
    # every catalogue endpoint is an operation, generated rather than hand-written, except
    # those that would change the operator's vendor account (off unless configured)
    writes = {e.operation for e in all_endpoints() if changes_vendor_state(e)}
    assert writes == {
        "lunarcrush.searches_create",
        "lunarcrush.searches_update",
        "lunarcrush.searches_delete",
    }
    assert {e.operation for e in all_endpoints()} - writes <= names
    assert not writes & names
    platform = {op["name"] for op in body["operations"] if op["kind"] == "platform"}
    assert {
        "get_signal",
        "list_signals",
        "get_market",
        "validate_signal",
        "calibration",
    } <= platform
    for op in body["operations"]:
        assert op["description"]
        assert op["parameters"]["type"] == "object"
    fr = next(
        o for o in body["operations"] if o["name"] == "coinglass.futures_funding_rate_history"
    )
    assert set(fr["parameters"]["required"]) == {"exchange", "symbol", "interval"}
    assert "4h" in fr["parameters"]["properties"]["interval"]["enum"]
    sig = next(o for o in body["operations"] if o["name"] == "get_signal")
    assert sig["parameters"]["required"] == ["symbol"]
    vendors_only = (await client.get("/invoke/operations", params={"kind": "vendor"})).json()
    assert all(o["kind"] == "vendor" for o in vendors_only["operations"])


async def test_unknown_operation_is_404_with_closest_names(make_client) -> None:
    _, client = await make_client()
    r = await client.post("/invoke", json={"operation": "get_signl", "symbol": "BTC"})
    assert r.status_code == 404
    err = r.json()["error"]
    assert err["code"] == "unknown_operation"
    assert err["details"]["closest"][0] == "get_signal"


async def test_bad_arguments_are_422_naming_each_field(make_client) -> None:
    _, client = await make_client()
    r = await client.post(
        "/invoke",
        json={"operation": "list_signals", "args": {"limit": "many", "direction": "UP", "x": 1}},
    )
    assert r.status_code == 422
    fields = {d["field"] for d in r.json()["error"]["details"]}
    assert fields == {"limit", "direction", "x"}
    r = await client.post(
        "/invoke",
        json={"operation": "coinglass.futures_funding_rate_history", "interval": "7m"},
    )
    assert r.status_code == 422
    fields = {d["field"] for d in r.json()["error"]["details"]}
    assert fields == {"exchange", "symbol", "interval"}


@respx.mock
async def test_a_null_vendor_argument_is_refused_not_sent_on(make_client) -> None:
    """The document types `limit` as an integer (no null): a null was taken and the vendor
    called without it, so a client never learnt its argument had been dropped."""
    route = respx.get(url__regex=r"https?://.*").mock(return_value=httpx.Response(200, json={}))
    _, client = await make_client(vendor_env={"COINGLASS_API_KEY": "k"})
    args = {"exchange": "Binance", "symbol": "BTCUSDT", "interval": "4h", "limit": None}
    r = await client.post(
        "/invoke", json={"operation": "coinglass.futures_funding_rate_history", "args": args}
    )
    assert r.status_code == 422, r.text
    assert [d["field"] for d in r.json()["error"]["details"]] == ["limit"]
    assert route.call_count == 0
    # omitted, the argument is simply not sent
    del args["limit"]
    r = await client.post(
        "/invoke", json={"operation": "coinglass.futures_funding_rate_history", "args": args}
    )
    assert r.status_code == 200 and "limit" not in route.calls.last.request.url.params


async def test_every_bad_argument_is_named_in_one_answer(make_client) -> None:
    """A number sent as text was named only once the other mistakes were fixed; an argument
    called `query` (coingecko.search) was reported as `<root>`."""
    _, client = await make_client()
    r = await client.post("/invoke", json={"operation": "get_liquidations", "limit": "5"})
    assert r.status_code == 422
    assert {d["field"] for d in r.json()["error"]["details"]} == {"symbol", "limit"}
    r = await client.post("/invoke", json={"operation": "coingecko.search", "query": 5})
    assert r.status_code == 422
    assert [d["field"] for d in r.json()["error"]["details"]] == ["query"]
    assert r.json()["error"]["message"] == "invalid arguments for coingecko.search: query"


async def test_args_and_flat_together_are_rejected(make_client) -> None:
    _, client = await make_client()
    r = await client.post(
        "/invoke", json={"operation": "get_signal", "args": {"symbol": "BTC"}, "symbol": "ETH"}
    )
    assert r.status_code == 422


async def test_missing_vendor_key_names_the_env_var(make_client) -> None:
    _, client = await make_client(vendor_env={})
    r = await client.post("/invoke", json={"operation": "coinglass.futures_supported_coins"})
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "vendor_key_missing"
    assert "COINGLASS_API_KEY" in r.json()["error"]["message"]


@respx.mock
async def test_vendor_call_is_authenticated_cached_and_returned(make_client) -> None:
    body = recorded("coinglass/funding-rate__fr-ohlc-histroy.json")
    route = respx.get(f"{CG}/api/futures/funding-rate/history").mock(
        return_value=httpx.Response(200, json=body)
    )
    _, client = await make_client(vendor_env={"COINGLASS_API_KEY": "cg-secret"})
    args = {"exchange": "Binance", "symbol": "BTCUSDT", "interval": "4h", "limit": 2}
    first = await client.post(
        "/invoke", json={"operation": "coinglass.futures_funding_rate_history", "args": args}
    )
    second = await client.post(
        "/invoke", json={"operation": "coinglass.futures_funding_rate_history", **args}
    )
    assert first.status_code == second.status_code == 200
    assert first.json()["result"] == body
    assert route.call_count == 1  # second answer from the TTL cache
    request = route.calls[0].request
    assert request.headers["CG-API-KEY"] == "cg-secret"
    assert dict(request.url.params) == {
        "exchange": "Binance",
        "symbol": "BTCUSDT",
        "interval": "4h",
        "limit": "2",
    }
    assert "cg-secret" not in first.text


@respx.mock
async def test_path_parameters_and_bearer_auth(make_client) -> None:
    body = recorded("lunarcrush/coins_coin_v1.json")
    route = respx.get("https://lunarcrush.com/api4/public/coins/BTC/v1").mock(
        return_value=httpx.Response(200, json=body)
    )
    _, client = await make_client(vendor_env={"LUNARCRUSH_API_KEY": "lc"})
    r = await client.post("/invoke", json={"operation": "lunarcrush.coins_v1", "coin": "BTC"})
    assert r.status_code == 200 and r.json()["result"] == body
    assert route.calls[0].request.headers["Authorization"] == "Bearer lc"


@pytest.mark.parametrize(
    ("vendor_status", "headers", "expected", "code"),
    [
        (429, {"Retry-After": "7"}, 429, "vendor_rate_limited"),
        (503, {}, 502, "vendor_error"),
        (401, {}, 502, "vendor_auth_failed"),
        (400, {}, 400, "vendor_rejected"),
    ],
)
@respx.mock
async def test_vendor_errors_are_translated(
    make_client, vendor_status, headers, expected, code
) -> None:
    respx.get("https://api.alternative.me/fng/").mock(
        return_value=httpx.Response(vendor_status, json={"error": "nope"}, headers=headers)
    )
    _, client = await make_client()
    r = await client.post("/invoke", json={"operation": "feargreed.fng", "limit": 2})
    assert r.status_code == expected
    assert r.json()["error"]["code"] == code
    if expected == 429:
        assert r.headers["Retry-After"] == "7"


@respx.mock
async def test_a_vendor_echoing_our_key_at_the_end_of_a_long_message_leaks_none_of_it(
    make_client,
) -> None:
    key = "cg-0123456789abcdefghijklmnopqrstuvwxyz"
    # the key straddles where a long vendor message is cut for the error body
    echoed = "invalid key for " + "x" * (300 - 16 - 12) + key
    respx.get(f"{CG}/api/futures/supported-coins").mock(
        return_value=httpx.Response(401, json={"msg": echoed})
    )
    _, client = await make_client(vendor_env={"COINGLASS_API_KEY": key})
    r = await client.post("/invoke", json={"operation": "coinglass.futures_supported_coins"})
    assert r.status_code == 502 and r.json()["error"]["code"] == "vendor_auth_failed"
    assert key[:12] not in r.text
    assert r.json()["error"]["details"]["vendorMessage"].startswith("invalid key for xxx")


@pytest.mark.parametrize("retry_after", ["inf", "1e400", "1e300", "-5", "soon"])
@respx.mock
async def test_any_retry_after_of_a_vendor_is_passed_on_as_a_sane_number(
    make_client, retry_after
) -> None:
    respx.get("https://api.alternative.me/fng/").mock(
        return_value=httpx.Response(
            429, json={"error": "slow down"}, headers={"Retry-After": retry_after}
        )
    )
    _, client = await make_client()
    r = await client.post("/invoke", json={"operation": "feargreed.fng"})
    assert r.status_code == 429 and r.json()["error"]["code"] == "vendor_rate_limited"
    assert 1 <= int(r.headers["Retry-After"]) <= 3 * 86_400


@respx.mock
async def test_a_binance_ban_without_retry_after_passes_on_the_time_its_message_names(
    make_client,
) -> None:
    """A 418 without Retry-After told our caller to come back in 60 s, though Binance's
    message said the ban lasts ten minutes; now the caller is told the ban's end."""
    until_ms = int((time.time() + 600) * 1000)
    respx.get("https://fapi.binance.com/fapi/v1/time").mock(
        return_value=httpx.Response(
            418,
            json={
                "code": -1003,
                "msg": f"Way too many requests; IP(203.0.113.7) banned until {until_ms}. "
                "Please use the websocket for live updates to avoid bans.",
            },
        )
    )
    _, client = await make_client()
    r = await client.post("/invoke", json={"operation": "binance.time"})
    assert r.status_code == 429 and r.json()["error"]["code"] == "vendor_rate_limited"
    assert 590 <= int(r.headers["Retry-After"]) <= 600


@respx.mock
async def test_vendor_timeout_is_504(make_client) -> None:
    respx.get("https://api.alternative.me/fng/").mock(side_effect=httpx.ReadTimeout("slow"))
    _, client = await make_client()
    r = await client.post("/invoke", json={"operation": "feargreed.fng"})
    assert r.status_code == 504 and r.json()["error"]["code"] == "vendor_timeout"


@respx.mock
async def test_coinglass_envelope_error_code_is_translated(make_client) -> None:
    respx.get(f"{CG}/api/futures/supported-coins").mock(
        return_value=httpx.Response(200, json={"code": "401", "msg": "bad key", "data": None})
    )
    _, client = await make_client(vendor_env={"COINGLASS_API_KEY": "k"})
    r = await client.post("/invoke", json={"operation": "coinglass.futures_supported_coins"})
    assert r.status_code == 400
    assert r.json()["error"]["details"]["vendorMessage"] == "bad key"


@respx.mock
async def test_per_vendor_budget_answers_429_with_retry_after(make_client) -> None:
    body = recorded("alternative_me/fng_limit2.json")
    route = respx.get("https://api.alternative.me/fng/").mock(
        return_value=httpx.Response(200, json=body)
    )
    _, client = await make_client()
    statuses = []
    for limit in range(1, 33):  # distinct args defeat the cache; the budget is 30/min
        r = await client.post("/invoke", json={"operation": "feargreed.fng", "limit": limit})
        statuses.append(r.status_code)
    assert statuses[:30] == [200] * 30
    assert statuses[30:] == [429, 429]
    assert route.call_count == 30
    assert int(r.headers["Retry-After"]) >= 1


COINAPI = "https://rest.coinapi.io"


def _exchange(exchange_id: str) -> dict[str, object]:
    return {"operation": "coinapi.exchange", "exchange_id": exchange_id}


@respx.mock
async def test_coinapi_pass_through_spends_only_its_daily_share_of_the_key(make_client) -> None:
    """CoinAPI's credits are per key per 24 h and the ingestor spends the same key: the
    pass-through had only its 20 calls a minute, so a GPT user spent a free key's 100 credits
    in five minutes and the whale-trade source earned 429s for the rest of the day. Now it
    spends its daily share (GATEWAY_COINAPI_DAILY_SHARE, 10 % by default) and then answers
    429 vendor_budget_exhausted saying when its oldest call of the 24 h frees."""
    route = respx.get(url__startswith=f"{COINAPI}/v1/exchanges/").mock(
        return_value=httpx.Response(200, json=[{"exchange_id": "X"}])
    )
    _, client = await make_client(
        vendor_env={"COINAPI_API_KEY": "ca-key"}, coinapi_daily_credits=100
    )
    answers = [await client.post("/invoke", json=_exchange(f"EX{i}")) for i in range(12)]
    assert [a.status_code for a in answers] == [200] * 10 + [429, 429]
    assert route.call_count == 10  # the ingestor's 80 (and the headroom) were not touched
    refused = answers[-1]
    assert refused.json()["error"]["code"] == "vendor_budget_exhausted"
    assert 86_000 < int(refused.headers["Retry-After"]) <= 86_400


@respx.mock
async def test_coinapi_pass_through_counts_the_key_s_reported_use(make_client) -> None:
    """`x-ratelimit-used` is the whole key's use over 24 h (the ingestor, other gateway
    processes, other programs): beyond the ingestor's part (80 of 100) it counts against
    the pass-through's 10, which refuses before CoinAPI does and asks again after a while."""
    route = respx.get(url__startswith=f"{COINAPI}/v1/exchanges/").mock(
        return_value=httpx.Response(
            200,
            json=[{"exchange_id": "X"}],
            headers={"x-ratelimit-limit": "100", "x-ratelimit-used": "91"},
        )
    )
    _, client = await make_client(
        vendor_env={"COINAPI_API_KEY": "ca-key"}, coinapi_daily_credits=100
    )
    first = await client.post("/invoke", json=_exchange("EX1"))
    second = await client.post("/invoke", json=_exchange("EX2"))
    assert first.status_code == 200
    assert second.status_code == 429
    assert second.json()["error"]["code"] == "vendor_budget_exhausted"
    assert 1 <= int(second.headers["Retry-After"]) <= 900
    assert route.call_count == 1


async def test_validate_signal_round_trips_through_the_judge(make_client, producer) -> None:
    app, client = await make_client(gateway_judge_timeout_s=5)
    model_of(app).apply(b.signal("BTCUSDT", score=72))

    async def judge(event: object) -> None:
        if isinstance(event, JudgeRequestV1):
            judged = b.signal(
                event.symbol, score=event.score or 0, direction=event.direction, verdict="DOWNSIZE"
            )
            model_of(app).apply(b.reply_for(event.correlation_id or "", judged))

    producer.on_publish = judge
    r = await client.post(
        "/judge/validate",
        json={"symbol": "btc", "direction": "SHORT", "score": 40, "stopLossPrice": 44000},
    )
    assert r.status_code == 200, r.text
    assert r.json()["signal"] == "SHORT"
    assert r.json()["aiVerdictLayer"]["verdict"] == "DOWNSIZE"
    request = next(e for e in producer.events if isinstance(e, JudgeRequestV1))
    assert request.correlation_id and request.reply_topic == "perpsignal.judge.replies.v1"
    assert request.stop_loss_price == 44000
    assert request.signal is not None and request.signal.score == 72  # context sent along


async def test_validate_times_out_with_504(make_client, producer) -> None:
    app, client = await make_client(gateway_judge_timeout_s=0.2)
    model_of(app).apply(b.signal("BTCUSDT"))
    r = await client.post("/judge/validate", json={"symbol": "BTC", "direction": "LONG"})
    assert r.status_code == 504
    assert r.json()["error"]["code"] == "judge_timeout"
    assert any(isinstance(e, JudgeRequestV1) for e in producer.events)


async def test_vendor_account_writes_are_opt_in(make_client) -> None:
    _, closed = await make_client()
    r = await closed.post("/invoke", json={"operation": "lunarcrush.searches_delete", "slug": "x"})
    assert r.status_code == 404
    _, opened = await make_client(gateway_vendor_write_operations=True)
    listing = await opened.get("/invoke/operations", params={"prefix": "lunarcrush.searches_"})
    assert "lunarcrush.searches_delete" in {o["name"] for o in listing.json()["operations"]}


async def test_every_status_invoke_answers_for_an_untracked_symbol_is_documented(
    make_client,
) -> None:
    """GPT Actions call everything through /invoke: its document must list these too."""
    _, client = await make_client()
    doc = (await client.get("/openapi.json")).json()
    documented = doc["paths"]["/invoke"]["post"]["responses"]
    pending = await client.post("/invoke", json={"operation": "get_signal", "symbol": "ETH"})
    assert pending.status_code == 202  # tracking requested: retry later
    no_context = await client.post(
        "/invoke", json={"operation": "validate_signal", "symbol": "SOL", "direction": "LONG"}
    )
    assert no_context.status_code == 409
    for r in (pending, no_context):
        assert str(r.status_code) in documented, r.status_code
        assert "Retry-After" in r.headers
