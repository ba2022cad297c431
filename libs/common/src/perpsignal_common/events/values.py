"""Value rules of the event contracts: what every consumer may trust about a value.

One bad value must never silence a symbol: a NaN poisons every average it enters, a zero
price every ratio, a year-9999 time every "latest" pointer. So the contracts refuse them where
they are built or decoded, and a consumer dead-letters (never processes) such a record.

* Floats are finite everywhere (`Payload` and `Event` set `allow_inf_nan=False`: JSON
  `NaN`/`Infinity` tokens and `1e999` are refused too).
* `Price`: 1e-12 <= p <= 1e12; `Amount`: 0 <= a <= 1e30; `Signed`: |x| <= 1e30;
  `FundingRate`: |x| <= 1 (100 % per interval). Real
  values sit far inside (BTC ~1e5, the cheapest perpetuals ~1e-7, the largest token supplies
  ~1e18); the bounds keep every ratio, square and sum of thousands of values finite in
  float64 feature math, where 1e308 or 1e-300 would overflow to inf.
* `EventTime`: from 2009-01-01 (no crypto market before) to now + the allowed clock skew
  (`EVENT_MAX_CLOCK_SKEW_S`, `configure_clock_skew`). `ScheduledTime` (a listing's onboard
  date, the next funding) may be announced ahead, at most `MAX_SCHEDULE_AHEAD_S`.
* `Symbol`: 1-64 letters or digits of any script, `_` or `. : / + $ -` (no invisible
  joiner, combining mark or variation selector: a look-alike of another symbol):
  `BTCUSDT`, `1000PEPEUSDT`, `BTC-USDT-SWAP`, `BTCUSDT_220325`, `币安人生USDT`, `fear_greed`.
* `Ident` (event, signal, correlation ids, source, venue, timeframe, coin): 1-256 visible
  characters of any script; no control character (NUL, which PostgreSQL refuses, newline,
  DEL, C1), space, zero-width or bidi character, BOM.
* `Text` (a signal's free text: reasons, the judge's summary and checks): no NUL.
* `schema_version`: one this code understands (`SUPPORTED_SCHEMA_VERSIONS`).
* On the wire, JSON types as the schemas give them (`registry.STRICT`): `true` or "1.5" is
  no number, an epoch number no time. An integer may be written `5.0`, as JSON Schema counts
  a number with a zero fraction as an integer (`Integer`); `5.5` is refused.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BeforeValidator,
    Field,
    StringConstraints,
    WithJsonSchema,
)

MIN_PRICE = 1e-12
MAX_PRICE = 1e12
MAX_AMOUNT = 1e30
MAX_FUNDING_RATE = 1.0
MIN_EVENT_TIME = datetime(2009, 1, 1, tzinfo=UTC)
DEFAULT_MAX_CLOCK_SKEW_S = 300.0
MAX_SCHEDULE_AHEAD_S = 30 * 86400.0
MAX_SYMBOL_LENGTH = 64
# letters and digits of any script: the validator's (Rust) \w would also take the invisible
# joiners U+200C/U+200D, combining marks and variation selectors ("BTC\u200dUSDT" looks
# exactly like BTCUSDT).
SYMBOL_PATTERN = r"^[\p{L}\p{N}_.:/+$-]+$"
# The published form must mean the same in every engine a consumer validates with. JSON
# Schema names ECMA-262, where (as in Java and Go) `\w` is ASCII only: the `\w` form told
# those clients that 币安人生USDT, which Binance lists and the producers publish, is invalid.
# `\p{L}` does not compile in Python's re nor in ECMAScript without the `u` flag. So: the
# ASCII characters exactly, and any other character but the ones that make a look-alike
# (C0/C1 controls, spaces, soft hyphen, combining marks, zero-width and bidi controls,
# variation selectors, BOM), written as plain characters, which every engine reads alike.
# Beyond ASCII it is a little wider than SYMBOL_PATTERN (a non-ASCII symbol or punctuation
# sign passes it): every record a producer writes matches it, in every engine.
_LOOK_ALIKE_MAKERS = (
    "\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f"  # combining marks
    "\u1680\u180e\u2000-\u200f\u2028-\u202f\u205f-\u206f\u3000\ufeff"  # spaces, ZW, bidi
    "\ufe00-\ufe0f"  # variation selectors
)
# ASCII (listed separately), C1 controls, no-break space, soft hyphen: regex escapes
_NOT_SYMBOL_CLASS = r"\x00-\xa0\xad" + _LOOK_ALIKE_MAKERS


def portable_chars(ascii_chars: str) -> str:
    """Return a regex group matching one of `ascii_chars` (a class body, ASCII) or any
    non-ASCII character but the look-alike makers above."""
    return f"(?:[{ascii_chars}]|[^{_NOT_SYMBOL_CLASS}])"


PUBLISHED_SYMBOL_PATTERN = f"^{portable_chars('A-Za-z0-9_.:/+$-')}+$"
MAX_ID_LENGTH = 256
MAX_COUNT = 2**63 - 1  # a PostgreSQL bigint
SUPPORTED_SCHEMA_VERSIONS: frozenset[int] = frozenset({1})


class _Limits:
    """The process's allowed clock skew (set once at start-up by `configure_clock_skew`)."""

    max_clock_skew_s = DEFAULT_MAX_CLOCK_SKEW_S
    # a time dated (in its own offset) two years before this process started is certainly not
    # ahead: checked first, because `timestamp()` of a validated datetime costs ~10x a `year`
    # read (one year before could still be ahead: late on New Year's Eve at UTC-12)
    past_years_below = datetime.now(UTC).year - 1


