"""The judge's fast codec validates only the newest candle of a sliding window: a hostile newest
candle must still be poison (it takes the shared codec's path), and the symbol's next clean
signal still decodes on the fast path."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic_core import to_json

from perpsignal_common.errors import PoisonMessage
from perpsignal_common.events.registry import encode
from perpsignal_common.events.signals import Ohlc, SignalScoredV1
from perpsignal_judge.codec import JudgeCodec
from perpsignal_scorer.engine import ScoringEngine
from perpsignal_scorer.settings import ScorerSettings
from tests.poison_helpers import binance_candles

_candle_json = Ohlc.__pydantic_serializer__.to_json


@pytest.fixture(scope="module")
def signals(shared_data: Path) -> list[SignalScoredV1]:
    """Scored signals as the scorer emits them for recorded candles (30-candle windows)."""
    csv = shared_data / "market" / "XRP_USDT_USDT-5m-futures.csv"
    settings = ScorerSettings(scorer_primary_timeframe="5m", scorer_smc_timeframes="5m,15m")
    engine = ScoringEngine(settings.engine_config())
    out = [s for c in binance_candles(csv, "XRPUSDT", "5m", 40) for s in engine.apply(c)]
    assert len(out) == 40 and len(out[-1].candles) == 30
    return out


def _newest_replaced(signal: SignalScoredV1, old: bytes, new: bytes) -> bytes:
    """The signal's bytes with `old` replaced by `new` inside its newest candle's text."""
    raw = encode(signal)
    text = _candle_json(signal.candles[-1])
    assert raw.count(text) == 1 and text.count(old) == 1
    return raw.replace(text, text.replace(old, new))


@pytest.mark.parametrize(
    ("what", "field", "token"),
    [
        ("zero low", "low", b"0.0"),
        ("negative close", "close", b"-1.0"),
        ("NaN close", "close", b"NaN"),
        ("1e308 high", "high", b"1e308"),
        ("high below low", "high", b"1e-9"),
        ("year 9999", "open_time", b'"9999-12-31T00:00:00Z"'),
    ],
)
def test_a_hostile_newest_candle_is_poison_on_the_window_path(
    signals: list[SignalScoredV1], what: str, field: str, token: bytes
) -> None:
    codec = JudgeCodec()
    first = codec.decode(encode(signals[-4]))
    assert isinstance(first, SignalScoredV1)
    clean = codec.decode(encode(signals[-3]))
    assert isinstance(clean, SignalScoredV1)
    # the window path: the older candles are the very objects of the previous window
    assert clean.candles[0] is first.candles[1]

    newest = signals[-2].candles[-1]
    value = getattr(newest, field)
    old = f'"{field}":'.encode() + (
        f'"{value.isoformat().replace("+00:00", "Z")}"'.encode()
        if field == "open_time"
        else to_json(value)
    )
    hostile = _newest_replaced(signals[-2], old, f'"{field}":'.encode() + token)
    with pytest.raises(PoisonMessage, match=f"candles.29|{field}|candle"):
        codec.decode(hostile)

    # the symbol goes on: its clean signal decodes, and the next one on the window path
    after = codec.decode(encode(signals[-2]))
    assert isinstance(after, SignalScoredV1) and after.candles[-1] == newest
    following = codec.decode(encode(signals[-1]))
    assert isinstance(following, SignalScoredV1)
    assert following.candles[0] is after.candles[1]
