"""REST surface: signal forms, debug mode, filters, market ages, on-demand, 404s, shapes."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import respx

from perpsignal_common.events.market import TrackCommandV1
from perpsignal_gateway.main import create_app
from tests.unit.gateway import builders as b
from tests.unit.gateway.conftest import model_of, recorded, settings


async def test_signal_accepts_coin_lowercase_and_pair(make_client) -> None:
    app, client = await make_client()
    event = b.signal("BTCUSDT", score=72.0)
    model_of(app).apply(event)
    bodies = []
    for form in ("BTC", "btc", "BTCUSDT"):
        r = await client.get(f"/signals/{form}")
        assert r.status_code == 200, r.text
        bodies.append(r.json())
    assert bodies[0] == bodies[1] == bodies[2]
    body = bodies[0]
    assert body["symbol"] == "BTCUSDT"
    assert body["signal"] == "LONG"
    assert body["score"] == 72.0
    layer = body["aiVerdictLayer"]
    assert layer["verdict"] == "CONFIRM"
    checks = event.ai_verdict_layer.layer_checks
    assert layer["layerChecks"] == {
        "agreements": list(checks.agreements),
        "conflicts": list(checks.conflicts),
    }
    stop = event.ai_verdict_layer.volatility_metrics.stop_loss_price
    assert stop is not None and layer["volatilityMetrics"]["stopLossPrice"] == stop
    # camelCase everywhere, no snake_case keys leak
    assert "ai_verdict_layer" not in body and "topFactors" in body
    assert [f["name"] for f in body["topFactors"]] == list(event.top_factors)
    assert "debug" not in body or body["debug"] is None


async def test_debug_adds_factor_inputs_and_raw_metrics(make_client) -> None:
    app, client = await make_client()
    event = b.signal("ETHUSDT")
    model_of(app).apply(event)
    r = await client.get("/signals/eth", params={"debug": "true"})
    assert r.status_code == 200
    debug = r.json()["debug"]
    # the scorer's own input names, flattened as factor.input
    real = {f.name: f for f in event.factors}
    assert debug["rawMetrics"]["funding.rate_8h"] == real["funding"].inputs["rate_8h"]
    assert debug["rawMetrics"]["momentum.rsi"] == real["momentum"].inputs["rsi"]
    funding = next(f for f in debug["factors"] if f["name"] == "funding")
    assert funding["inputs"] == real["funding"].inputs
    assert funding["contribution"] == real["funding"].contribution


async def test_newer_signal_replaces_older_but_not_the_reverse(make_client) -> None:
    app, client = await make_client()
    model = model_of(app)
    model.apply(b.signal("BTCUSDT", score=60.0, at=b.T0))
    model.apply(b.signal("BTCUSDT", score=80.0, at=b.T0 + timedelta(hours=1)))
    model.apply(b.signal("BTCUSDT", score=10.0, at=b.T0 - timedelta(hours=1)))  # late replay
    assert (await client.get("/signals/BTC")).json()["score"] == 80.0


async def test_list_filters_and_order(make_client) -> None:
    app, client = await make_client()
    model = model_of(app)
    model.apply(b.signal("BTCUSDT", score=72, direction="LONG", verdict="CONFIRM"))
    model.apply(b.signal("ETHUSDT", score=35, direction="SHORT", verdict="DOWNSIZE"))
    model.apply(b.signal("SOLUSDT", score=90, direction="LONG", verdict="SKIP"))
    all_ = (await client.get("/signals")).json()
    assert [s["symbol"] for s in all_["signals"]] == ["SOLUSDT", "BTCUSDT", "ETHUSDT"]
    longs = (await client.get("/signals", params={"direction": "LONG", "minScore": 80})).json()
    assert [s["symbol"] for s in longs["signals"]] == ["SOLUSDT"]
    confirmed = (await client.get("/signals", params={"verdict": "CONFIRM"})).json()
    assert confirmed["count"] == 1 and confirmed["signals"][0]["symbol"] == "BTCUSDT"
    limited = (await client.get("/signals", params={"limit": 2})).json()
    assert limited["count"] == 2
    bad = await client.get("/signals", params={"direction": "UP", "limit": 0})
    assert bad.status_code == 422
    fields = {d["field"] for d in bad.json()["error"]["details"]}
    assert fields == {"direction", "limit"}


async def test_unknown_symbol_is_404_with_clear_message(make_client, producer) -> None:
    _, client = await make_client()
    r = await client.get("/signals/NOPECOIN")
    assert r.status_code == 404
    err = r.json()["error"]
    assert err["code"] == "unknown_symbol"
    assert "NOPECOINUSDT" in err["message"]
    assert producer.events == []  # nothing requested for a symbol that does not exist


async def test_listed_untracked_symbol_requests_tracking_then_202(make_client, producer) -> None:
    _, client = await make_client(gateway_on_demand_wait_s=0.2)
    r = await client.get("/signals/sol")
    assert r.status_code == 202
    assert r.headers["Retry-After"] == "1"  # ceil(0.2 s)
    assert r.json()["symbol"] == "SOLUSDT"
    commands = [e for e in producer.events if isinstance(e, TrackCommandV1)]
    assert [(c.symbol, c.action) for c in commands] == [("SOLUSDT", "track")]


async def test_on_demand_returns_the_first_signal_when_it_arrives_in_time(
    make_client, producer
) -> None:
    app, client = await make_client(gateway_on_demand_wait_s=5)

    async def scorer_and_judge(event: object) -> None:
        # the rest of the platform answers the track command with a judged signal
        async def later() -> None:
            await asyncio.sleep(0)
            model_of(app).apply(b.signal("SOLUSDT", score=66.0))

        asyncio.get_running_loop().create_task(later())

    producer.on_publish = scorer_and_judge
    r = await client.get("/signals/SOL")
    assert r.status_code == 200
    assert r.json()["symbol"] == "SOLUSDT" and r.json()["score"] == 66.0


async def test_market_reports_every_source_with_its_age(make_client) -> None:
    app, client = await make_client()
    now = datetime.now(UTC)
    model = model_of(app)
    model.apply(b.funding("BTCUSDT", at=now - timedelta(seconds=120)))
    model.apply(b.open_interest("BTCUSDT", at=now - timedelta(seconds=30)))
    r = await client.get("/market/BTC")
    assert r.status_code == 200
    body = r.json()
    ages = {s["type"]: s["ageS"] for s in body["sources"]}
    assert set(ages) == {"market.funding", "market.open_interest"}
    assert 119 <= ages["market.funding"] < 125
    assert 29 <= ages["market.open_interest"] < 35
    assert body["price"] == 43010.0  # mark price of the funding event
    assert (await client.get("/market/XRP")).status_code == 404


async def test_market_data_is_camel_case_without_the_envelope(make_client) -> None:
    """A source's `data` is the event's own fields in camelCase, like every REST body: it
    used to pass the snake_case payload through, with the envelope's causal ids in it."""
    app, client = await make_client()
    funding = b.funding("BTCUSDT", at=datetime.now(UTC)).model_copy(
        update={"correlation_id": "root-1", "causation_id": "cause-1"}
    )
    model_of(app).apply(funding)
    for r in (
        await client.get("/market/BTC"),
        await client.post("/gpt/market", json={"symbol": "BTC"}),
    ):
        assert r.status_code == 200
        data = r.json()["sources"][0]["data"]
        assert data["markPrice"] == 43010.0 and data["rate"] == 0.0001
        assert "nextFundingAt" in data and "intervalH" in data
        assert not any("_" in k for k in data), data
        assert not {"correlationId", "causationId", "eventId"} & set(data)


