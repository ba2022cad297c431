"""The in-process Judge API: ids, suppression flag, requests with caller plans."""

from __future__ import annotations

from pathlib import Path

import pytest

from perpsignal_common.events.base import deterministic_id
from perpsignal_common.events.registry import decode, encode
from perpsignal_common.events.signals import (
    JudgeRequestV1,
    SignalJudgedV1,
    SignalScoredV1,
    VerdictLayer,
)
from perpsignal_judge.judge import Judge
from perpsignal_judge.settings import JudgeSettings
from tests.unit.judge.builders import T0, load_candles, signal

BULL = dict.fromkeys(("momentum", "smart_money", "oi_trend", "liquidations"), 70.0)


async def test_judged_event_keeps_the_signal_and_derives_ids(shared_data: Path) -> None:
    sig = signal(factors=BULL, candles=load_candles(shared_data))
    judged = await Judge(JudgeSettings()).judge(sig)
    assert judged.event_id == deterministic_id(sig.event_id, "judge")
    assert judged.causation_id == sig.event_id
    assert judged.signal_id == sig.signal_id and judged.symbol == sig.symbol
    assert judged.score == sig.score and judged.factors == sig.factors
    roundtrip = decode(encode(judged))
    assert isinstance(roundtrip, SignalJudgedV1) and roundtrip.event_id == judged.event_id


@pytest.mark.parametrize(("auto_skip", "suppressed"), [(True, True), (False, False)])
async def test_skip_and_avoid_are_published_but_flagged(
    shared_data: Path, auto_skip: bool, suppressed: bool
) -> None:
    judge = Judge(JudgeSettings(auto_skip_avoid_signals=auto_skip))
    skipped = await judge.judge(signal(confidence=20, candles=load_candles(shared_data)))
    assert skipped.ai_verdict_layer.verdict == "SKIP"
    assert skipped.ai_verdict_layer.suppressed is suppressed
    fine = await judge.judge(signal(factors=BULL, candles=load_candles(shared_data)))
    assert fine.ai_verdict_layer.verdict == "CONFIRM"
    assert fine.ai_verdict_layer.suppressed is False


async def test_rules_only_api_matches_the_async_path_when_llm_off(shared_data: Path) -> None:
    judge = Judge(JudgeSettings())
    sig = signal(factors=BULL, candles=load_candles(shared_data), ls_ratio=2.4)
    a, b = await judge.judge(sig), judge.judge_rules(sig)
    assert a.model_dump(exclude={"produced_at"}) == b.model_dump(exclude={"produced_at"})


@pytest.mark.parametrize(
    "kwargs",
    [
        {"factors": BULL},
        {"factors": BULL, "direction": "SHORT", "funding_rate": -0.001},
        {"direction": "NEUTRAL", "score": 50},
        {"confidence": 20},
        {"factors": BULL, "candles_n": 5},  # too few candles: empty volatility
    ],
)
def test_judged_event_is_the_same_as_a_validated_one(
    shared_data: Path, kwargs: dict[str, object]
) -> None:
    """The judge builds its output without re-validating; it must equal the checked model."""
    # built from a scored signal's fields: they must be the judged event's, but its verdict
    assert set(SignalJudgedV1.model_fields) == {*SignalScoredV1.model_fields, "ai_verdict_layer"}
    n = int(kwargs.pop("candles_n", 100))  # type: ignore[call-overload]
    sig = signal(candles=load_candles(shared_data)[-n:], **kwargs)  # type: ignore[arg-type]
    judged = Judge(JudgeSettings()).judge_rules(sig)
    checked = SignalJudgedV1.model_validate(judged.model_dump())
    assert judged == checked
    # as the validated constructor records it: every field but the defaulted envelope ones
    assert judged.model_fields_set == set(SignalJudgedV1.model_fields) - {
        "type",
        "schema_version",
        "produced_at",
    }
    layer = judged.ai_verdict_layer
    validated = VerdictLayer.model_validate(layer.model_dump(exclude_unset=True))
    assert layer == validated
    # the same JSON (an int where the contract says float would differ here) and the same
    # fields recorded as given, down to the nested models built without validation
    assert layer.model_dump_json() == validated.model_dump_json()
    assert (
        layer.model_fields_set
        == validated.model_fields_set
        == set(VerdictLayer.model_fields) - {"model"}
    )
    for built, checked in (
        (layer.layer_checks, validated.layer_checks),
        (layer.volatility_metrics, validated.volatility_metrics),
    ):
        assert built.model_fields_set == checked.model_fields_set
    assert decode(encode(judged)) == judged


async def test_configurable_atr_timeframe_uses_aggregated_candles(shared_data: Path) -> None:
    candles = load_candles(shared_data)
    sig = signal(factors=BULL, candles=candles)
    one_h = (await Judge(JudgeSettings()).judge(sig)).ai_verdict_layer.volatility_metrics
    four_h = (
        await Judge(JudgeSettings(judge_atr_timeframe="4h")).judge(sig)
    ).ai_verdict_layer.volatility_metrics
    assert one_h.atr is not None and four_h.atr is not None
    assert four_h.atr > one_h.atr  # 4h ranges are wider than 1h ranges


def request(**kw: object) -> JudgeRequestV1:
    base: dict[str, object] = {
        "event_id": "req-1",
        "source": "gateway",
        "symbol": "XRPUSDT",
        "observed_at": T0,
        "correlation_id": "corr-1",
        "direction": "LONG",
    }
    return JudgeRequestV1(**{**base, **kw})  # type: ignore[arg-type]


