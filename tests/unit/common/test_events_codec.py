"""The event codec's fast paths give exactly what the plain pydantic paths give."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from perpsignal_common.errors import PoisonMessage
from perpsignal_common.events.base import EVENT_NAMESPACE, deterministic_id, trusted
from perpsignal_common.events.registry import decode, encode
from perpsignal_common.events.signals import (
    FactorScore,
    LayerChecks,
    Ohlc,
    SignalJudgedV1,
    SignalScoredV1,
    VerdictLayer,
    VolatilityMetrics,
)

T0 = datetime(2024, 3, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    "parts",
    [
        (),
        ("a",),
        ("bench", "BTCUSDT", 5),
        ("ünïcode ☃", None, 3.5, True),
        ("x" * 500, -1),
    ],
)
def test_deterministic_id_is_the_rfc_uuid5_of_the_joined_parts(parts: tuple[object, ...]) -> None:
    expected = str(uuid.uuid5(EVENT_NAMESPACE, "|".join(str(p) for p in parts)))
    assert deterministic_id(*parts) == expected
    assert uuid.UUID(deterministic_id(*parts)).version == 5


def _signal(candles: int = 20) -> SignalScoredV1:
    return SignalScoredV1(
        event_id="e1",
        source="scorer",
        symbol="BTCUSDT",
        observed_at=T0,
        signal_id="s1",
        timeframe="1h",
        direction="LONG",
        score=71,
        confidence=64,
        price=100.5,
        factors=(
            FactorScore(name="funding", score=60, weight=12.5, contribution=1.25, inputs={"r": 1}),
        ),
        candles=tuple(
            Ohlc(open_time=T0 + timedelta(hours=i), open=100, high=101 + i, low=99, close=100.5)
            for i in range(candles)
        ),
    )


def test_trusted_equals_the_validated_model_with_defaults_and_fields_set() -> None:
    vol = {"atr": 1.5, "atr_pct": 1.49, "volatility_class": "NORMAL"}
    layer = {
        "verdict": "CONFIRM",
        "risk_mode": "NORMAL",
        "position_multiplier": 1.0,
        "ai_summary": "ok",
        "layer_checks": LayerChecks(agreements=("a",)),
    }
    sig = _signal()
    scored = {name: getattr(sig, name) for name in SignalScoredV1.model_fields if name != "type"}
    for cls, values in (
        (VolatilityMetrics, vol),
        (VerdictLayer, {**layer, "volatility_metrics": VolatilityMetrics(**vol)}),
        (
            SignalJudgedV1,
            {
                **scored,
                "ai_verdict_layer": VerdictLayer(**layer),  # type: ignore[arg-type]
            },
        ),
    ):
        fast, slow = trusted(cls, **values), cls(**values)  # type: ignore[operator]
        assert fast == slow
        assert fast.model_fields_set == slow.model_fields_set
        assert list(fast.__dict__) == list(slow.__dict__)
        assert fast.model_dump_json() == slow.model_dump_json()


def test_trusted_fills_default_factories_afresh() -> None:
    a = trusted(SignalScoredV1, **_without_produced_at(_signal(0)))
    b = trusted(SignalScoredV1, **_without_produced_at(_signal(0)))
    assert a.produced_at.tzinfo is not None and a.produced_at >= T0
    assert trusted(FactorScore, name="funding", score=50, weight=1, contribution=0).inputs == {}
    assert a.smc is None and b.smc is None


def _without_produced_at(sig: SignalScoredV1) -> dict[str, object]:
    return {k: v for k, v in sig.__dict__.items() if k != "produced_at"}


def test_trusted_refuses_missing_and_unknown_fields() -> None:
    with pytest.raises(TypeError, match="missing fields \\['ai_summary'"):
        trusted(VerdictLayer, verdict="WAIT", risk_mode="AVOID", position_multiplier=0.0)
    with pytest.raises(TypeError, match="unknown fields \\['colour'\\]"):
        trusted(VolatilityMetrics, colour="red")


def test_signal_round_trip_keeps_every_candle() -> None:
    sig = _signal(30)
    back = decode(encode(sig))
    assert back == sig
    assert isinstance(back, SignalScoredV1) and back.candles[-1].high == 130


@pytest.mark.parametrize(
    ("bad", "where"),
    [
        (b'"high":"tall"', "candles.3.high"),
        (b'"open_time":"yesterday"', "candles.3.open_time"),
        (b'"open_time":"2024-03-01T03:00:00"', "candles.3.open_time"),  # no zone
    ],
)
def test_a_malformed_candle_is_poison_naming_the_field(bad: bytes, where: str) -> None:
    raw = encode(_signal(10))
    candle = raw.split(b'"candles":[')[1].split(b"}")[3]  # the 4th candle
    key = bad.split(b":")[0]
    start = candle.index(key)
    end = candle.index(b",", start)
    broken = raw.replace(candle, candle[:start] + bad + candle[end:], 1)
    assert broken != raw
    with pytest.raises(PoisonMessage, match=where.replace(".", "\\.")):
        decode(broken)
