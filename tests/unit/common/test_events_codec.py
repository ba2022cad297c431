"""The event codec: exact ids, lossless round trips, malformed events refused with a reason."""

from __future__ import annotations

import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from perpsignal_common.errors import PoisonMessage
from perpsignal_common.events.base import EVENT_NAMESPACE, deterministic_id
from perpsignal_common.events.registry import decode, encode
from perpsignal_common.events.signals import (
    FactorScore,
    Ohlc,
    SignalScoredV1,
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


_LAZY = """
import sys
from perpsignal_common.events import registry
from perpsignal_common.events.market import CandleClosedV1, FundingRateV1
built = [c.__name__ for c in registry.EVENT_CLASSES if c.__pydantic_complete__]
assert not built, f"built at import: {built}"
{action}
assert all(c.__pydantic_complete__ for c in {expect}), "not built"
"""


@pytest.mark.parametrize(
    ("action", "expect"),
    [
        # a service: every model built at start-up (`freeze_startup_heap` calls `warm`)
        (
            "from perpsignal_common.runtime import freeze_startup_heap; freeze_startup_heap()",
            "registry.EVENT_CLASSES",
        ),
        # a tool that decodes without warming: the first decode builds what it needs
        (
            """
raw = b'{"type":"market.funding","event_id":"x","symbol":"BTCUSDT","rate":0.0001,'
raw += b'"observed_at":"2024-01-01T00:00:00Z","source":"t","venue":"binance"}'
try:
    registry.decode(raw)
except Exception as exc:  # an incomplete record is poison either way; the build happened
    assert type(exc).__name__ == "PoisonMessage", exc
""",
            "[FundingRateV1]",
        ),
    ],
)
def test_event_models_are_built_on_first_use_or_at_service_start(action: str, expect: str) -> None:
    """Importing the contract builds no validator (~0.15 s a command that never validates
    an event, such as a backtest, would pay); a service builds them all before its first
    message, and a decode outside a service builds what it reads."""
    code = _LAZY.replace("{action}", action).replace("{expect}", expect)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
