"""The judge's wire codec: a symbol's candles validated once, and carried on as their own encoding.

A scored signal carries the scorer's last 30 candles (most of its bytes) and the judged signal
carries them again: validating them on the way in and serializing them on the way out was most
of the judge's work per signal. The scorer's windows slide by one bar, so a signal repeats, byte
for byte, 29 of the 30 candle texts of its symbol and timeframe's previous signal.

`JudgeCodec` keeps each symbol and timeframe's last window: the candles array as it came and the
candles it validated to. Every text in a kept array is the canonical encoding (what `encode`
writes) of its candle. A new signal whose array is that window's texts, minus the oldest or not,
plus one more canonical text, has those candles: validation is a pure function of the text, so
only the new candle is validated, and the array is the judged signal's encoding of its candles.
The rest of the signal is validated by its usual validator, on the message with the candles
array replaced by `[]`. Anything else (another event type, a candle that is invalid or not in
canonical form, a backslash anywhere, another layout) is decoded by `registry.decode`, so
results and errors (PoisonMessage, hence the DLQ) are the shared codec's. Tests hold both ways
equal, event for event and byte for byte (tests/unit/judge/test_codec.py).

A window also keeps its candles' true ranges (the ATR's input), carried over as it slides:
`true_ranges` gives them to the judge, which then reads none of the older candles again.
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import is_
from typing import NamedTuple

from pydantic import ValidationError

from perpsignal_common.events import registry
from perpsignal_common.events.base import Event
from perpsignal_common.events.signals import Ohlc, SignalJudgedV1, SignalScoredV1
from perpsignal_domain.judging.volatility import true_range, true_ranges

# About 50 KB each (30 candles): 1,024 windows, 256 symbols on 4 timeframes, hold 50 MB at
# most. The least recently used goes first. A signal without its window has each candle
# validated and encoded alone, which costs more than the shared codec (about 40 µs) once.
DEFAULT_WINDOWS = 1024

_SCORED_MARKER = b'"type":"signal.scored"'
_KEY = b'"candles"'
_ARRAY = b'"candles":[{'
_ARRAY_END = b"}]"
_SEPARATOR = b"},{"
_NEXT = b",{"
_TRIGGER = b',"trigger":"'
_CANDLES = {"candles"}  # excluded from the pydantic part of a judged signal

_validate_scored = SignalScoredV1.__pydantic_validator__.validate_json
_validate_candle = Ohlc.__pydantic_validator__.validate_json
_candle_json = Ohlc.__pydantic_serializer__.to_json
_judged_json = SignalJudgedV1.__pydantic_serializer__.to_json


class _Window(NamedTuple):
    """A candles array as it came (`[{...},...,{...}]`, canonical texts), its candles and
    their true ranges (ATR input: the judge reads them instead of every candle again)."""

    array: bytes
    candles: tuple[Ohlc, ...]
    ranges: list[float]


class JudgeCodec:
    """Decode scored signals and encode judged ones: what `registry.decode` / `encode` give."""

    def __init__(self, windows: int = DEFAULT_WINDOWS) -> None:
        self._max_windows = windows
        self._windows: dict[tuple[str, str], _Window] = {}  # by (symbol, timeframe), LRU order

    def decode(self, raw: bytes | None) -> Event:
        """Parse one record value; raise PoisonMessage when that is impossible."""
        if type(raw) is bytes:
            scored = self._decode_scored(raw)
            if scored is not None:
                return scored
        return registry.decode(raw)

    def encode(self, event: Event) -> bytes:
        """Serialize `event`: the bytes `registry.encode(event)` returns."""
        if type(event) is not SignalJudgedV1 or not event.candles:
            return registry.encode(event)
        window = self._windows.get((event.symbol, event.timeframe))
        candles = event.candles
        # the very candles decoded from that array (not merely equal ones: -0.0 == 0.0)
        if (
            window is None
            or len(window.candles) != len(candles)
            or not all(map(is_, window.candles, candles))
        ):
            return registry.encode(event)
        body: bytes = _judged_json(event, exclude=_CANDLES)
        # `candles` comes just before `trigger`; no field after that has keys of its own and
        # quotes inside strings are escaped, so the last `,"trigger":"` is that field
        at = body.rfind(_TRIGGER)
        if at < 0:
            return registry.encode(event)
        return b"".join((body[:at], b',"candles":', window.array, body[at:]))

    def _decode_scored(self, raw: bytes) -> SignalScoredV1 | None:
        """Return the scored signal in `raw`, or None when the window path does not apply.

        Why the array found here is the signal's own `candles` field:
        * without backslashes every `"` delimits a string, so `"candles"` occurring once means
          one string is `candles`, and no key can be spelled another way;
        * the array is taken up to its first `}]`; it is accepted only as canonical candle
          texts, which hold no braces: then that is the whole array;
        * with the array replaced by `[]`, the validated signal has `candles` set (and empty),
          so the key is the signal's own: one inside an ignored unknown field leaves it unset.
        """
        if _SCORED_MARKER not in raw or b"\\" in raw or raw.count(_KEY) != 1:
            return None
        at = raw.find(_ARRAY)
        if at < 0:
            return None
        start = at + len(_ARRAY) - 2  # the array's `[`
        end = raw.find(_ARRAY_END, start)
        if end < 0:
            return None
        end += len(_ARRAY_END)
        try:
            scored: SignalScoredV1 = _validate_scored(
                raw[:start] + b"[]" + raw[end:], strict=registry.STRICT
            )
        except ValidationError:
            return None
        if scored.candles or "candles" not in scored.model_fields_set:
            return None
        array = raw[start:end]
        key = (scored.symbol, scored.timeframe)
        previous = self._windows.pop(key, None)
        window = None if previous is None else _extend(previous, array)
        if window is None:
            window = _validate_each(array)
            if window is None:
                return None
        self._windows[key] = window
        if len(self._windows) > self._max_windows:
            del self._windows[next(iter(self._windows))]
        # a fresh instance nobody else holds yet, filled in place (frozen guards setattr only)
        scored.__dict__["candles"] = window.candles
        return scored

    def true_ranges(self, key: tuple[str, str], candles: Sequence[Ohlc]) -> list[float] | None:
        """The true ranges of `candles` when they are the very candles of `key`'s window."""
        window = self._windows.get(key)
        return window.ranges if window is not None and window.candles is candles else None


