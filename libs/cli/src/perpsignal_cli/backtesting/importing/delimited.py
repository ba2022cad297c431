"""Delimited text (CSV, tab, `|` or `;` with decimal commas), read as it goes: line by line
from the file (plain or gzipped), each line capped, rows handed on as they are parsed."""

from __future__ import annotations

import codecs
import contextlib
import csv
import gzip
import itertools
import logging
import re
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from perpsignal_cli.backtesting.importing.base import HistoryFormatError, Table
from perpsignal_cli.backtesting.importing.times import _date_text, slash_match


def _csv_rows(reader: Iterator[list[str]], where: str, comma: bool) -> Iterator[list[str]]:
    """The non-empty rows of `reader`; a line the csv module refuses (a field past its
    128 KiB limit: a binary blob, a 2 GB line) or bytes that are no text further down
    the file are a HistoryFormatError, not a traceback.
    `comma`: a `;`, tab or `|` file, whose numbers may have a decimal comma (`1,5`,
    `1.234,5`), made `1.5`, `1234.5` (see `_DecimalMark`)."""
    try:
        if comma:
            yield from _DecimalMark(where).rows(reader)
        else:
            yield from filter(None, reader)
    except csv.Error as exc:
        line = getattr(reader, "line_num", "?")
        raise HistoryFormatError(f"{where}line {line} is not a CSV row ({exc})") from None
    except UnicodeDecodeError as exc:
        line = getattr(reader, "line_num", "?")
        raise HistoryFormatError(f"{where}not text after line {line} ({exc})") from None


# the importers' one logger, whichever module logs
log = logging.getLogger("perpsignal_cli.backtesting.importers")


# numbers as a decimal-comma locale writes them, and as a decimal-point one does: `1,5`,
# `1.234,5` prove the comma; `1.5`, `1,234.5` the point. `1.234` and `1,234` read either
# way (a thousand, or one and a fraction): the file's other numbers decide
_NUMBER_MARK = re.compile(
    r"\s*(?:(?P<either>[+-]?\d{1,3}[.,]\d{3}%?)"
    r"|(?P<comma>[+-]?(\d{1,3}(\.\d{3})+|\d+),\d+%?|[+-]?\d{1,3}(\.\d{3}){2,}%?)"
    r"|(?P<point>[+-]?(\d{1,3}(,\d{3})+|\d+)\.\d+%?|[+-]?\d{1,3}(,\d{3}){2,}%?))\s*"
)

# how many rows wait for the file to show its decimal mark before it is refused
MARK_SCAN_ROWS = 1000
# how many rows before a last row without a line end show how long its last value runs
CUT_SCAN_ROWS = 100


class _DecimalMark:
    """The decimal mark of a `;`, tab or `|` file, proven by its numbers, never guessed.

    Each cell was read on its own: `1,5` as 1.5, but the `1.234` beside it (a thousand,
    where the comma is the decimal mark) as 1.234, and `1.5` in a file of decimal commas as
    1.5 whatever it meant. Now a number that reads both ways waits (rows held, at most
    MARK_SCAN_ROWS) for one that proves the mark; one of the other mark is refused naming
    its line, and so is a file whose first rows never tell.
    """

    def __init__(self, where: str) -> None:
        self.where = where
        self.mark: str | None = None  # "comma" or "point"
        self.proof = ""

    def rows(self, reader: Iterator[list[str]]) -> Iterator[list[str]]:
        held: list[tuple[int, list[str], list[str | None]]] = []
        for row in reader:
            if not row:
                continue
            line = getattr(reader, "line_num", 0)
            kinds = self._see(row, line)
            if self.mark is None and "either" in kinds:
                held.append((line, row, kinds))
                if len(held) > MARK_SCAN_ROWS:
                    self._undecided(*held[0])
                continue
            for _, r, k in held:
                yield self._convert(r, k)
            held.clear()
            yield self._convert(row, kinds)
        if held and self.mark is None:
            self._undecided(*held[0])
        for _, r, k in held:
            yield self._convert(r, k)

    def _see(self, row: list[str], line: int) -> list[str | None]:
        """Return each cell's kind of number (`either`, `comma`, `point` or None), noting
        the mark it proves and refusing a cell of the other mark."""
        kinds: list[str | None] = []
        for cell in row:
            m = None if "," not in cell and "." not in cell else _NUMBER_MARK.fullmatch(cell)
            kind = None if m is None else m.lastgroup
            kinds.append(kind)
            if kind in (None, "either", self.mark):
                continue
            if self.mark is None:
                self.mark, self.proof = kind, f"line {line}: {cell.strip()!r}"
                continue
            raise HistoryFormatError(
                f"{self.where}line {line}: {cell.strip()!r} has a decimal {kind}, but "
                f"{self.proof} a decimal {self.mark}: the numbers of one file must use one "
                "decimal mark"
            )
        return kinds

    def _undecided(self, line: int, row: list[str], kinds: list[str | None]) -> None:
        cell = row[kinds.index("either")].strip()
        whole = cell.replace(".", "").replace(",", "")
        raise HistoryFormatError(
            f"{self.where}line {line}: {cell!r} reads {whole} (a thousands separator) or "
            f"{cell.replace(',', '.')} (a decimal mark), and no number in the first "
            f"{MARK_SCAN_ROWS:,} rows tells which: save the file with more decimals, or "
            "with commas between cells and decimal points"
        )

    def _convert(self, row: list[str], kinds: list[str | None]) -> list[str]:
        if self.mark == "comma":
            return [c if k is None else _point(c) for c, k in zip(row, kinds, strict=True)]
        if self.mark == "point":
            return [
                c.replace(",", "") if k == "either" else c for c, k in zip(row, kinds, strict=True)
            ]
        return row


