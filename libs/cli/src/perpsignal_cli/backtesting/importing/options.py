"""The reading options a run sets for every file it reads: an explicit column map
(`--columns`) and how slash dates read (`--date-order`), as context variables."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from perpsignal_cli.backtesting.importing.base import HistoryFormatError
from perpsignal_cli.backtesting.importing.layouts import KINDS

ColumnMap = dict[str, dict[str, str]]  # kind ("*" = every kind) -> field -> column spec


_OVERRIDES: contextvars.ContextVar[ColumnMap | None] = contextvars.ContextVar(
    "columns", default=None
)


def parse_column_map(specs: Iterable[str]) -> ColumnMap:
    """Parse `field=column` pairs (comma-separated, repeatable) into a column map.

    `kind.field=column` limits a pair to one input kind (`funding.rate=fr`); a column may be
    a header name or a 0-based position (`close=4`) and may carry a scale (`rate=fr*0.01`).
    """
    out: ColumnMap = {}
    every = {f for k in KINDS.values() for f in k.field_names()}
    for spec in specs:
        for pair in filter(None, (p.strip() for p in spec.split(","))):
            key, sep, column = pair.partition("=")
            if not sep or not key.strip() or not column.strip():
                raise HistoryFormatError(f"--columns: {pair!r} is not field=column")
            kind, _, name = key.strip().rpartition(".")
            kind = kind or "*"
            known = set(KINDS[kind].field_names()) if kind in KINDS else every
            if kind != "*" and kind not in KINDS:
                raise HistoryFormatError(f"--columns: unknown kind {kind!r} ({', '.join(KINDS)})")
            if name not in known:
                raise HistoryFormatError(
                    f"--columns: unknown field {name!r}; fields: {', '.join(sorted(known))}"
                )
            out.setdefault(kind, {})[name] = column.strip()
    return out


@dataclass
class _ColumnUse:
    """Which unprefixed `--columns` pairs a file had, and the columns of those that had not."""

    found: set[str] = field(default_factory=set)  # fields
    lacking: dict[str, dict[str, str]] = field(default_factory=dict)  # field -> file -> columns

    def note(self, name: str, path: Path, header: list[str] | None, found: bool) -> None:
        if found:
            self.found.add(name)
            return
        columns = ", ".join(header) if header is not None else "rows without a header"
        self.lacking.setdefault(name, {})[path.name] = columns


_COLUMN_USE: contextvars.ContextVar[_ColumnUse | None] = contextvars.ContextVar(
    "column_use", default=None
)


_CHECK_UNUSED: contextvars.ContextVar[bool] = contextvars.ContextVar("check_unused", default=True)


@contextlib.contextmanager
def column_overrides(mapping: ColumnMap) -> Iterator[None]:
    """Apply an explicit column map to every read inside the block (the CLI's `--columns`).

    An unprefixed pair applies to every file that has its column (`time=ts` may be meant for
    the candles only); one that no file read inside the block had (a typo, `close=clsoe`)
    is refused when the block ends, naming the columns the files have: it was ignored, and
    the field read from another column. `columns_checked_elsewhere` turns the check off.
    """
    use = _ColumnUse()
    token, use_token = _OVERRIDES.set(mapping), _COLUMN_USE.set(use)
    try:
        yield
    finally:
        _OVERRIDES.reset(token)
        _COLUMN_USE.reset(use_token)
    # reached only when the block ended without an exception
    unused = [(n, c) for n, c in mapping.get("*", {}).items() if n not in use.found]
    if unused and _CHECK_UNUSED.get():
        name, column = unused[0]
        files = "; ".join(f"{f}: {cols}" for f, cols in use.lacking.get(name, {}).items())
        raise HistoryFormatError(
            f"--columns {name}={column}: no input file has the column {_spec(column)[0]!r} "
            f"({files or f'no input is read for {name}'})"
        )


@contextlib.contextmanager
def columns_checked_elsewhere() -> Iterator[None]:
    """Read with `--columns` pairs a file may not use without refusing them: one symbol's
    run of a many-symbol backtest, whose plan checked them against every input."""
    token = _CHECK_UNUSED.set(False)
    try:
        yield
    finally:
        _CHECK_UNUSED.reset(token)


DATE_ORDERS = ("dmy", "mdy")


_DATE_ORDER: contextvars.ContextVar[str | None] = contextvars.ContextVar("date_order", default=None)


@contextlib.contextmanager
def date_order(order: str | None) -> Iterator[None]:
    """Read slash dates (`01/02/2024`) of every file inside the block day first (`dmy`) or
    month first (`mdy`): the CLI's `--date-order`, for files whose rows do not tell."""
    if order is not None and order not in DATE_ORDERS:
        raise HistoryFormatError(f"--date-order: {order!r} is none of {', '.join(DATE_ORDERS)}")
    token = _DATE_ORDER.set(order)
    try:
        yield
    finally:
        _DATE_ORDER.reset(token)


def _spec(spec: str | int) -> tuple[str | int, float]:
    if isinstance(spec, int):
        return spec, 1.0
    base, _, scale = spec.partition("*")
    target: str | int = int(base) if base.strip().isdigit() else base
    return target, float(scale) if scale else 1.0