async def test_request_with_context_gets_a_reply_with_the_same_correlation(
    shared_data: Path,
) -> None:
    ctx = signal(factors=BULL, candles=load_candles(shared_data))
    reply = await Judge(JudgeSettings()).judge_request(request(signal=ctx))
    assert reply.ok and reply.correlation_id == "corr-1" and reply.judged is not None
    plan = reply.judged.ai_verdict_layer.volatility_metrics
    assert plan.stop_loss_price is not None and plan.stop_loss_price < ctx.price


async def test_request_with_stop_on_the_wrong_side_is_skipped(shared_data: Path) -> None:
    ctx = signal(factors=BULL, candles=load_candles(shared_data))
    entry = ctx.price
    reply = await Judge(JudgeSettings()).judge_request(
        request(
            signal=ctx,
            entry_price=entry,
            stop_loss_price=entry * 1.02,
            take_profit_price=entry * 1.05,
        )
    )
    assert reply.judged is not None
    layer = reply.judged.ai_verdict_layer
    assert layer.verdict == "SKIP"
    assert any("wrong side" in c for c in layer.layer_checks.conflicts)


async def test_request_with_tight_stop_is_downsized(shared_data: Path) -> None:
    ctx = signal(factors=BULL, candles=load_candles(shared_data))
    entry = ctx.price
    reply = await Judge(JudgeSettings()).judge_request(
        request(
            signal=ctx,
            entry_price=entry,
            stop_loss_price=entry * 0.999,
            take_profit_price=entry * 1.05,
        )
    )
    assert reply.judged is not None
    assert reply.judged.ai_verdict_layer.verdict == "DOWNSIZE"
    assert any("inside 1 ATR" in c for c in reply.judged.ai_verdict_layer.layer_checks.conflicts)


@pytest.mark.parametrize(
    ("stop", "target", "verdict"),
    [(1.02, 1.05, "SKIP"), (0.999, 1.05, "DOWNSIZE"), (0.97, 1.001, "DOWNSIZE")],
    ids=["stop-on-the-wrong-side", "stop-inside-1-atr", "reward-risk-under-1.5"],
)
async def test_a_request_s_summary_says_the_verdict_it_goes_with(
    shared_data: Path, stop: float, target: float, verdict: str
) -> None:
    """The caller's plan downgrades the verdict; its summary only had the verdict word
    swapped: "SKIP LONG XRPUSDT ...; factors line up. Risk NORMAL, size 1x (3 supporting,
    0 warnings)" beside a SKIP at size 0 with a wrong-side conflict."""
    ctx = signal(factors=BULL, candles=load_candles(shared_data))
    assert Judge(JudgeSettings()).judge_rules(ctx).ai_verdict_layer.verdict == "CONFIRM"
    entry = ctx.price
    reply = await Judge(JudgeSettings()).judge_request(
        request(
            signal=ctx,
            entry_price=entry,
            stop_loss_price=entry * stop,
            take_profit_price=entry * target,
        )
    )
    assert reply.judged is not None
    layer = reply.judged.ai_verdict_layer
    assert layer.verdict == verdict
    summary = layer.ai_summary
    assert summary.startswith(f"{verdict} LONG XRPUSDT")
    assert f"Risk {layer.risk_mode}, size {layer.position_multiplier:g}x" in summary
    assert f"{len(layer.layer_checks.conflicts)} warnings" in summary
    assert "factors line up" not in summary


async def test_request_without_any_price_is_an_error_reply() -> None:
    reply = await Judge(JudgeSettings()).judge_request(request())
    assert reply.ok is False and reply.error and "entry_price" in reply.error


async def test_request_without_context_is_judged_on_no_evidence() -> None:
    reply = await Judge(JudgeSettings()).judge_request(request(entry_price=1.0, score=80))
    assert reply.judged is not None
    layer = reply.judged.ai_verdict_layer
    assert layer.verdict in ("SKIP", "WAIT") and layer.position_multiplier == 0
    assert layer.volatility_metrics.atr is None  # no candles: no invented volatility


@pytest.mark.parametrize("times", [1000.0, 0.001, 2.5, 0.3])
async def test_request_with_an_entry_far_from_its_market_is_an_error_reply(
    shared_data: Path, times: float
) -> None:
    """An entry price that is not this market's (XRPUSDT at a BTC price, a misplaced decimal
    point) would get an ATR plan built from the context's candles around it: for an XRP
    entry of ~1000, a stop ~0.02 away (0.002 %), confirmed at full size. The judge refuses
    it, naming the market's price, instead of judging a plan that cannot fit."""
    ctx = signal(factors=BULL, candles=load_candles(shared_data))
    reply = await Judge(JudgeSettings()).judge_request(
        request(signal=ctx, entry_price=ctx.price * times)
    )
    assert reply.ok is False and reply.judged is None
    assert reply.error and "entry_price" in reply.error and f"{ctx.price:g}" in reply.error


@pytest.mark.parametrize("times", [1.0, 1.01, 0.9, 1.5, 0.6])
async def test_request_with_an_entry_near_its_market_is_judged(
    shared_data: Path, times: float
) -> None:
    ctx = signal(factors=BULL, candles=load_candles(shared_data))
    entry = ctx.price * times
    reply = await Judge(JudgeSettings()).judge_request(request(signal=ctx, entry_price=entry))
    assert reply.ok and reply.judged is not None
    plan = reply.judged.ai_verdict_layer.volatility_metrics
    assert plan.stop_loss_price is not None and plan.stop_loss_price < entry
