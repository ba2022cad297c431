"""Times as exports write them: epoch s/ms/us/ns, ISO and database texts, date digits,
day.month.year and slash dates (in the order the file proves), all as epoch ms UTC."""

from __future__ import annotations

import calendar
import contextlib
import email.utils
import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any

from perpsignal_cli.backtesting.importing.base import HistoryFormatError
from perpsignal_common.events.market import (
    TIMEFRAME_SECONDS,
)


def parse_time_ms(raw: Any, order: str | None = None, zone: tzinfo = UTC) -> int:
    """Return epoch ms from epoch s/ms/us/ns (by magnitude), an ISO string or a datetime.

    `order` (`dmy`, `mdy`): how a slash date (`01/02/2024`) reads; without it such a date
    is refused, never guessed (the file decides it: `_with_date_order`). `zone`: the zone of
    a time written without one (`Time(UTC+8)` in the header, see `zone_note`); UTC unless
    the file says otherwise. Epoch numbers have no zone.
    """
    if isinstance(raw, datetime):
        dt = raw if raw.tzinfo is not None else raw.replace(tzinfo=zone)
        return round(dt.timestamp() * 1000)
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        value = float(raw)
    else:
        text = str(raw).strip().lstrip("\ufeff")  # the BOM of a second file joined on
        if order is not None:  # a file of slash dates: each row is one, read first
            bare = _ZONE_WORD.sub("", text)
            slash = _slash_date(bare, order, UTC if bare != text else zone)
            if slash is not None:
                return round(slash.timestamp() * 1000)
        try:
            value = float(text)
        except ValueError:
            parsed = _date_text(text, order, zone)
            if parsed is None:
                if order is None and slash_match(text):
                    raise HistoryFormatError(
                        f"unreadable time {raw!r}: day/month/year or month/day/year? "
                        "(--date-order dmy or mdy)"
                    ) from None
                raise HistoryFormatError(f"unreadable time {raw!r}") from None
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=zone)
            return round(parsed.timestamp() * 1000)
    # NaN, infinities, negatives and years past 9999 are no time (they overflowed datetime)
    if not 0 <= value < 1e20:
        raise HistoryFormatError(f"unreadable time {raw!r}")
    if isinstance(raw, str) and "E" in raw:
        _refuse_rounded(raw, value)
    if SERIAL_DAYS[0] <= value < SERIAL_DAYS[1]:
        # read as seconds a 1970 hour that no market has; as a spreadsheet's date serial
        # (days) it is this century's, but from 1899-12-30 or from 1904-01-01 (old Macs'
        # Excel), four years apart: not guessed
        day = datetime(1899, 12, 30, tzinfo=UTC) + timedelta(days=value)
        raise HistoryFormatError(
            f"time {raw!r} is a spreadsheet's date serial (days: {day:%Y-%m-%d %H:%M} if "
            "counted from 1899-12-30, four years later if from 1904), not a time: format the "
            "column as date and time (yyyy-mm-dd hh:mm:ss) before saving"
        )
    for lo, hi, fmt in _COMPACT_DATES:
        if lo <= value <= hi:
            compact = _compact_date(value, fmt)
            if compact is not None:
                return compact
    if value >= 1e17:  # nanoseconds (pandas / Arrow timestamps)
        return int(value // 1_000_000)
    if value >= 1e14:  # microseconds (Binance spot files since 2025)
        return int(value // 1000)
    if value < 1e11:  # seconds (alternative.me, many exporters)
        return int(value * 1000)
    return int(value)


# what a spreadsheet's date serial of 2000-2099 is (days from 1899-12-30 or 1904-01-01)
SERIAL_DAYS = (35_000.0, 73_051.0)


_SCIENTIFIC = re.compile(r"\s*[+-]?\d*(?:\.(?P<decimals>\d*))?E[+-]?(?P<exp>\d+)\s*")


def _refuse_rounded(text: str, value: float) -> None:
    """Refuse an epoch time in scientific notation rounded coarser than a second.

    A spreadsheet shows a 13-digit epoch as `1.63711E+12` and saves it so: 2.8 hours of
    rounding, bars merged as repeats or a bar length of 10,000 s. Only the capital E of
    spreadsheets: a program's `1.6371108e+18` (Python's, numpy's) is the shortest text that
    reads back as the same number, exact.
    """
    m = _SCIENTIFIC.fullmatch(text)
    if m is None:
        return
    unit = 10.0 ** (int(m["exp"]) - len(m["decimals"] or ""))
    per_ms = 1e-6 if value >= 1e17 else 1e-3 if value >= 1e14 else 1.0 if value >= 1e11 else 1e3
    if unit * per_ms > 1000:
        raise HistoryFormatError(
            f"time {text.strip()!r} is an epoch rounded to {unit * per_ms / 1000:,.0f} s by "
            "scientific notation (a spreadsheet's display of long numbers, saved so): format "
            "the column as a whole number before saving"
        )


# digits of a date (20220101, 202201011530, 20220101153000: daily exports, MetaTrader, Stooq):
# read by magnitude they were 1970s or 2600s times, no market's, and a daily file was "1 s
# bars". No epoch time of 2000-2099 in s, ms, us or ns has 8, 12 or 14 digits starting 20.
_COMPACT_DATES = (
    (20_000_101, 20_991_231, "%Y%m%d"),
    (200_001_010_000, 209_912_312_359, "%Y%m%d%H%M"),
    (20_000_101_000_000, 20_991_231_235_959, "%Y%m%d%H%M%S"),
)


def _compact_date(value: float, fmt: str) -> int | None:
    """Return epoch ms of `value` read as the digits of a UTC date in `fmt`, or None."""
    if not value.is_integer():
        return None
    try:
        at = datetime.strptime(str(int(value)), fmt).replace(tzinfo=UTC)
    except ValueError:
        return None
    return round(at.timestamp() * 1000)


_ZONE_WORD = re.compile(r"\s*(UTC|GMT|Z)$", re.IGNORECASE)


_DOTTED_DATE = re.compile(r"(\d\d?)\.(\d\d?)\.(\d{4})(\s.*)?$")


# a slash date with the year last, as Excel (day or month first, by the machine's locale),
# Investing.com and many venues' downloads write it: `01/02/2024 00:00`, `2/1/2024 13:05:00`,
# `1/2/24 1:05 PM`; a time, when given, after a space or a T. Dashes (`15-11-2021`) read
# alike, with a four-digit year only (`21-11-15` may be year first)
_SLASH_DATE = re.compile(
    r"\s*(?P<a>\d{1,2})(?P<sep>[/-])(?P<b>\d{1,2})(?P=sep)(?P<year>\d{4}|\d\d)"
    r"(?:(?:\s+|T)(?P<hour>\d{1,2}):(?P<minute>\d\d)(?::(?P<sec>\d\d)(?P<frac>\.\d{1,9})?)?"
    r"(?:\s*(?P<half>[AaPp])\.?[Mm]\.?)?)?"
    r"(?=\s|$|[+-]\d)"
)


def slash_match(text: str) -> re.Match[str] | None:
    """Match a date with the year last (`_SLASH_DATE`); its `a` and `b` are day and month
    in an order the file decides."""
    m = _SLASH_DATE.match(text)
    if m is None or (m["sep"] == "-" and len(m["year"]) == 2):
        return None
    return m


def _slash_date(text: str, order: str, zone: tzinfo = UTC) -> datetime | None:
    """Return a slash date read in `order` (`dmy` or `mdy`), or None when it is none
    (in `zone` unless it gives its own offset).

    A two-digit year is 20yy (no market data predates 2009); 12 AM is midnight, 12 PM noon.
    """
    m = slash_match(text)
    if m is None:
        return None
    first, second, year_s = m["a"], m["b"], m["year"]
    hour_s, minute, sec, frac, half = m["hour"], m["minute"], m["sec"], m["frac"], m["half"]
    day, month = (int(first), int(second)) if order == "dmy" else (int(second), int(first))
    year = int(year_s) + 2000 if len(year_s) == 2 else int(year_s)
    hour = int(hour_s or 0)
    if half is not None:
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if half in "Pp" else 0)
    tail = text[m.end() :].strip()
    try:
        if not tail:  # the common case: built directly (a file of them is read per row)
            micro = int((frac[1:] + "00000")[:6]) if frac else 0
            return datetime(year, month, day, hour, int(minute or 0), int(sec or 0), micro, zone)
        iso = f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute or '00'}:{sec or '00'}"
        at = datetime.fromisoformat(f"{iso}{frac or ''}{tail}")  # with its UTC offset
        return at if at.tzinfo is not None else at.replace(tzinfo=zone)
    except ValueError:  # no such day (31/02), hour or offset
        return None