async def test_smc_mss_listings_and_liquidations(make_client) -> None:
    app, client = await make_client()
    model = model_of(app)
    model.apply(b.signal("BTCUSDT"))
    model.apply(b.mss("AAA", score=80, tier="STRONG"))
    model.apply(b.mss("BBB", score=40, tier="WEAK"))
    model.apply(b.listing("NEWUSDT"))
    for n, (side, usd) in enumerate([("LONG", 1000.0), ("SHORT", 250.0), ("LONG", 500.0)]):
        model.apply(b.liquidation("BTCUSDT", side=side, notional=usd, n=n))

    smc = (await client.get("/smc/btc")).json()
    assert smc["smc"]["bias"] == "BULLISH" and smc["smc"]["byTimeframe"]["1h"] == "BULLISH"
    mss = (await client.get("/mss", params={"minScore": 50})).json()
    assert [m["coin"] for m in mss["results"]] == ["AAA"]
    assert mss["results"][0]["socialMomentum"]["score"] == 65
    listings = (await client.get("/listings/new")).json()
    assert listings["listings"][0]["symbol"] == "NEWUSDT"
    liq = (await client.get("/liquidations/BTC", params={"limit": 2})).json()
    # newest first: the last two orders
    assert [o["notionalUsd"] for o in liq["orders"]] == [500.0, 250.0]
    assert liq["longLiquidationsUsd"] == 500.0 and liq["shortLiquidationsUsd"] == 250.0


