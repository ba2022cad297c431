"""A history file as a `Table`, whatever its format: sniffed from its first bytes (and
name), then read by the delimited, JSON, columnar or archive reader."""

from __future__ import annotations

import gzip
import io
import json
import logging
import zlib
from pathlib import Path

from perpsignal_cli.backtesting.importing.archives import _cap, _capped, _unzip
from perpsignal_cli.backtesting.importing.base import HistoryFormatError, Table
from perpsignal_cli.backtesting.importing.columnar import _ARROW_SUFFIXES, _arrow_table
from perpsignal_cli.backtesting.importing.delimited import _csv_table, _encoding, _text_lines
from perpsignal_cli.backtesting.importing.jsonrows import _json_table

# the importers' one logger, whichever module logs
log = logging.getLogger("perpsignal_cli.backtesting.importers")


def read_table(path: Path) -> Table:
    """Return the rows of a CSV, JSON (gzip too), JSON-lines, feather or parquet file.

    A damaged gzip stream, JSON nested past the parser's depth or a file that cannot be
    opened is a HistoryFormatError naming the file (they were tracebacks).
    """
    try:
        return _read_table(path)
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise HistoryFormatError(f"{path}: a damaged gzip file ({exc})") from None
    except RecursionError:
        raise HistoryFormatError(f"{path}: JSON nested too deep to be rows") from None
    except OSError as exc:  # permission denied, a folder, a vanished file
        raise HistoryFormatError(f"{path}: cannot be read ({exc.strerror or exc})") from None


def _read_table(path: Path) -> Table:
    with path.open("rb") as fh:
        start = fh.read(4096)
    encoding = _encoding(start)
    text_start = start.decode(encoding, errors="ignore").lstrip()[:1]
    packed = start[:2] == b"\x1f\x8b" or start[:4] in (b"PK\x03\x04", b"PAR1", b"FEA1")
    arrow = start[:6] == b"ARROW1" or path.suffix in _ARROW_SUFFIXES
    if not packed and not arrow and encoding != "utf-16" and b"\x00" in start:
        # NUL is valid UTF-8, so such bytes decoded "fine" and were called an empty file
        raise HistoryFormatError(f"{path}: binary data (NUL bytes), not CSV, JSON or Arrow")
    if not packed and not arrow and text_start not in ("[", "{"):  # CSV: read as it goes
        return _csv_table(_text_lines(path, encoding), path)
    suffix = path.suffix
    if start[:2] == b"\x1f\x8b":
        with gzip.open(path, "rb") as gz:
            inner = gz.read(4096)
        inner_text = inner.decode(_encoding(inner), errors="ignore").lstrip()[:1]
        inner_arrow = (
            inner[:6] == b"ARROW1"
            or inner[:4] in (b"PAR1", b"FEA1", b"PK\x03\x04")
            or Path(path.stem).suffix in _ARROW_SUFFIXES
        )
        if not inner_arrow and inner_text not in ("[", "{"):  # a gzipped CSV: read as it goes
            return _csv_table(_text_lines(path, _encoding(inner), gzipped=True), path)
        with gzip.open(path, "rb") as gz:
            raw = _capped(path, gz)
    else:  # read whole: a file past the cap is refused before a byte of it is read
        _cap(path, path.stat().st_size)
        raw = path.read_bytes()
    if raw[:4] == b"PK\x03\x04":  # a zip of one file (data.binance.vision serves them so)
        raw, suffix = _unzip(path, raw)
    if raw[:6] == b"ARROW1" or raw[:4] in (b"PAR1", b"FEA1") or suffix in _ARROW_SUFFIXES:
        return _arrow_table(path, raw)
    _cap(path, len(raw))  # JSON is parsed whole: ~10x its size in Python objects
    text = raw.decode(_encoding(raw))
    head = text.lstrip()[:1]
    if head in ("[", "{"):
        try:
            return _json_table(json.loads(text))
        except json.JSONDecodeError as exc:
            if exc.msg != "Extra data":  # one JSON text, damaged or cut
                cut = exc.pos >= len(text.rstrip()) - 1
                why = "ends mid-way (a cut download? fetch it again)" if cut else "is not JSON"
                raise HistoryFormatError(
                    f"{path}: {why}: {exc.msg} at line {exc.lineno}, column {exc.colno}"
                ) from None
            return _json_table(_json_lines(path, text))
    return _csv_table(io.StringIO(text, newline=""), path)


def _json_lines(path: Path, text: str) -> list[object]:
    """The values of JSON lines; a line that is no JSON is refused naming it, but for the
    file's last one when it has no line end: a cut download's partial row, skipped with a
    warning. The error named line 1 of the bad line itself ('line 1 column 11')."""
    lines = text.splitlines()
    out: list[object] = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError as exc:
            if n == len(lines) and out and not text.endswith(("\n", "\r")):
                log.warning("%s: line %d is cut (the file ends mid-row): skipped", path.name, n)
                break
            raise HistoryFormatError(
                f"{path}: line {n} is not JSON ({exc.msg}, column {exc.colno})"
            ) from None
    return out


def _read(path: Path) -> Table:
    try:
        return read_table(path)
    except HistoryFormatError as exc:
        if str(path) in str(exc):
            raise
        raise HistoryFormatError(f"{path}: {exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HistoryFormatError(f"{path}: not CSV or JSON ({exc})") from exc
