"""Columnar files (feather / Arrow IPC v1 and v2, parquet), read with pyarrow within the cap
on files read whole."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from perpsignal_cli.backtesting.importing.archives import _cap
from perpsignal_cli.backtesting.importing.base import HistoryFormatError, Table

_ARROW_SUFFIXES = (".feather", ".arrow", ".parquet")


def _arrow_table(path: Path, raw: bytes) -> Table:
    """Read a feather (Arrow IPC, v1 or v2) or parquet file with pyarrow.

    Timestamp and date columns become epoch ms (freqtrade's `date` is timestamp[ms, UTC]),
    so times are exact whatever the unit; other columns become Python values.
    """
    import pyarrow as pa  # imported here: only these files need it (~80 ms)
    import pyarrow.feather as feather
    import pyarrow.parquet as parquet

    is_parquet = raw[:4] == b"PAR1" or (raw[:6] != b"ARROW1" and path.suffix == ".parquet")
    what = "Parquet" if is_parquet else "Arrow"
    try:
        source = pa.BufferReader(raw)  # already gunzipped when the file was compressed
        if is_parquet:
            # compressed and run-length encoded pages: what they decode to is bounded by the
            # footer's row and column counts (8 bytes a value at least), checked before any
            # is read (a few KiB of one repeated bar can decode to gigabytes)
            pf = parquet.ParquetFile(source)
            meta = pf.metadata
            encoded = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
            _cap(path, max(encoded, meta.num_rows * meta.num_columns * 8))
            tbl = pf.read()
        elif raw[:6] == b"ARROW1":  # Arrow IPC (feather v2), its batches maybe LZ4/ZSTD
            reader = pa.ipc.open_file(source)
            batches, size = [], 0
            for i in range(reader.num_record_batches):
                batches.append(reader.get_batch(i))
                size += batches[-1].nbytes
                _cap(path, size)
            tbl = pa.Table.from_batches(batches, schema=reader.schema)
        else:  # feather v1: never compressed, so its columns are about the file's size
            tbl = feather.read_table(source)
            _cap(path, tbl.nbytes)
        cols = [_epoch_ms(col).to_pylist() for col in tbl.columns]
    except (pa.ArrowException, ValueError) as exc:
        raise HistoryFormatError(f"{path}: not a readable {what.lower()} file ({exc})") from None
    return Table(list(tbl.column_names), list(zip(*cols, strict=True)), what)


def _epoch_ms(col: Any) -> Any:
    """Return a timestamp or date column as int64 epoch ms (sub-ms truncated), else as is."""
    import pyarrow as pa

    if not (pa.types.is_timestamp(col.type) or pa.types.is_date(col.type)):
        return col
    at_ms = col.cast(pa.timestamp("ms", getattr(col.type, "tz", None)), safe=False)
    return at_ms.cast(pa.int64())