_YEAR_FIRST = re.compile(r"(\d{4})([/.])(\d\d?)\2(\d\d?)(\s.*|T.*)?$")

# a month by its English name: `Jan 02, 2024`, `January 2, 2024` (Investing.com's older
# downloads, US sites), `02 Jan 2024`, `02-Jan-24` (Excel), a time after them
_NAMED_MONTH = re.compile(
    r"(?:(?P<d1>\d{1,2})[ -](?P<m1>[A-Za-z]{3,9})\.?[ -](?P<y1>\d{4}|\d\d)"
    r"|(?P<m2>[A-Za-z]{3,9})\.? (?P<d2>\d{1,2}),? (?P<y2>\d{4}))(?P<rest>\s.*)?$"
)
_MONTHS = {
    name.lower(): k
    for k in range(1, 13)
    for name in (calendar.month_abbr[k], calendar.month_name[k])
} | {"sept": 9}


def _named_month(m: re.Match[str]) -> str | None:
    """Return the ISO text of a date with a month name, or None when the name is none."""
    month = _MONTHS.get((m["m1"] or m["m2"]).lower())
    if month is None:
        return None
    day, year = int(m["d1"] or m["d2"]), m["y1"] or m["y2"]
    full = int(year) + 2000 if len(year) == 2 else int(year)
    return f"{full:04d}-{month:02d}-{day:02d}{m['rest'] or ''}"


