"""Delimited text (CSV, tab, `|` or `;` with decimal commas), read as it goes: line by line
from the file (plain or gzipped), each line capped, rows handed on as they are parsed."""

from __future__ import annotations

import contextlib
import csv
import gzip
import itertools
import re
import zlib
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO

from perpsignal_cli.backtesting.importing.base import HistoryFormatError, Table
from perpsignal_cli.backtesting.importing.times import _date_text, slash_match


def _csv_rows(reader: Iterator[list[str]], where: str, comma: bool) -> Iterator[list[str]]:
    """The non-empty rows of `reader`; a line the csv module refuses (a field past its
    128 KiB limit: a binary blob, a 2 GB line) or bytes that are no text further down
    the file are a HistoryFormatError, not a traceback.
    `comma`: numbers have a decimal comma (`1,5`, `1.234,5`), made `1.5`, `1234.5`."""
    try:
        if comma:
            for row in reader:
                if row:
                    yield [_point(c) if _DECIMAL_COMMA.fullmatch(c) else c for c in row]
        else:
            yield from filter(None, reader)
    except csv.Error as exc:
        line = getattr(reader, "line_num", "?")
        raise HistoryFormatError(f"{where}line {line} is not a CSV row ({exc})") from None
    except UnicodeDecodeError as exc:
        line = getattr(reader, "line_num", "?")
        raise HistoryFormatError(f"{where}not text after line {line} ({exc})") from None


_DECIMAL_COMMA = re.compile(r"\s*[+-]?\d{1,3}(\.\d{3})*,\d+\s*|\s*[+-]?\d+,\d+\s*")


def _point(cell: str) -> str:
    return cell.replace(".", "").replace(",", ".")


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
    lines = iter(text)
    head = list(itertools.islice(lines, 5))
    delimiter = _delimiter([ln for ln in head if ln.strip()])
    reader = csv.reader(itertools.chain(head, lines), delimiter=delimiter)
    rows = _csv_rows(reader, where, comma=delimiter == ";")
    # skip a banner line some exporters put above the header (a URL, a title)
    first = next((row for row in rows if len(row) > 1), None)
    if first is None:
        raise HistoryFormatError("empty file")
    rest = rows
    if not _is_data_row(first):
        header = [c.strip() for c in first]
        if not header[0]:  # pandas writes its index unnamed: often the times
            header[0] = "index"
        return Table(header, rest, "CSV", lambda: reader.line_num)
    return Table(None, itertools.chain([first], rest), "CSV", lambda: reader.line_num)


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
    """UTF-16 when the bytes open with its BOM (Excel's 'Unicode Text'), else UTF-8."""
    return "utf-16" if start[:2] in (b"\xff\xfe", b"\xfe\xff") else "utf-8-sig"


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
            while line := fh.readline(MAX_LINE_CHARS):
                if len(line) >= MAX_LINE_CHARS and not line.endswith(("\n", "\r")):
                    raise HistoryFormatError(
                        f"{path}: a line longer than {MAX_LINE_CHARS:,} characters: not an export"
                    )
                yield line
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:  # found as the rows are read
        raise HistoryFormatError(f"{path}: a damaged gzip file ({exc})") from None