async def test_a_symbol_seen_on_the_topics_is_served_by_every_endpoint_as_named(
    make_client,
) -> None:
    """ETHBTC (a Binance USD-M perpetual, no USDT suffix) is listed by /signals and served
    by the cached /signals/ETHBTC; the other endpoints must not rewrite it to ETHBTCUSDT."""
    app, client = await make_client()
    model = model_of(app)
    now = datetime.now(UTC)
    model.apply(b.signal("ETHBTC", price=0.05))
    model.apply(b.funding("ETHBTC", at=now))
    model.apply(b.liquidation("ETHBTC", notional=700.0))
    listed = (await client.get("/signals")).json()
    assert [s["symbol"] for s in listed["signals"]] == ["ETHBTC"]
    for path in (
        "/signals/ETHBTC",
        "/signals/ETHBTC?debug=true",
        "/signals/ethbtc?debug=true",
        "/market/ETHBTC",
        "/smc/ETHBTC",
        "/liquidations/ETHBTC",
    ):
        r = await client.get(path)
        assert r.status_code == 200, (path, r.text)
        assert r.json()["symbol"] == "ETHBTC", path
    assert (await client.get("/liquidations/ETHBTC")).json()["longLiquidationsUsd"] == 700.0
    # a bare coin still means its USDT perpetual
    model.apply(b.signal("BTCUSDT"))
    assert (await client.get("/signals/btc?debug=true")).json()["symbol"] == "BTCUSDT"


async def test_gpt_signal_takes_flat_parameters(make_client) -> None:
    app, client = await make_client()
    event = b.signal("BTCUSDT")
    model_of(app).apply(event)
    r = await client.post("/gpt/signal", json={"symbol": "btc", "debug": True})
    assert r.status_code == 200
    # the judged signal carries the scorer's candle window
    used = len(event.candles)
    assert r.json()["symbol"] == "BTCUSDT" and r.json()["debug"]["candlesUsed"] == used > 0
    r = await client.post("/gpt/signal", json={"symbol": "btc", "colour": "red"})
    assert r.status_code == 422
    assert r.json()["error"]["details"][0]["field"] == "colour"


async def test_health_ready_metrics_docs_are_served(make_client) -> None:
    _, client = await make_client()
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    assert (await client.get("/readyz")).status_code == 200
    await client.get("/ping")
    metrics = (await client.get("/metrics")).text
    assert 'gateway_http_requests_total{route="/ping",status="200"}' in metrics
    assert (await client.get("/docs")).status_code == 200
    assert (await client.get("/redoc")).status_code == 200
    assert (await client.get("/openapi.json")).json()["openapi"].startswith("3.1")


async def test_unknown_path_uses_the_error_shape(make_client) -> None:
    _, client = await make_client()
    r = await client.get("/nothing-here")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"