def _point(cell: str) -> str:
    return cell.strip().replace(".", "").replace(",", ".")


def _delimiter(lines: Sequence[str]) -> str:
    """The cell separator of a CSV's first lines: `,`, or `;` (a spreadsheet saved where the
    comma is the decimal mark), tab or `|` when a line has more of those than commas."""
    best = ","
    for line in lines:
        counts = {d: line.count(d) for d in (";", "\t", "|")}
        other = max(counts, key=counts.__getitem__)
        if counts[other] and counts[other] >= line.count(","):
            return other
        if line.count(","):
            return best
    return best


def _csv_table(text: Iterable[str], path: Path | None = None) -> Table:
    where = f"{path}: " if path is not None else ""
    ends = _LineEnds(iter(text))
    lines = iter(ends)
    head = list(itertools.islice(lines, 5))
    delimiter = _delimiter([ln for ln in head if ln.strip()])
    reader = csv.reader(itertools.chain(head, lines), delimiter=delimiter)
    rows = _csv_rows(reader, where, comma=delimiter != ",")
    # skip a banner line some exporters put above the header (a URL, a title)
    first = next((row for row in rows if len(row) > 1), None)
    if first is None:
        raise HistoryFormatError("empty file")
    if not _is_data_row(first):
        header = [c.strip() for c in first]
        rest = _without_repeats(rows, header, where, lambda: reader.line_num)
        if not header[0]:  # pandas writes its index unnamed: often the times
            header[0] = "index"
        whole = _CutLast(rest, ends, reader, where, len(header), headed=True)
        return Table(header, whole, "CSV", whole.line)
    whole = _CutLast(itertools.chain([first], rows), ends, reader, where, len(first))
    return Table(None, whole, "CSV", whole.line)


class _LineEnds:
    """The lines of a text, noting whether the last one read had a line end."""

    def __init__(self, lines: Iterator[str]) -> None:
        self.lines = lines
        self.ended = True

    def __iter__(self) -> Iterator[str]:
        for line in self.lines:
            self.ended = line.endswith(("\n", "\r"))
            yield line