def _date_text(text: str, order: str | None = None, zone: tzinfo = UTC) -> datetime | None:
    """Return an ISO 8601 time, or one as databases and HTTP print them: BigQuery's and
    Dune's `2021-11-15 18:00:00 UTC`, Go's `... +0000 UTC`, `2021/11/15 ...`, RFC 1123;
    with `order`, a slash date with the year last (`_slash_date`)."""
    with contextlib.suppress(ValueError):
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    bare = _ZONE_WORD.sub("", text)
    if bare != text:  # `... UTC` says its zone, whatever the header says
        zone = UTC
    year_first = _YEAR_FIRST.match(bare)  # 2021/11/15, MetaTrader's 2021.11.15
    if year_first:
        year, _, month, day, rest = year_first.groups()
        bare = f"{year}-{int(month):02d}-{int(day):02d}{rest or ''}"
    elif order is not None and slash_match(bare):
        return _slash_date(bare, order, zone)
    # day.month.year: how European spreadsheets write a date (never month first)
    dotted = _DOTTED_DATE.match(bare)
    if dotted:
        day, month, year, rest = dotted.groups()
        bare = f"{year}-{int(month):02d}-{int(day):02d}{rest or ''}"
    named = _NAMED_MONTH.match(bare)
    if named:
        bare = _named_month(named) or bare
    with contextlib.suppress(ValueError):
        at = datetime.fromisoformat(bare)
        return at if at.tzinfo is not None or zone is UTC else at.replace(tzinfo=zone)
    with contextlib.suppress(TypeError, ValueError, IndexError):
        return email.utils.parsedate_to_datetime(text)
    return None


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# a zone note closing a time column's name: `Time(UTC)`, `Date (UTC+8)`, `time_utc`,
# `Timestamp [GMT-05:00]` (venues' website downloads; Asian venues' often in UTC+8)
_ZONE_NOTE = re.compile(
    r"(?:^|[\s_(\[-])(?:utc|gmt)\s*(?:(?P<sign>[+-])\s*(?P<h>\d{1,2})(?::?(?P<m>\d\d))?)?"
    r"\s*[)\]]?\s*$",
    re.IGNORECASE,
)


# zone abbreviations that name one offset all year (no daylight saving there since long
# before 2009, none shared with another zone): read as that offset
FIXED_ZONES = {"JST": 9, "KST": 9, "HKT": 8, "SGT": 8, "ICT": 7, "WIB": 7, "PHT": 8}

# abbreviations refused: a header written `EST` or `CET` says too little. Exports from a
# desk in New York or Frankfurt follow the local clock, an hour off half the year (EST in
# summer is EDT), `CST` is US Central or China, `IST` India, Israel or Ireland, `BST`
# British Summer or Bangladesh, and `MSK` was +4 until 2014
AMBIGUOUS_ZONES = frozenset(
    {
        "EST", "EDT", "ET", "CST", "CDT", "CT", "MST", "MDT", "MT", "PST", "PDT", "PT", "AKST",
        "AKDT", "HST", "AST", "ADT", "NST", "NDT", "CET", "CEST", "MET", "MEST", "EET", "EEST",
        "WET", "WEST", "BST", "IST", "MSK", "AEST", "AEDT", "ACST", "ACDT", "AWST", "NZST", "NZDT",
        "BRT", "ART",
    }
)  # fmt: skip