def configure_clock_skew(max_clock_skew_s: float) -> None:
    """Set how far ahead of this machine's clock an event time may be (EVENT_MAX_CLOCK_SKEW_S)."""
    if not max_clock_skew_s >= 0:
        raise ValueError("the allowed clock skew must be >= 0 s")
    _Limits.max_clock_skew_s = max_clock_skew_s


def max_clock_skew_s() -> float:
    """Return the allowed clock skew in seconds."""
    return _Limits.max_clock_skew_s


def _not_ahead(value: datetime) -> datetime:
    if value.year < _Limits.past_years_below:
        return value
    skew = _Limits.max_clock_skew_s
    if value.timestamp() > time.time() + skew:
        raise ValueError(f"{value.isoformat()} is in the future (more than {skew:g} s ahead)")
    return value


def _not_far_ahead(value: datetime) -> datetime:
    if value.timestamp() > time.time() + MAX_SCHEDULE_AHEAD_S + _Limits.max_clock_skew_s:
        raise ValueError(f"{value.isoformat()} is more than 30 days ahead")
    return value


def _known_version(value: int) -> int:
    if value not in SUPPORTED_SCHEMA_VERSIONS:
        known = ", ".join(map(str, sorted(SUPPORTED_SCHEMA_VERSIONS)))
        raise ValueError(f"schema_version {value} is not understood here (known: {known})")
    return value


def _integral(value: Any) -> Any:
    """Read a float with a zero fraction as the integer it is; leave anything else to the
    strict int check (so `true`, `"5"` and `5.5` stay refused)."""
    if type(value) is float and value.is_integer():
        return int(value)
    return value


# JSON Schema's "integer" is any number with a zero fraction: a conforming producer whose
# language writes every number as a double (Java's Jackson for a double field, pandas with a
# gap in an int column) may send `5.0`, which strict decoding would dead-letter
Integer = Annotated[int, BeforeValidator(_integral)]
Price = Annotated[float, Field(ge=MIN_PRICE, le=MAX_PRICE, allow_inf_nan=False)]
Amount = Annotated[float, Field(ge=0, le=MAX_AMOUNT, allow_inf_nan=False)]
Signed = Annotated[float, Field(ge=-MAX_AMOUNT, le=MAX_AMOUNT, allow_inf_nan=False)]
# a funding rate per interval, as a fraction: venues cap it at a few percent (Binance 0.3-3 %
# per interval by symbol), so 100 % is beyond any real rate while a rate written in percent
# (0.01 for 0.01 %) still fits; 5.0 (500 % per 8 h) read as a fraction would be the most
# extreme funding factor of every symbol
FundingRate = Annotated[
    float, Field(ge=-MAX_FUNDING_RATE, le=MAX_FUNDING_RATE, allow_inf_nan=False)
]
Count = Annotated[int, Field(ge=0, le=MAX_COUNT), BeforeValidator(_integral)]
EventTime = Annotated[AwareDatetime, Field(ge=MIN_EVENT_TIME), AfterValidator(_not_ahead)]
# an open time whose upper bound `check_candle` checks
CandleTime = Annotated[AwareDatetime, Field(ge=MIN_EVENT_TIME)]
ScheduledTime = Annotated[AwareDatetime, Field(ge=MIN_EVENT_TIME), AfterValidator(_not_far_ahead)]
Symbol = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_SYMBOL_LENGTH, pattern=SYMBOL_PATTERN),
    WithJsonSchema(
        {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_SYMBOL_LENGTH,
            "pattern": PUBLISHED_SYMBOL_PATTERN,
            "description": "Letters or digits of any script, _ or . : / + $ - (no invisible "
            "joiner, combining mark or variation selector)",
        }
    ),
]
# Characters no identifier carries (one token a reader can see and copy): C0 controls and the
# space, DEL, C1 controls and the no-break space, the soft hyphen, the Arabic letter mark, the
# other Unicode spaces, zero-width characters, LRM/RLM, line and paragraph separators, bidi
# embeddings, overrides and isolates, word joiners and invisible operators, the BOM and the
# interlinear annotation marks. PostgreSQL refuses NUL in text (a consumer failed its write
# and retried it into the dead-letter topic with a raw database error); a newline forges a
# log line; a bidi override or a zero-width character makes one id look like another. Written
# as SYMBOL_PATTERN's class is (regex escapes for ASCII and C1, plain characters beyond), so
# Python, ECMA-262 with and without `u`, Java and Go read the published pattern alike.
_NOT_IDENT_CLASS = (
    r"\x00-\x20\x7f-\xa0\xad"
    "\u061c\u1680\u180e\u2000-\u200f\u2028-\u202f\u205f-\u206f\u3000\ufeff\ufff9-\ufffb"
)
PUBLISHED_IDENT_PATTERN = f"^[^{_NOT_IDENT_CLASS}]+$"
# the producers' check also refuses what the published pattern cannot name portably (a lone
# surrogate, which no UTF-8 encoder writes; the tag characters U+E0000-E007F, invisible ASCII)
_NOT_IDENT = re.compile(f"[{_NOT_IDENT_CLASS}\ud800-\udfff\U000e0000-\U000e007f]")
TEXT_PATTERN = r"^[^\x00]*$"
IDENT_RULE = "one token of visible characters: no control, space, zero-width or bidi character"


