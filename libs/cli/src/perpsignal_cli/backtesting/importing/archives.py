"""Files read whole and packed ones (gzip, zip): what they may unpack to is capped, so a
decompression bomb is one clear error, not all of the machine's memory."""

from __future__ import annotations

import gzip
import io
import zipfile
from pathlib import Path
from typing import IO

from perpsignal_cli.backtesting.importing.base import HistoryFormatError

# what a packed (gzip, zip) JSON or Arrow file may unpack to: they are read whole, so a
# decompression bomb (kilobytes that unpack to terabytes) would take every byte of memory
MAX_UNPACKED_BYTES = 256 << 20  # API dumps are megabytes; a symbol-year of 1m as JSON ~40 MB


def _cap(path: Path, size: int) -> None:
    """Refuse a file read whole (JSON, Arrow, parquet; packed too) past MAX_UNPACKED_BYTES."""
    if size > MAX_UNPACKED_BYTES:
        raise HistoryFormatError(
            f"{path}: more than {MAX_UNPACKED_BYTES >> 20} MiB to read whole (JSON, and any "
            "packed file but a gzipped CSV, is read whole; a CSV is read as it goes): not read"
        )


def _capped(path: Path, fh: IO[bytes] | gzip.GzipFile) -> bytes:
    """Read a decompressing stream whole, refusing it past MAX_UNPACKED_BYTES."""
    out = bytearray()
    while chunk := fh.read(1 << 20):
        out += chunk
        _cap(path, len(out))
    return bytes(out)


def _unzip(path: Path, raw: bytes) -> tuple[bytes, str]:
    """Return the one data file of a zip archive and its suffix."""
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as zf:
            members = [
                m
                for m in zf.infolist()
                if not m.is_dir() and not m.filename.startswith(("__MACOSX/", "."))
            ]
            if len(members) != 1:
                names = ", ".join(m.filename for m in members) or "nothing"
                raise HistoryFormatError(f"{path}: a zip of one export expected, it holds {names}")
            with zf.open(members[0]) as member:
                return _capped(path, member), Path(members[0].filename).suffix
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError) as exc:
        raise HistoryFormatError(f"{path}: a damaged zip file ({exc})") from None