async def test_cached_hot_path_answers_exactly_like_the_routed_endpoint(make_client) -> None:
    app, client = await make_client()
    model_of(app).apply(b.signal("BTCUSDT"))
    hot = await client.get("/signals/BTC")  # served from the pre-rendered body
    routed = await client.get("/signals/BTC", params={"debug": "false"})  # through FastAPI
    assert hot.status_code == routed.status_code == 200
    assert hot.content == routed.content
    assert hot.headers["content-type"] == routed.headers["content-type"]
    flat = await client.post("/invoke", json={"operation": "get_signal", "symbol": "btc"})
    nested = await client.post(
        "/invoke", json={"operation": "get_signal", "args": {"symbol": "BTCUSDT"}}
    )
    slow = await client.post(  # debug=false makes it skip the hot path
        "/invoke", json={"operation": "get_signal", "symbol": "BTC", "debug": False}
    )
    assert flat.content == nested.content == slow.content
    assert flat.json()["result"] == hot.json()
    # what the hot path does not know still gets the routed answers
    assert (await client.get("/signals/NOPE")).status_code == 404
    bad = await client.post("/invoke", json={"operation": "get_signal", "symbol": 5})
    assert bad.status_code == 422
    metrics = (await client.get("/metrics")).text
    assert 'gateway_http_requests_total{route="/signals/{symbol}",status="200"}' in metrics


@pytest.mark.parametrize("raw", ["%20BTC", "BTC%20", "BTC%E2%80%8DUSDT", "BTC%CC%81", "BTC%0A"])
async def test_a_symbol_the_path_pattern_refuses_is_refused_by_the_hot_path_too(
    make_client, raw
) -> None:
    """The document's pattern holds whether or not the cached path answers."""
    app, client = await make_client()
    model_of(app).apply(b.signal("BTCUSDT"))
    model_of(app).apply(b.signal("SOLUSDT"))
    routed = await client.get(f"/signals/{raw}", params={"debug": "false"})
    hot = await client.get(f"/signals/{raw}")
    assert routed.status_code == 422
    assert hot.status_code == 422, hot.text


async def test_a_listener_failure_does_not_stop_the_read_model(make_client) -> None:
    from perpsignal_gateway.readmodel import TopicFollower

    app, client = await make_client()
    model = model_of(app)

    def broken(_event: object) -> None:
        raise RuntimeError("listener bug")

    model.listeners.append(broken)
    follower = TopicFollower.__new__(TopicFollower)  # only its record handling is exercised
    follower._model = model
    follower.caught_up = True
    follower.records_read = follower.poison = follower.apply_errors = 0
    from perpsignal_common.events.registry import encode

    follower._handle(encode(b.signal("BTCUSDT", score=11)))
    follower._handle(b"not json")
    follower._handle(encode(b.signal("ETHUSDT", score=22)))
    assert (follower.apply_errors, follower.poison, follower.records_read) == (2, 1, 3)
    # the state was updated before the listener failed, and later events still apply
    assert (await client.get("/signals/ETH")).json()["score"] == 22.0


