"""The judge's fast codec validates only the newest candle of a sliding window: a hostile newest
candle must still be poison (it takes the shared codec's path), and the symbol's next clean
signals still decode, soon on the fast path again."""

from __future__ import annotations

from pathlib import Path

import pytest

from perpsignal_common.errors import PoisonMessage
from perpsignal_common.events.registry import decode, encode
from perpsignal_common.events.signals import SignalScoredV1
from perpsignal_judge.codec import JudgeCodec
from tests.poison_helpers import poison, poison_newest_candle, scored_signals


@pytest.fixture(scope="module")
def signals(shared_data: Path) -> list[SignalScoredV1]:
    csv = shared_data / "market" / "XRP_USDT_USDT-5m-futures.csv"
    out = scored_signals(csv, "XRPUSDT", 40)
    assert len(out) == 40 and len(out[-1].candles) == 30
    return out


@pytest.mark.parametrize(
    ("field", "token"),
    [
        ("low", "0.0"),
        ("close", "-1.0"),
        ("close", "NaN"),
        ("high", "1e308"),
        ("high", "1e-9"),
        ("open_time", '"9999-12-31T00:00:00Z"'),
        ("volume", "true"),
        ("volume", '"1234.5"'),
    ],
    ids=[
        "zero low",
        "negative close",
        "NaN close",
        "1e308 high",
        "high below low",
        "year 9999",
        "volume as true",
        "volume as a string",
    ],
)
def test_a_hostile_newest_candle_is_poison_on_the_window_path(
    signals: list[SignalScoredV1], field: str, token: str
) -> None:
    codec = JudgeCodec()
    first = codec.decode(encode(signals[-4]))
    clean = codec.decode(encode(signals[-3]))
    assert isinstance(first, SignalScoredV1) and isinstance(clean, SignalScoredV1)
    # the window path: the older candles are the very objects of the previous window
    assert clean.candles[0] is first.candles[1]

    with pytest.raises(PoisonMessage, match=f"candles.29|{field}|candle"):
        codec.decode(poison_newest_candle(signals[-2], field, token))

    # the symbol goes on: its clean signal decodes, and the next one on the window path
    after = codec.decode(encode(signals[-2]))
    assert isinstance(after, SignalScoredV1) and after.candles == signals[-2].candles
    following = codec.decode(encode(signals[-1]))
    assert isinstance(following, SignalScoredV1)
    assert following.candles[0] is after.candles[1]


@pytest.mark.parametrize(("field", "token"), [("score", '"55.0"'), ("confidence", "true")])
def test_a_signal_field_of_the_wrong_json_type_is_poison_on_both_paths(
    signals: list[SignalScoredV1], field: str, token: str
) -> None:
    """The schema says number: `true` or a numeric string is another client's malformed
    record, dead-lettered, never read as 1.0 or 55.0 (the judge's fast path included)."""
    codec = JudgeCodec()
    codec.decode(encode(signals[-3]))  # the window the next signal slides
    hostile = poison(encode(signals[-2]), field, token)
    with pytest.raises(PoisonMessage, match=field):
        decode(hostile)
    with pytest.raises(PoisonMessage, match=field):
        codec.decode(hostile)