_ZONE_ABBR = re.compile(r"[\s_(\[-]+(?P<abbr>[A-Za-z]{2,4})\s*[)\]]?\s*$")

# what a time column's name is before its note (`Time`, `Date`, `open_time`, `Timestamp`)
_TIME_NAME = re.compile(r"(.*(time|date|timestamp)|ts|t|day)")


def zone_note(name: str) -> tuple[str, tzinfo | None]:
    """Return a column name without its zone note, and the zone it names (None: no note).

    Without this `Time(UTC)` was no time column, and `--columns time="Time(UTC+8)"` read
    its times as UTC: every bar 8 hours late. A time column noted with an abbreviation of
    `FIXED_ZONES` (`Time (JST)`) is read in it; one of `AMBIGUOUS_ZONES` loses its note
    here (so the column is found) and is refused by `zone_problem`.
    """
    m = _ZONE_NOTE.search(name)
    if m is None or not name[: m.start()].strip():
        abbr = _zone_abbr(name)
        if abbr is None:
            return name, None
        rest, code = abbr
        hours = FIXED_ZONES.get(code)
        return rest, None if hours is None else timezone(timedelta(hours=hours), code)
    if m["sign"] is None:
        return name[: m.start()], UTC
    minutes = int(m["h"]) * 60 + int(m["m"] or 0)
    if minutes >= 24 * 60:
        return name, None
    offset = timedelta(minutes=minutes if m["sign"] == "+" else -minutes)
    return name[: m.start()], timezone(offset) if minutes else UTC


def _zone_abbr(name: str) -> tuple[str, str] | None:
    """Return a time column's name without a known zone abbreviation closing it, and the
    abbreviation (upper case); None when it has none."""
    m = _ZONE_ABBR.search(name)
    if m is None:
        return None
    code, rest = m["abbr"].upper(), name[: m.start()]
    if code not in FIXED_ZONES and code not in AMBIGUOUS_ZONES:
        return None
    if not _TIME_NAME.fullmatch(re.sub(r"[^a-z0-9]+", "", rest.lower())):
        return None
    return rest, code


def zone_problem(name: str) -> str | None:
    """Say why a time column's zone abbreviation cannot be read (`Time (EST)`), or None."""
    abbr = _zone_abbr(name)
    if abbr is None or abbr[1] in FIXED_ZONES:
        return None
    code = abbr[1]
    offset = _USUAL_OFFSETS.get(code)
    example = f"'Time(UTC{offset})'" if offset else "'Time(UTC-5)' or 'Time(UTC+1)'"
    usual = f" if every time in it is UTC{offset}" if offset else ""
    return (
        f"the time column {name!r} names its zone {code}, an abbreviation that does not say "
        f"one offset ({code} exports often follow a local clock that changes with daylight "
        "saving, and some abbreviations name several zones): name its offset in the header "
        f"instead, e.g. {example}{usual}; a file whose clock changes with daylight saving "
        "has no one offset: convert its times to UTC first"
    )


# the offset each refused abbreviation usually means, for the message's example
_USUAL_OFFSETS = {
    "EST": "-5", "EDT": "-4", "CDT": "-5", "MST": "-7", "MDT": "-6", "PST": "-8", "PDT": "-7",
    "CET": "+1", "CEST": "+2", "EET": "+2", "EEST": "+3", "WET": "+0", "WEST": "+1",
    "AEST": "+10", "AEDT": "+11", "NZST": "+12", "NZDT": "+13",
}  # fmt: skip


def ms_to_dt(ms: int) -> datetime:
    """Return the aware UTC datetime of epoch milliseconds."""
    return _EPOCH + timedelta(milliseconds=ms)


def timeframe_of(seconds: int) -> str:
    """Return the timeframe label of a bar length; raise when the platform has none."""
    for name, secs in TIMEFRAME_SECONDS.items():
        if secs == seconds:
            return name
    raise HistoryFormatError(f"bar length {seconds}s is not a platform timeframe")