@respx.mock
async def test_symbol_universe_comes_from_binance_exchange_info(producer) -> None:
    # the recorded exchangeInfo lists BTCUSDT and ETHUSDT perpetuals and a quarterly future
    body = recorded("binance_usdm/fapi_v1_exchangeInfo.recorded_trimmed.json")
    route = respx.get("https://fapi.binance.com/fapi/v1/exchangeInfo").mock(
        return_value=httpx.Response(200, json=body)
    )
    app = create_app(
        settings(gateway_on_demand_wait_s=0.05),
        vendor_env={},
        producer=producer,
        connect_kafka=False,
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            assert (await client.get("/signals/eth")).status_code == 202
            assert (await client.get("/signals/BTCUSDT_220325")).status_code == 404
            assert (await client.get("/signals/SOL")).status_code == 404
    assert route.call_count == 1  # cached for GATEWAY_UNIVERSE_TTL_S
    tracked = [e.symbol for e in producer.events if isinstance(e, TrackCommandV1)]
    assert tracked == ["ETHUSDT"]


@respx.mock
async def test_unreachable_universe_answers_503_with_the_reason_never_a_404(producer) -> None:
    """A symbol-list outage is not the symbol's fault: 503 + Retry-After on every route."""
    respx.get("https://fapi.binance.com/fapi/v1/exchangeInfo").mock(
        side_effect=httpx.ConnectError("no route")
    )
    app = create_app(settings(), vendor_env={}, producer=producer, connect_kafka=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            answers = [
                await client.get("/signals/ETH"),
                await client.post("/gpt/signal", json={"symbol": "ETH"}),
                await client.post("/invoke", json={"operation": "get_signal", "symbol": "ETH"}),
            ]
            # a symbol the topics already showed is still served during the outage
            model_of(app).apply(b.signal("BTCUSDT"))
            assert (await client.get("/signals/BTC")).status_code == 200
    for r in answers:
        assert r.status_code == 503, r.text
        error = r.json()["error"]
        assert error["code"] == "symbol_list_unavailable"
        assert "symbol list could not be fetched" in error["message"]
        assert "not a listed" not in error["message"]
        assert 1 <= int(r.headers["Retry-After"]) <= 30
        # camelCase like every body (and the 409 no_market_context's retryAfterS)
        assert error["details"]["retryAfterS"] == int(r.headers["Retry-After"])
        assert "retry_after_s" not in error["details"]


@respx.mock
async def test_the_503_of_an_unreachable_universe_is_in_the_openapi_document(producer) -> None:
    """Generated clients and GPT Actions learn every status from the document."""
    respx.get("https://fapi.binance.com/fapi/v1/exchangeInfo").mock(
        side_effect=httpx.ConnectError("no route")
    )
    app = create_app(settings(), vendor_env={}, producer=producer, connect_kafka=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            doc = (await client.get("/openapi.json")).json()
            answered = {
                ("/signals/{symbol}", "get"): await client.get("/signals/ETH"),
                ("/gpt/signal", "post"): await client.post("/gpt/signal", json={"symbol": "ETH"}),
                ("/judge/validate", "post"): await client.post(
                    "/judge/validate", json={"symbol": "ETH", "direction": "LONG"}
                ),
            }
    for (path, method), r in answered.items():
        assert r.status_code == 503, (path, r.text)
        assert "503" in doc["paths"][path][method]["responses"], path


async def test_signals_with_equal_scores_list_in_one_order_whatever_the_arrival(
    make_client,
) -> None:
    """Replicas learn symbols in different orders (one from the snapshot, one from the
    topics): a page of equal scores must still be the same page on both."""
    pages = []
    for symbols in (("BTCUSDT", "ETHUSDT", "SOLUSDT"), ("SOLUSDT", "BTCUSDT", "ETHUSDT")):
        app, client = await make_client()
        for sym in symbols:
            model_of(app).apply(b.signal(sym, score=60.0))
        body = (await client.get("/signals", params={"limit": 2})).json()
        pages.append([s["symbol"] for s in body["signals"]])
    assert pages[0] == pages[1] and len(pages[0]) == 2


def test_a_snapshot_record_holding_an_mss_the_topics_would_refuse_restores_the_rest() -> None:
    """A record keyed by a valid coin may still hold an MSS whose own coin is not one."""
    from perpsignal_common.events.snapshot import GatewaySnapshotV1
    from perpsignal_gateway.readmodel import ReadModel
    from perpsignal_gateway.snapshot import capture

    source = ReadModel()
    source.apply(b.mss("AAA"))
    good = capture(source, ("mss", "AAA"), {}, "test")
    bad = GatewaySnapshotV1.model_validate(
        {**good.model_dump(), "mss": b.mss("AAA").model_copy(update={"coin": "no coin!"})}
    )
    model = ReadModel()
    model.restore(bad)
    model.restore(good)
    assert list(model.mss) == ["AAA"]


def test_a_signal_without_its_own_top_factors_lists_only_factors_that_pull() -> None:
    """A record without `top_factors` (older, or a caller's) was given the three largest
    |contributions| even when they were 0: 'funding (50)' as a top factor of a signal that
    never saw a funding rate."""
    from perpsignal_gateway.schemas import signal_out
    from tests.producers import real_judged

    judged = real_judged(direction="NEUTRAL", recorded_only=True)
    pulling = [f.name for f in judged.factors if f.contribution]
    assert 0 < len(pulling) < 3, pulling  # a warming-up signal: fewer than three pull
    got = signal_out(judged.model_copy(update={"top_factors": ()}))
    assert [f.name for f in got.top_factors] == list(judged.top_factors) == pulling[:3]
