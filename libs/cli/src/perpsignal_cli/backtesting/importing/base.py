"""The importers' shared ground: their error, the file-naming of contract errors, column-name
normalisation and a file as a header and rows (`Table`)."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

import pydantic

SOURCE = "history"


class HistoryFormatError(ValueError):
    """A history file cannot be read as the shape it was given as."""


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _contract_errors_named(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    """Turn a row that breaks the event contract into a HistoryFormatError naming the file.

    The events' value rules (finite numbers, price bounds, times between 2009 and now) are the
    same as on the bus, so an export with such a row fails here with the reason, not a traceback.
    """

    @functools.wraps(fn)
    def wrapped(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return fn(*args, **kwargs)
        except HistoryFormatError as exc:
            path = args[0] if args else kwargs.get("path")
            if str(path) in str(exc):
                raise
            raise HistoryFormatError(f"{path}: {exc}") from None
        except pydantic.ValidationError as exc:
            path = args[0] if args else kwargs.get("path")
            first = exc.errors()[0]
            where = ".".join(str(x) for x in first.get("loc", ())) or exc.title
            raise HistoryFormatError(
                f"{path}: a row breaks the event contract ({exc.title}.{where}: {first['msg']})"
            ) from exc

    return wrapped


def norm(name: str) -> str:
    """Return a column name normalised for matching (`Open Time (UTC)` -> `opentimeutc`)."""
    return re.sub(r"[^a-z0-9]+", "", name.strip().lower())


@dataclass
class Table:
    """A file as a header (None when rows are positional) and its rows."""

    header: list[str] | None
    rows: Iterable[Sequence[Any]]
    what: str  # "CSV", "JSON", ...
    # a streamed CSV: the line number of the row last read (for errors naming the line)
    line: Callable[[], int] | None = None
    # what a venue's JSON envelope says of every row (Bybit's `result.category` and
    # `result.symbol`): the rows themselves may not say it
    envelope: dict[str, str] = field(default_factory=dict)