def _extend(window: _Window, array: bytes) -> _Window | None:
    """The window of `array` when it is `window`'s texts, maybe minus the oldest, plus one."""
    old = window.array
    if array == old:  # the same window again (an on-demand signal, a redelivery)
        return window
    first_end = old.find(_SEPARATOR)
    kept_variants: tuple[tuple[int, bytes], ...] = ((0, old[:-1]),)  # `[{T1},...,{Tn}`: growing
    if first_end > 0:  # `[{T2},...,{Tn}`: the window slid by one bar
        kept_variants = ((1, b"[" + old[first_end + 2 : -1]), *kept_variants)
    for dropped, kept in kept_variants:
        if array.startswith(kept) and array.startswith(_NEXT, len(kept)):
            candle = _canonical(array[len(kept) + len(_NEXT) : -len(_ARRAY_END)])
            if candle is not None:
                added = true_range(window.candles[-1].close, candle)
                return _Window(
                    array,
                    (*window.candles[dropped:], candle),
                    [*window.ranges[dropped:], added],
                )
    return None


def _validate_each(array: bytes) -> _Window | None:
    """The window of `array` when each of its texts is a canonical candle, else None."""
    candles = []
    for text in array[2:-2].split(_SEPARATOR):
        candle = _canonical(text)
        if candle is None:
            return None
        candles.append(candle)
    return _Window(array, tuple(candles), true_ranges(candles))


def _canonical(text: bytes) -> Ohlc | None:
    """The candle `{text}` validates to, when `{text}` is that candle's encoding, else None."""
    braced = b"{" + text + b"}"
    try:
        candle: Ohlc = _validate_candle(braced, strict=registry.STRICT)
    except ValidationError:
        return None
    return candle if _candle_json(candle) == braced else None
