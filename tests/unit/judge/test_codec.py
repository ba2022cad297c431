"""The judge's codec gives exactly the shared codec's events, bytes and errors."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from perpsignal_common.errors import PoisonMessage
from perpsignal_common.events.registry import decode, encode
from perpsignal_common.events.signals import JudgeRequestV1, Ohlc, SignalJudgedV1, SignalScoredV1
from perpsignal_domain.judging.volatility import true_ranges
from perpsignal_judge.codec import JudgeCodec
from perpsignal_judge.judge import Judge
from tests.unit.judge.builders import T0, load_candles, signal

BULL = dict.fromkeys(("momentum", "smart_money", "oi_trend", "liquidations"), 70.0)


def sliding(
    candles: list[Ohlc], symbol: str, timeframe: str, starts: Any, size: int = 30
) -> list[bytes]:
    """What the scorer sends for one symbol and timeframe: `size`-candle windows at `starts`."""
    return [
        encode(
            signal(symbol=symbol, factors=BULL, candles=candles[i : i + size], seq=i).model_copy(
                update={"timeframe": timeframe}
            )
        )
        for i in starts
    ]


def same(codec: JudgeCodec, raw: Any, judge: Judge | None = None) -> SignalScoredV1 | None:
    """Assert `codec.decode(raw)` is `decode(raw)`, event or error; judge it both ways too.

    The codec's event is judged by `judge` (which may remember earlier windows), the shared
    codec's by a fresh judge: the straightforward path.
    """
    try:
        expected = decode(raw)
    except PoisonMessage as exc:
        with pytest.raises(PoisonMessage) as got:
            codec.decode(raw)
        assert str(got.value) == str(exc)
        return None
    event = codec.decode(raw)
    assert type(event) is type(expected) and event == expected
    assert event.model_fields_set == expected.model_fields_set
    assert encode(event) == encode(expected)
    if not isinstance(event, SignalScoredV1):
        return None
    judged = (judge or Judge()).judge_rules(event)
    # the straightforward path: the shared codec and a fully validated judged event
    plain = Judge().judge_rules(expected).model_copy(update={"produced_at": judged.produced_at})
    assert judged == plain == SignalJudgedV1.model_validate(plain.model_dump())
    assert codec.encode(judged) == encode(plain)
    return event


def test_sliding_windows_of_real_candles_decode_and_encode_as_the_shared_codec(
    shared_data: Path,
) -> None:
    candles = load_candles(shared_data)
    codec = JudgeCodec()
    streams = [
        (s, tf, sliding(candles, s, tf, range(40)))
        for s, tf in (("XRPUSDT", "1h"), ("BTCUSDT", "1h"), ("XRPUSDT", "4h"))
    ]
    judge = Judge(known_ranges=codec.true_ranges)  # wired as in JudgeService
    previous: dict[str, SignalScoredV1] = {}
    for i in range(40):  # the streams interleaved, as on the topic
        for symbol, timeframe, raws in streams:
            event = same(codec, raws[i], judge)
            assert event is not None
            known = codec.true_ranges((symbol, timeframe), event.candles)
            assert known == true_ranges(event.candles)
            before = previous.get(symbol + timeframe)
            if before is not None:  # the window's older 29 candles were validated before
                assert all(a is b for a, b in zip(event.candles, before.candles[1:], strict=False))
            previous[symbol + timeframe] = event


def test_growing_repeated_and_skipping_windows_decode_as_the_shared_codec(
    shared_data: Path,
) -> None:
    candles = load_candles(shared_data)
    codec = JudgeCodec()
    judge = Judge(known_ranges=codec.true_ranges)
    growing = [
        encode(signal(factors=BULL, candles=candles[:n], seq=n)) for n in (1, 2, 3, 15, 16, 30)
    ]
    for raw in [
        *growing,
        *sliding(candles, "XRPUSDT", "1h", [0, 1, 1, 3, 2, 40, 41, 0]),
        *sliding(candles, "XRPUSDT", "1h", [5, 6, 7], size=1),
    ]:
        event = same(codec, raw, judge)
        assert event is not None
        assert codec.true_ranges(("XRPUSDT", "1h"), event.candles) == true_ranges(event.candles)
    # known only for the very window decoded last: not for equal candles in another sequence
    assert codec.true_ranges(("XRPUSDT", "1h"), list(event.candles)) is None
    assert codec.true_ranges(("XRPUSDT", "4h"), event.candles) is None


def test_more_streams_than_windows_stay_exact_and_bounded(shared_data: Path) -> None:
    candles = load_candles(shared_data)
    codec = JudgeCodec(windows=2)
    streams = [sliding(candles, s, "1h", range(6)) for s in ("AUSDT", "BUSDT", "CUSDT")]
    for i in range(6):
        for raws in streams:
            same(codec, raws[i])
            assert len(codec._windows) <= 2


def test_judged_events_not_decoded_here_encode_as_the_shared_codec(shared_data: Path) -> None:
    candles = load_candles(shared_data)
    judged = Judge().judge_rules(signal(factors=BULL, candles=candles[-30:]))
    assert JudgeCodec().encode(judged) == encode(judged)
    empty = Judge().judge_rules(signal(factors=BULL))
    assert JudgeCodec().encode(empty) == encode(empty)


def _edit(raw: bytes, change: Any) -> bytes:
    """Return `raw` re-serialized compactly after `change(data)` edits the parsed JSON."""
    data = json.loads(raw)
    change(data)
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


def _candle(data: dict[str, Any], i: int = 3, **values: Any) -> None:
    data["candles"][i].update(values)


EDITS: dict[str, Any] = {
    "unchanged": lambda d: None,
    "an int price": lambda d: _candle(d, open=1),
    "the newest candle with an int price": lambda d: _candle(d, -1, open=1),
    "the newest candle with an unknown key": lambda d: _candle(d, -1, x=1),
    "the newest candle twice": lambda d: d["candles"].append(d["candles"][-1]),
    "one candle more": lambda d: d["candles"].append({**d["candles"][-1], "open": 7.5}),
    "the oldest candle changed": lambda d: _candle(d, 0, close=9.25),
    "a price as a string": lambda d: _candle(d, high=str(d["candles"][3]["high"])),
    "-0.0 and 0.0": lambda d: (_candle(d, 2, volume=-0.0), _candle(d, 3, volume=0.0)),
    "a candle without volume": lambda d: d["candles"][4].pop("volume"),
    "an unknown key in a candle": lambda d: _candle(d, x={"y": [1, "}]"]}),
    "a string with the separators in it": lambda d: _candle(d, x="a},{b}]c"),
    "a string that looks like two candles": lambda d: _candle(
        d, x='},{"open_time":"2021-11-21T00:00:00Z","open":1.0,"high":1.0,"low":1.0,"close":1.0'
    ),
    "keys in another order": lambda d: d["candles"].__setitem__(
        0, dict(reversed(list(d["candles"][0].items())))
    ),
    "an offset time": lambda d: _candle(d, open_time="2021-11-21T05:00:00+05:00"),
    "a unix time": lambda d: _candle(d, open_time=1637470800),
    "a naive time": lambda d: _candle(d, open_time="2021-11-21T05:00:00"),
    "a missing high": lambda d: d["candles"][5].pop("high"),
    "a price that is not a number": lambda d: _candle(d, low="abc"),
    "a candle that is not an object": lambda d: d["candles"].__setitem__(6, [1, 2]),
    "no candles": lambda d: d.__setitem__("candles", []),
    "no candles key": lambda d: d.pop("candles"),
    "candles only inside an unknown field": lambda d: d.__setitem__(
        "zzz", {"candles": d.pop("candles")}
    ),
    "candles inside an unknown field too": lambda d: d.__setitem__(
        "zzz", {"candles": d["candles"][:2]}
    ),
    "candles inside an unknown field first": lambda d: d.update(
        {"aaa": {"candles": d["candles"][:2]}, "candles": d.pop("candles")}
    ),
    "candles as a factor input": lambda d: d["factors"][0]["inputs"].__setitem__(
        "candles", d["candles"][:1]
    ),
    "candles only as a factor input": lambda d: d["factors"][0]["inputs"].__setitem__(
        "candles", d.pop("candles")
    ),
    "candles as a string": lambda d: d.__setitem__("top_factors", ["candles"]),
    "a backslash in a string": lambda d: d["factors"][0].__setitem__("reason", 'say "hi"\n'),
    "an invalid score": lambda d: d.__setitem__("score", 150),
    "another event type": lambda d: d.__setitem__("type", "signal.judged"),
    "an unknown event type": lambda d: d.__setitem__("type", "signal.nope"),
}


@pytest.mark.parametrize("name", EDITS)
def test_every_shape_decodes_as_the_shared_codec(shared_data: Path, name: str) -> None:
    first, second = sliding(load_candles(shared_data), "XRPUSDT", "1h", [0, 1])
    assert _edit(first, lambda d: None) == first  # the edits start from the exact wire bytes
    codec = JudgeCodec()
    for raw in (first, _edit(first, EDITS[name]), first, _edit(second, EDITS[name]), second):
        same(codec, raw)  # each after a kept window it must not be confused with


@pytest.mark.parametrize(
    "raw",
    [
        None,
        b"",
        b"not json",
        b'{"type":"signal.scored"',
        b'{"type":"signal.scored","candles":[{}]}',
        b'{"type":"signal.scored","candles":[{"a":1}, {"b":2}]}',
        b'{"type":"signal.scored","candles":[{"a":1},{"b":2}]}',
    ],
)
def test_broken_messages_raise_the_shared_codecs_error(raw: bytes | None) -> None:
    same(JudgeCodec(), raw)


def test_escaped_and_duplicate_candles_keys_decode_as_the_shared_codec(shared_data: Path) -> None:
    raw = sliding(load_candles(shared_data), "XRPUSDT", "1h", [0])[0]
    array = raw[raw.index(b'"candles":[') + 10 : raw.index(b',"trigger"')]
    codec = JudgeCodec()
    same(codec, raw)
    escaped = raw.replace(
        b'"candles":' + array, b'"c\\u0061ndles":[],"zzz":{"candles":' + array + b"}"
    )
    duplicate = raw.replace(b'"candles":' + array, b'"candles":[],"candles":' + array)
    for variant in (escaped, duplicate):
        assert variant != raw
        same(codec, variant)


def test_requests_and_other_events_pass_through(shared_data: Path) -> None:
    scored = signal(factors=BULL, candles=load_candles(shared_data)[-30:])
    request = JudgeRequestV1(
        event_id="r1",
        source="gateway",
        symbol="XRPUSDT",
        observed_at=T0 + timedelta(hours=1),
        direction="LONG",
        signal=scored,
    )
    codec = JudgeCodec()
    for event in (request, Judge().judge_rules(scored)):
        same(codec, encode(event))
        assert codec.encode(event) == encode(event)


def test_the_signal_model_keeps_the_shape_the_codec_relies_on() -> None:
    """Candles replaced by `[]` validate the rest as before: no check across fields or of length."""
    decorators = SignalScoredV1.__pydantic_decorators__
    assert not decorators.model_validators and not decorators.field_validators
    assert not decorators.root_validators and not decorators.validators
    field = SignalScoredV1.model_fields["candles"]
    assert field.annotation == tuple[Ohlc, ...] and not field.metadata
    assert list(SignalJudgedV1.model_fields).index("trigger") == (
        list(SignalJudgedV1.model_fields).index("candles") + 1
    )
