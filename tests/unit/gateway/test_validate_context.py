"""`/judge/validate` never lets the judge invent a market context for an untracked symbol."""

from __future__ import annotations

from perpsignal_common.events.market import TrackCommandV1
from perpsignal_common.events.signals import JudgeRequestV1
from tests.unit.gateway import builders as b
from tests.unit.gateway.conftest import model_of


async def test_untracked_symbol_is_tracked_and_answered_409_not_judged(
    make_client, producer
) -> None:
    _, client = await make_client()
    for path, body in (
        ("/judge/validate", {"symbol": "SOL", "direction": "LONG", "score": 80}),
        ("/invoke", {"operation": "validate_signal", "symbol": "SOL", "direction": "LONG"}),
    ):
        r = await client.post(path, json=body)
        assert r.status_code == 409, r.text
        error = r.json()["error"]
        assert error["code"] == "no_market_context"
        assert "no market context for SOLUSDT" in error["message"]
        assert int(r.headers["Retry-After"]) >= 1
    # tracking was requested (once), and the judge was never asked to make up a context
    assert [e.symbol for e in producer.events if isinstance(e, TrackCommandV1)] == ["SOLUSDT"]
    assert not any(isinstance(e, JudgeRequestV1) for e in producer.events)


async def test_unlisted_symbol_is_404(make_client, producer) -> None:
    _, client = await make_client()
    r = await client.post("/judge/validate", json={"symbol": "NOPE", "direction": "LONG"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_symbol"
    assert producer.events == []


async def test_context_that_arrives_while_waiting_is_sent_to_the_judge(
    make_client, producer
) -> None:
    app, client = await make_client(gateway_on_demand_wait_s=5, gateway_judge_timeout_s=5)

    async def bus(event: object) -> None:
        if isinstance(event, TrackCommandV1):  # the scorer picks the symbol up
            model_of(app).apply(b.signal(event.symbol, score=64))
        elif isinstance(event, JudgeRequestV1):
            judged = b.signal(event.symbol, direction=event.direction, verdict="CONFIRM")
            model_of(app).apply(b.reply_for(event.correlation_id or "", judged))

    producer.on_publish = bus
    r = await client.post("/judge/validate", json={"symbol": "ETH", "direction": "LONG"})
    assert r.status_code == 200, r.text
    request = next(e for e in producer.events if isinstance(e, JudgeRequestV1))
    assert request.signal is not None and request.signal.score == 64
