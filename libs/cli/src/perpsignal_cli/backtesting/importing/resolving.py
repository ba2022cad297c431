"""Where each field of a kind is in a file's rows (names, layouts, `--columns`), numbers
as spreadsheets write them, the rows of one market, and how a file's slash dates read."""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import logging
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, tzinfo
from pathlib import Path
from typing import Any

from perpsignal_cli.backtesting.importing.base import HistoryFormatError, Table, norm
from perpsignal_cli.backtesting.importing.files import _read
from perpsignal_cli.backtesting.importing.layouts import KINDS, Layout
from perpsignal_cli.backtesting.importing.options import (
    _COLUMN_USE,
    _DATE_ORDER,
    _OVERRIDES,
    _ColumnUse,
    _spec,
)
from perpsignal_cli.backtesting.importing.times import (
    parse_time_ms,
    slash_match,
    zone_note,
    zone_problem,
)

# the importers' one logger, whichever module logs
log = logging.getLogger("perpsignal_cli.backtesting.importers")


# 1,234.5 or 1,234,567.25: a spreadsheet's thousands separators, unambiguous with the decimal
# point (a bare 1,234 may be a decimal comma, so it is not guessed)
_THOUSANDS = re.compile(r"[+-]?\d{1,3}(,\d{3})+\.\d*")


# `68.97K`, `1.2M`, `3.4B`: how Investing.com and other sites' downloads abbreviate volumes
_MAGNITUDE = {"K": 1e3, "M": 1e6, "B": 1e9}