class _CutLast:
    """A CSV's rows but a last one cut short by a broken download, skipped with a warning.

    Such a row has no line end and fewer values than the row before, or a last value
    shorter than that column's in each of the rows before (up to CUT_SCAN_ROWS): a close of
    `1.0` for `1.0680` was read, and an open interest of `7` for `70887.608` as the market
    emptying. A file merely without a final line end keeps its last row: compared with the
    row before alone, a volume of `785` under `3642` was taken for a cut and a fifth of
    real candle files lost their last bar. A row with more values than the header names
    (`1,0762` unquoted in a comma file) is refused naming its line: which value moved is
    unknown, and the close became `1`.
    `line()`: the line of the row last handed on.
    """

    def __init__(
        self,
        rows: Iterator[list[str]],
        ends: _LineEnds,
        reader: Any,
        where: str,
        width: int,
        *,
        headed: bool = False,
    ) -> None:
        self.rows, self.ends, self.reader, self.where = rows, ends, reader, where
        self.width, self.headed = width, headed  # the header's width, or the first row's
        self.at = 0

    def line(self) -> int:
        return self.at

    def __iter__(self) -> Iterator[list[str]]:
        before: list[str] | None = None
        recent: deque[list[str]] = deque(maxlen=CUT_SCAN_ROWS)
        held: list[str] | None = None
        held_at = 0
        for row in self.rows:
            if held is not None:
                self.at = held_at
                yield held
                before = held
                recent.append(held)
            held, held_at = row, self.reader.line_num
            if len(row) > self.width and any(c.strip() for c in row[self.width :]):
                raise HistoryFormatError(
                    f"{self.where}line {held_at} has {len(row)} values where the "
                    f"{'header names' if self.headed else 'first row has'} {self.width}: a "
                    "value holding the separator (`1,0762` or `65,000.5` unquoted)? Which "
                    "value moved cannot be told"
                )
        if held is None:
            return
        if not self.ends.ended and before is not None and len(held) <= len(before):
            k = len(held) - 1
            last = held[k].strip()
            shortest = min((r[k].strip() for r in recent if len(r) > k), key=len)
            if len(held) < len(before) or len(last) < len(shortest):
                log.warning(
                    "%sline %d has no line end, and %s: a download cut mid-row? skipped",
                    self.where,
                    held_at,
                    f"{len(held)} values where the row before has {len(before)}"
                    if len(held) < len(before)
                    else f"its last value {last!r} is shorter than that column's in each of "
                    f"the {len(recent)} rows before (the shortest: {shortest!r})",
                )
                return
        self.at = held_at
        yield held


def _without_repeats(
    rows: Iterator[list[str]], header: list[str], where: str, line: Callable[[], int]
) -> Iterator[list[str]]:
    """Yield `rows` but those repeating the header (its BOM too): two exports joined with
    `cat` stopped at the second one's header (`unreadable time 'time'`, or '\\ufefftime')."""
    first = header[0]
    for row in rows:
        if (
            row[0].lstrip("\ufeff").strip() == first
            and [c.lstrip("\ufeff").strip() for c in row] == header
        ):
            log.warning("%sline %d repeats the header (exports joined?): skipped", where, line())
            continue
        yield row


def _is_data_row(row: Sequence[str]) -> bool:
    """Return True when a CSV's first row is data: it starts with a number, or with a date
    text followed by numbers (a header names its columns)."""
    try:
        float(row[0])
        return True
    except ValueError:
        pass
    if _date_text(row[0].strip()) is None and not slash_match(row[0]):
        return False
    numbers = 0
    for cell in row[1:]:
        with contextlib.suppress(ValueError):
            float(cell)
            numbers += 1
    return numbers * 2 >= len(row) - 1


# a CSV line longer than this is no export row (a kline row is ~150 bytes): refused unread
MAX_LINE_CHARS = 1 << 20


def _encoding(start: bytes) -> str:
    """UTF-16 when the bytes open with its BOM (Excel's 'Unicode Text'); Windows-1252 when
    they are no UTF-8 (Excel's plain 'CSV' on Western Windows: `Eröffnung`, `€`, which was
    'not CSV or JSON'); else UTF-8."""
    if start[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return "utf-16"
    try:  # the start may end inside a character: an incremental decoder allows that
        codecs.getincrementaldecoder("utf-8")().decode(start, final=False)
    except UnicodeDecodeError:
        return "cp1252"
    return "utf-8-sig"


def _text_lines(path: Path, encoding: str = "utf-8-sig", *, gzipped: bool = False) -> Iterator[str]:
    """The lines of a text file (or of a gzipped one), read as the rows are consumed (not
    the file at once: the text, its copy in a StringIO and the rows took ~8x the file's
    size), each at most MAX_LINE_CHARS long (a 2 GB line is refused having read 1 MiB of
    it; so is a gzip bomb of one endless line)."""
    opened: IO[str] = (
        gzip.open(path, "rt", encoding=encoding, newline="")  # noqa: SIM115 (closed below)
        if gzipped
        else path.open(encoding=encoding, newline="")
    )
    try:
        with opened as fh:
            for number, line in enumerate(iter(lambda: fh.readline(MAX_LINE_CHARS), ""), 1):
                if len(line) >= MAX_LINE_CHARS and not line.endswith(("\n", "\r")):
                    raise HistoryFormatError(
                        f"{path}: line {number} is longer than {MAX_LINE_CHARS:,} characters: "
                        "not an export row (a kline row is ~150)"
                    )
                yield line
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:  # found as the rows are read
        raise HistoryFormatError(f"{path}: a damaged gzip file ({exc})") from None