def venue_token(name: str) -> str:
    """Return an exchange's name as the one-token venue the contract takes ("WOO X" ->
    "woo_x", "Binance " -> "binance"); "" for a blank name. Vendors and exports write
    exchanges as words, and a venue with a space would refuse its whole event."""
    return "_".join(name.lower().split())


def _visible_token(value: str) -> str:
    """Refuse an id with a character `_NOT_IDENT` names, saying which and where."""
    if value.isascii() and value.isprintable() and " " not in value:  # every real id: fast
        return value
    bad = _NOT_IDENT.search(value)
    if bad is None:
        return value
    raise ValueError(
        f"character U+{ord(bad.group()):04X} at position {bad.start()} is not allowed in an "
        f"id ({IDENT_RULE})"
    )


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError(
            f"NUL character (U+0000) at position {value.index(chr(0))}: no text may carry one"
        )
    return value


Ident = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_ID_LENGTH),
    AfterValidator(_visible_token),
    WithJsonSchema(
        {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_ID_LENGTH,
            "pattern": PUBLISHED_IDENT_PATTERN,
        }
    ),
]
# Free text (a reason, a summary, a name): anything but NUL, which PostgreSQL cannot store
# (in text or jsonb): a judged signal whose summary carried one was refused whole by the
# outcomes service and missing from the history. Other control characters are the
# renderers' business (the notifier escapes them); they store fine.
Text = Annotated[
    str,
    AfterValidator(_no_nul),
    WithJsonSchema({"type": "string", "pattern": TEXT_PATTERN}),
]
SchemaVersion = Annotated[
    Integer,
    AfterValidator(_known_version),
    Field(json_schema_extra={"enum": sorted(SUPPORTED_SCHEMA_VERSIONS)}),
]


def check_candle(candle: Any) -> Any:
    """Refuse a candle whose range does not hold its open and close, or that opens ahead.

    A model validator (`model_validator(mode="after")(check_candle)`) with a `CandleTime`
    open time: one Python call per candle for both checks (a signal carries 30 candles), on
    the instance's fields as validated.
    """
    d = candle.__dict__
    low, high, opened = d["low"], d["high"], d["open_time"]
    if (
        low <= d["open"] <= high
        and low <= d["close"] <= high
        and (
            opened.year < _Limits.past_years_below
            or opened.timestamp() <= time.time() + _Limits.max_clock_skew_s
        )
    ):
        return candle
    raise _candle_error(d)


def _candle_error(d: dict[str, Any]) -> ValueError:
    o, h, lo, c = d["open"], d["high"], d["low"], d["close"]
    if not (lo <= o <= h and lo <= c <= h):
        return ValueError(
            f"inconsistent candle: need high >= max(open, close) and min(open, close) >= low "
            f"(open {o}, high {h}, low {lo}, close {c})"
        )
    return ValueError(f"open_time {d['open_time'].isoformat()} is in the future")