def number(value: Any) -> float | None:
    """Return a cell as a float, None when empty (or `-`, a spreadsheet's "none"); raise
    naming a cell that is no number."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if not text or text == "-":
            return None
        try:
            return float(text)
        except ValueError:
            if _THOUSANDS.fullmatch(text):
                return float(text.replace(",", ""))
            if text.endswith("%"):  # `0.0100%` (a venue's website download): a fraction
                with contextlib.suppress(ValueError):
                    return float(text[:-1]) / 100
            magnitude = _MAGNITUDE.get(text[-1])
            if magnitude is not None:
                with contextlib.suppress(ValueError):
                    return float(text[:-1]) * magnitude
            raise HistoryFormatError(f"{value!r} is not a number") from None
    return float(value)


@dataclass(frozen=True)
class Resolved:
    """Where each field is in the rows, with its scale; `layout` names what matched."""

    index: dict[str, int]
    scale: dict[str, float]
    layout: str
    close_stamped: bool = False  # the layout's times are the bars' close
    date_order: str | None = None  # how its slash dates read (`_with_date_order`)
    zone: tzinfo = UTC  # of its times written without a zone (`Time(UTC+8)`: `zone_note`)
    envelope: dict[str, str] = field(default_factory=dict)  # see `Table.envelope`

    def get(self, row: Sequence[Any], name: str) -> float | None:
        """Return field `name` of `row` as a float (scaled), or None when absent/empty."""
        i = self.index.get(name)
        if i is None or i >= len(row):
            return None
        value = number(row[i])
        return None if value is None else value * self.scale.get(name, 1.0)

    def raw(self, row: Sequence[Any], name: str) -> Any:
        """Return field `name` of `row` unconverted, or None."""
        i = self.index.get(name)
        return None if i is None or i >= len(row) else row[i]


def _bars_fit(layout: Layout, rows: Sequence[Sequence[Any]]) -> bool:
    """Return True unless `layout` reads a row of `rows` as an impossible bar: a price that
    is no number (MetaTrader's time of day where Bybit has its open) or outside the range,
    or a `confirm` flag that is not OKX's text "0" or "1" (a CCXT volume of 1 is a number)."""
    cols = layout.columns
    if "confirm" in cols:
        at_flag = int(cols["confirm"])
        if any(at_flag >= len(r) or r[at_flag] not in ("0", "1") for r in rows):
            return False
    if not {"open", "high", "low", "close"} <= set(cols):
        return True
    at = [int(cols[n]) for n in ("open", "high", "low", "close")]
    for row in rows:
        try:
            o, h, lo, c = (number(row[i]) for i in at)
        except IndexError:
            continue  # a short row is no bar under any layout
        except HistoryFormatError:
            return False
        if o is None or h is None or lo is None or c is None:
            continue  # a missing bar fits every layout
        if lo > min(o, c) or h < max(o, c):
            return False
    return True


def resolve(kind: str, table: Table, path: Path) -> Resolved:
    """Return where each field of `kind` is in `table`, or fail saying what was seen."""
    spec = KINDS[kind]
    overrides = _OVERRIDES.get() or {}
    explicit = {**overrides.get("*", {}), **overrides.get(kind, {})}
    explicit = {k: v for k, v in explicit.items() if k in spec.field_names()}
    prefixed = overrides.get(kind, {})
    use = _COLUMN_USE.get() or _ColumnUse()
    index: dict[str, int] = {}
    scale: dict[str, float] = {}
    layout = "explicit --columns" if explicit else "column names"
    close_stamped = False
    header = table.header
    if header is None:
        rows = iter(table.rows)
        first = next(rows, None)
        if first is None:
            raise HistoryFormatError(f"{path}: no rows")
        head = [first, *itertools.islice(rows, 199)]
        table.rows = itertools.chain(head, rows)
        width = len(first)
        fitting = [lo for lo in spec.layouts if lo.width == width]
        # layouts of one width (CCXT's and Coinbase's candles): the first whose every head
        # row is a possible bar (low <= open, close <= high)
        chosen = next(
            (lo for lo in fitting if _bars_fit(lo, head)), fitting[0] if fitting else None
        )
        # an unprefixed pair naming a column (not a position) is for files with a header
        for name in [n for n in explicit if n not in prefixed]:
            named = not isinstance(_spec(explicit[name])[0], int)
            use.note(name, path, None, found=not named)
            if named:
                del explicit[name]
        if chosen is None and not explicit:
            widths = ", ".join(f"{lo.width} ({lo.name})" for lo in spec.layouts if lo.width)
            raise HistoryFormatError(
                f"{path}: {table.what} rows without a header have {width} values; as {kind} "
                f"they are read by position when {widths or 'never'}; give a header or map "
                f"positions with --columns (e.g. close=4)"
            )
        positions = dict(chosen.columns) if chosen else {}
        layout = chosen.name if chosen else layout
        for name, col in {**positions, **explicit}.items():
            target, factor = _spec(col)
            if not isinstance(target, int):
                raise HistoryFormatError(f"{path}: no header, so --columns {name} needs a position")
            index[name], scale[name] = target, factor
    else:
        normed = [norm(zone_note(h)[0]) for h in header]
        claimed: set[int] = set()

        def find(target: str | int) -> int | None:
            """Return the unclaimed column named `target`: spelled exactly first, then by
            normalised name (Hyperliquid's `t` is the open time, its `T` the close time)."""
            if isinstance(target, int):
                return target
            spelled = [i for i, h in enumerate(header) if h.strip() == target.strip()]
            n = norm(target)
            same = spelled + [i for i, h in enumerate(normed) if h == n]
            return next((i for i in same if i not in claimed), same[0] if same else None)

        for name, col in explicit.items():
            target, factor = _spec(col)
            i = find(target)
            if name not in prefixed:
                use.note(name, path, header, found=i is not None)
            if i is None and name not in prefixed:
                continue  # an unprefixed pair meant for another input file
            if i is None:
                raise HistoryFormatError(
                    f"{path}: --columns {kind}.{name}={col}: no such column; columns: {header}"
                )
            index[name], scale[name] = i, factor
            claimed.add(i)
        present = set(normed)
        for lo in spec.layouts:
            if lo.width is None and lo.when <= present:
                layout = lo.name
                close_stamped = lo.close_stamped
                for name, col in lo.columns.items():
                    target, factor = _spec(col)
                    i = find(target)
                    if name not in index and i is not None:
                        index[name], scale[name] = i, factor
                        claimed.add(i)
                break
        for f in spec.fields:
            if f.name in index:
                continue
            for raw, (alias, factor) in zip(f.aliases, f.names(), strict=True):
                i = find(raw.partition("*")[0]) if alias in present else None
                if i is not None and i not in claimed:
                    index[f.name], scale[f.name] = i, factor
                    claimed.add(i)
                    break
    missing = [f for f in spec.fields if f.required and f.name not in index]
    if kind in ("open_interest", "long_short") and set(index) <= {"time"}:
        missing += [f for f in spec.fields if f.name != "time"]
    if missing:
        accepted = "; ".join(f"{f.name}: {', '.join(f.aliases)}" for f in missing)
        seen = header if header is not None else f"{table.what} rows by position"
        raise HistoryFormatError(
            f"{path}: cannot read as {kind.replace('_', ' ')}: columns seen: {seen}; "
            f"missing {', '.join(f.name for f in missing)} (accepted names - {accepted}); "
            f"or name the columns with --columns {missing[0].name}=<column>"
        )
    zone: tzinfo = UTC
    if header is not None:
        for n in ("time", "day"):
            problem = zone_problem(header[index[n]]) if n in index else None
            if problem is not None:
                raise HistoryFormatError(f"{path}: {problem}")
        notes = [zone_note(header[index[n]])[1] for n in ("time", "day") if n in index]
        zone = next((z for z in notes if z is not None), UTC)
    return Resolved(index, scale, layout, close_stamped, zone=zone, envelope=table.envelope)


def _load(
    kind: str, path: Path, symbol: str | None = None
) -> tuple[Resolved, Iterable[Sequence[Any]]]:
    """Open `path` as `kind`: its resolved columns and its rows (of `symbol` only, see below).

    A file whose symbol column holds several markets (an API dump of every symbol, CCXT or
    BitMEX rows) is read for `symbol`'s rows only, the others counted in a warning; without
    a matching row, or without `symbol`, it is refused. Its rows were read as one series
    before: a time given by two markets kept the later row, so one market's backtest ran
    on another's prices. A single-market file is read whatever it calls the market, unless
    that market has another base asset (`_base_asset`): another coin's funding was read as
    the symbol's.
    """
    table = _read(path)
    res = _with_date_order(resolve(kind, table, path), table, path)
    zone = "" if res.zone is UTC else f", times without a zone read as {res.zone}"
    log.info("%s: read as %s (%s%s)", path.name, kind, res.layout, zone)
    market = res.envelope.get("symbol")
    if market and symbol is not None and "symbol" not in res.index:  # the envelope names it
        _refuse_another_market(path, kind, market, symbol)
    if "symbol" not in res.index or kind == "liquidations":  # liquidations filter their own
        return res, table.rows
    # a first pass over the symbol column: the rows themselves when already in memory (JSON,
    # Arrow), a second read of a CSV, which is read as it goes (files with a market column
    # are API dumps, not the bulk 1m exports, which never name their market in every row)
    seen: Counter[str] = Counter()
    for row in table.rows if isinstance(table.rows, list) else _read(path).rows:
        name = res.raw(row, "symbol")
        if name not in (None, ""):
            seen[str(name)] += 1
    if len(seen) == 1 and symbol is not None:
        (name,) = seen
        _refuse_another_market(path, kind, name, symbol)
    if len(seen) <= 1:
        return res, table.rows
    listed = ", ".join(f"{name} ({n} rows)" for name, n in seen.most_common(5))
    more = f" and {len(seen) - 5} more" if len(seen) > 5 else ""
    keep = {name for name in seen if symbol is not None and same_symbol(name, symbol)}
    if not keep:
        want = f"no row of {symbol}" if symbol else "no symbol given to choose one"
        raise HistoryFormatError(
            f"{path}: rows of {len(seen)} markets ({listed}{more}) and {want}; give the rows "
            "of one market"
        )
    left = sum(n for name, n in seen.items() if name not in keep)
    log.warning(
        "%s: only the rows of %s are read; %d rows of %d other markets are left out (%s%s)",
        path.name,
        symbol,
        left,
        len(seen) - len(keep),
        ", ".join(f"{name} ({n})" for name, n in seen.most_common(6) if name not in keep),
        " ..." if len(seen) - len(keep) > 5 else "",
    )
    at = res.index["symbol"]
    rows = (r for r in table.rows if at >= len(r) or r[at] in (None, "") or str(r[at]) in keep)
    return res, rows


def _refuse_another_market(path: Path, kind: str, name: str, symbol: str) -> None:
    """Refuse a one-market file whose market (`name`) has another base asset than `symbol`."""
    if not same_symbol(name, symbol) and _base_asset(name) != _base_asset(symbol):
        raise HistoryFormatError(
            f"{path}: its rows are of {name}, not {symbol}: give {symbol}'s "
            f"{kind.replace('_', ' ')} history (or --symbol for {name}'s)"
        )


# how many rows of a streamed file are looked at for a day or month above 12 (a 1m file
# has one by row 17,281 in either order, whatever day it starts on)
DATE_SCAN_ROWS = 50_000


def _slash_fields(row: Sequence[Any], at: int) -> tuple[int, int, str] | None:
    """The first two numbers of a row's slash date and its text, or None when it has none."""
    cell = row[at] if at < len(row) else None
    if not isinstance(cell, str):
        return None
    m = slash_match(cell)
    return None if m is None else (int(m["a"]), int(m["b"]), cell.strip())


def _with_date_order(res: Resolved, table: Table, path: Path) -> Resolved:
    """Decide how the slash dates of a file read (day or month first), or refuse it.

    A first number above 12 proves day first, a second above 12 month first; `--date-order`
    decides a file whose rows prove neither. The proof is sought in a streamed file's first
    DATE_SCAN_ROWS rows (read again from disk, so the rows are not held), in all the rows of
    a file read whole; without one (and without the option) the file is refused, not
    guessed. Every row is then checked as it is read: a date of the other order (a file
    that mixes both, or a later row the prefix did not see contradicting the option) is
    refused naming its line, never read as another day.
    """
    at = res.index.get("time")
    if at is None:
        return res
    rows = table.rows
    if not isinstance(rows, list):
        it = iter(rows)
        head = next(it, None)
        table.rows = rows = it if head is None else itertools.chain([head], it)
    else:
        head = rows[0] if rows else None
    if head is not None:
        at = _date_column(res, head)
    example = None if head is None else _slash_fields(head, at)
    if example is None:
        return res  # the common case: no slash dates, nothing more is done
    given = _DATE_ORDER.get()
    whole = isinstance(rows, list)  # read whole: every row is looked at, here and now
    proof = None
    if whole:
        proof = _date_proof(rows, at, None, path, whole=True)
    elif given is None:
        again = _read(path)  # streamed: its prefix read again, not kept
        proof = _date_proof(again.rows, at, again.line, path, whole=False)
    if proof is not None and given is not None and proof[0] != given:
        raise HistoryFormatError(
            f"{path}: {proof[1]}: {proof[2]!r} is {_ORDER_WORDS[proof[0]]}, not "
            f"{_ORDER_WORDS[given]} as --date-order {given} says"
        )
    order = given or (proof[0] if proof else None)
    if order is None:
        seen = "its rows" if whole else f"its first {DATE_SCAN_ROWS:,} rows"
        raise HistoryFormatError(
            f"{path}: dates such as {example[2]!r} read day/month/year or month/day/year, "
            f"and no date in {seen} has a number above 12 to tell which: say which with "
            "--date-order dmy (day first) or --date-order mdy (month first)"
        )
    if not whole:  # the rows the prefix did not reach are checked as they are read
        because = f"--date-order {given} says {_ORDER_WORDS[order]}"
        if proof is not None:
            because = f"{proof[1]}: {proof[2]!r} is {_ORDER_WORDS[order]}"
        table.rows = _checked_dates(rows, at, order, table.line, path, because)
    return dataclasses.replace(res, date_order=order)


_ORDER_WORDS = {"dmy": "day first", "mdy": "month first"}


def rows_date_order(res: Resolved, rows: Sequence[Sequence[Any]], path: Path) -> str | None:
    """How the slash dates of a file's first `rows` read: `--date-order`, else what they
    prove, else None (planning a run looks at a few rows; the read itself decides)."""
    given = _DATE_ORDER.get()
    if given is not None or "time" not in res.index or not rows:
        return given
    proof = _date_proof(rows, _date_column(res, rows[0]), None, path, whole=True)
    return None if proof is None else proof[0]


def _where(k: int, line: Callable[[], int] | None) -> str:
    return f"line {line()}" if line is not None else f"row {k}"


def _date_proof(
    rows: Iterable[Sequence[Any]],
    at: int,
    line: Callable[[], int] | None,
    path: Path,
    *,
    whole: bool,
) -> tuple[str, str, str] | None:
    """Return (order, where, date) of the first date that proves an order, or None.

    `whole`: every row is looked at and rows proving both orders are refused; else the
    first DATE_SCAN_ROWS at most, up to the first proof (later rows are checked as read).
    """
    proof: tuple[str, str, str] | None = None
    for k, row in enumerate(itertools.islice(rows, None if whole else DATE_SCAN_ROWS), 1):
        fields = _slash_fields(row, at)
        if fields is None:
            continue
        first, second, text = fields
        order = "dmy" if first > 12 else "mdy" if second > 12 else None
        if order is None:
            continue
        if proof is None:
            proof = (order, _where(k, line), text)
            if not whole:
                break
        elif proof[0] != order:
            raise HistoryFormatError(
                f"{path}: {_where(k, line)}: {text!r} is {_ORDER_WORDS[order]}, but "
                f"{proof[1]}: {proof[2]!r} is {_ORDER_WORDS[proof[0]]}: the file mixes both"
            )
    return proof


def _checked_dates(
    rows: Iterable[Sequence[Any]],
    at: int,
    order: str,
    line: Callable[[], int] | None,
    path: Path,
    because: str,
) -> Iterator[Sequence[Any]]:
    """Yield `rows`, refusing the first whose slash date cannot be read in `order` (its
    month above 12): it proves the other order, so the file is not what `because` says."""
    day_first = order == "dmy"
    other = "mdy" if day_first else "dmy"
    for k, row in enumerate(rows, 1):
        fields = _slash_fields(row, at)
        if fields is not None and (fields[1] if day_first else fields[0]) > 12:
            raise HistoryFormatError(
                f"{path}: {_where(k, line)}: {fields[2]!r} is {_ORDER_WORDS[other]}, but "
                f"{because}: the dates of one file must read one way"
            )
        yield row


# a time of day alone: MetaTrader's and many tools' `Date,Time,...` give the date beside it
_CLOCK = re.compile(r"\s*\d{1,2}:\d\d(:\d\d(\.\d+)?)?\s*$")


def row_time(res: Resolved, row: Sequence[Any]) -> Any:
    """Return a row's time as written: its time cell, or its date and time of day joined
    when the file gives them in two columns (a clock alone is no time)."""
    raw = res.raw(row, "time")
    if "day" in res.index and isinstance(raw, str) and _CLOCK.match(raw):
        return f"{res.raw(row, 'day')} {raw.strip()}"
    return raw


def _date_column(res: Resolved, row: Sequence[Any]) -> int:
    """Where a row's date is written: its day column when the time column holds a clock."""
    raw = res.raw(row, "time")
    if "day" in res.index and isinstance(raw, str) and _CLOCK.match(raw):
        return res.index["day"]
    return res.index["time"]


def _time(res: Resolved, row: Sequence[Any], path: Path) -> int:
    try:
        return parse_time_ms(row_time(res, row), res.date_order, res.zone)
    except HistoryFormatError as exc:
        raise HistoryFormatError(f"{path}: {exc}") from None


# what venues put after a perpetual's pair: OKX -SWAP, Bitget v1 _UMCBL/_DMCBL/_CMCBL, -PERP
_CONTRACT_SUFFIX = re.compile(r"(swap|perpetual|perp|umcbl|dmcbl|cmcbl)$")


def same_symbol(name: str, symbol: str) -> bool:
    """Return True when `name` names `symbol`: BTCUSDT, BTC-USDT-SWAP (OKX), BTC/USDT:USDT
    (CCXT: the settle currency after the colon), BTCUSDT_UMCBL (Bitget), BTC (its USDT pair)."""
    n = _CONTRACT_SUFFIX.sub("", norm(name.split(":")[0]))
    want = _CONTRACT_SUFFIX.sub("", norm(symbol.split(":")[0]))
    return n == want or n + "usdt" == want or want + "usdt" == n


# a quote currency after the base, and what venues put before it: Kraken Futures' PF_/PI_
# prefix, Hyperliquid's `k` (thousands: kPEPE), the 1000 of Binance's and Bybit's 1000PEPEUSDT
_QUOTE = re.compile(r"(usdt|usdc|busd|fdusd|usd|eur|dai)$")
_VENUE_PREFIX = re.compile(r"^(?:(?i:pf|pi|fi|ff)_|k(?=[A-Z])|1000000|1000)")


def _base_asset(name: str) -> str:
    """Return the base asset a market name or symbol names, loosely (`PF_XBTUSD` -> `btc`,
    `kPEPE` and `1000PEPEUSDT` -> `pepe`, `XRP-USDT-SWAP` -> `xrp`): two names with other
    bases are surely two markets, whatever each venue's way of writing them."""
    text = _VENUE_PREFIX.sub("", name.split(":")[0].strip(), count=1)
    n = _CONTRACT_SUFFIX.sub("", norm(text))
    n = "btc" + n[3:] if n.startswith("xbt") else n
    return _QUOTE.sub("", n) or n


def _same_symbol(raw: Any, symbol: str) -> bool:
    """Return True when a file's symbol cell names `symbol` (or is empty)."""
    return raw in (None, "") or same_symbol(str(raw), symbol)
