"""A small reader of Arrow IPC files (feather v2), freqtrade's default history format.

pyarrow is not a dependency (a 40 MB wheel for one file format), and a history file is a
flat table of numbers and times, so this reads exactly that: the footer, the schema and each
record batch, for integer, floating-point, boolean, timestamp, date and string columns,
with LZ4-frame or ZSTD body compression (through `cramjam`, already installed by
perpsignal-common). Anything else (dictionaries, nested types, big-endian files) is refused
with the column's name. Layout reference: the Arrow columnar format and its FlatBuffers
schemas (File.fbs, Message.fbs, Schema.fbs).
"""

from __future__ import annotations

import struct
from array import array
from collections.abc import Callable
from typing import Any

MAGIC = b"ARROW1"


class ArrowError(ValueError):
    """The file is not an Arrow IPC file this reader understands."""


class _Table:
    """A FlatBuffers table: fields by vtable slot."""

    __slots__ = ("buf", "pos", "vt", "vt_len")

    def __init__(self, buf: bytes, pos: int) -> None:
        self.buf, self.pos = buf, pos
        self.vt = pos - struct.unpack_from("<i", buf, pos)[0]
        self.vt_len = struct.unpack_from("<H", buf, self.vt)[0]

    def _at(self, slot: int) -> int | None:
        off = 4 + 2 * slot
        if off >= self.vt_len:
            return None
        rel = struct.unpack_from("<H", self.buf, self.vt + off)[0]
        return None if rel == 0 else self.pos + rel

    def scalar(self, slot: int, fmt: str, default: Any = 0) -> Any:
        at = self._at(slot)
        return default if at is None else struct.unpack_from("<" + fmt, self.buf, at)[0]

    def _ref(self, slot: int) -> int | None:
        at = self._at(slot)
        return None if at is None else at + struct.unpack_from("<I", self.buf, at)[0]

    def table(self, slot: int) -> _Table | None:
        ref = self._ref(slot)
        return None if ref is None else _Table(self.buf, ref)

    def string(self, slot: int) -> str | None:
        ref = self._ref(slot)
        if ref is None:
            return None
        n = struct.unpack_from("<I", self.buf, ref)[0]
        return self.buf[ref + 4 : ref + 4 + n].decode()

    def tables(self, slot: int) -> list[_Table]:
        ref = self._ref(slot)
        if ref is None:
            return []
        n = struct.unpack_from("<I", self.buf, ref)[0]
        out = []
        for i in range(n):
            at = ref + 4 + 4 * i
            out.append(_Table(self.buf, at + struct.unpack_from("<I", self.buf, at)[0]))
        return out

    def structs(self, slot: int, fmt: str) -> list[tuple[Any, ...]]:
        ref = self._ref(slot)
        if ref is None:
            return []
        n = struct.unpack_from("<I", self.buf, ref)[0]
        size = struct.calcsize("<" + fmt)
        return [struct.unpack_from("<" + fmt, self.buf, ref + 4 + size * i) for i in range(n)]


def _root(buf: bytes) -> _Table:
    return _Table(buf, struct.unpack_from("<I", buf, 0)[0])


# Schema.fbs Type union members this reader decodes
_INT, _FLOAT, _UTF8, _BOOL, _DATE, _TIMESTAMP, _LARGE_UTF8 = 2, 3, 5, 6, 8, 10, 20
_TS_TO_MS = {0: 1000.0, 1: 1.0, 2: 1e-3, 3: 1e-6}  # TimeUnit -> factor to milliseconds


Reader = Callable[[list[bytes], int], list[Any]]


def _column_kind(field: _Table) -> tuple[str, int, Reader]:
    """Return (name, buffers per batch, reader) of a schema field."""
    name = field.string(0) or ""
    if field.table(4) is not None:
        raise ArrowError(f"column {name!r}: dictionary-encoded columns are not supported")
    type_id = field.scalar(2, "B")
    t = field.table(3)
    if type_id == _INT and t is not None:
        bits, signed = t.scalar(0, "i"), t.scalar(1, "?", False)
        code = {8: "b", 16: "h", 32: "i", 64: "q"}[bits]
        return name, 2, _fixed(code if signed else code.upper())
    if type_id == _FLOAT and t is not None:
        precision = t.scalar(0, "h")
        if precision not in (1, 2):
            raise ArrowError(f"column {name!r}: half-precision floats are not supported")
        return name, 2, _fixed("f" if precision == 1 else "d")
    if type_id == _TIMESTAMP and t is not None:
        factor = _TS_TO_MS[t.scalar(0, "h")]
        ints = _fixed("q")
        return (
            name,
            2,
            lambda bufs, n: [None if v is None else round(v * factor) for v in ints(bufs, n)],
        )
    if type_id == _DATE and t is not None:
        days = t.scalar(0, "h") == 0  # DateUnit DAY: int32 days, MILLISECOND: int64 ms
        ints = _fixed("i" if days else "q")
        return (
            name,
            2,
            lambda bufs, n: [
                None if v is None else v * 86_400_000 if days else v for v in ints(bufs, n)
            ],
        )
    if type_id in (_UTF8, _LARGE_UTF8):
        return name, 3, _strings("q" if type_id == _LARGE_UTF8 else "i")
    if type_id == _BOOL:
        return name, 2, _bools
    raise ArrowError(f"column {name!r}: Arrow type {type_id} is not supported")


def _masked(values: list[Any], valid: list[bool] | None) -> list[Any]:
    if valid is None:
        return values
    return [v if ok else None for v, ok in zip(values, valid, strict=True)]


def _valid(bufs: list[bytes], n: int) -> list[bool] | None:
    bitmap = bufs[0]
    if not bitmap:
        return None
    return [bool(bitmap[i >> 3] & (1 << (i & 7))) for i in range(n)]


def _fixed(code: str) -> Reader:
    def read(bufs: list[bytes], n: int) -> list[Any]:
        values = array(code)
        values.frombytes(bufs[1][: n * values.itemsize])
        valid = _valid(bufs, n)
        out = values.tolist()
        return _masked(out, valid)

    return read


def _strings(code: str) -> Reader:
    def read(bufs: list[bytes], n: int) -> list[Any]:
        offsets = array(code)
        offsets.frombytes(bufs[1][: (n + 1) * offsets.itemsize])
        data, valid = bufs[2], _valid(bufs, n)
        out = [data[offsets[i] : offsets[i + 1]].decode() for i in range(n)]
        return _masked(out, valid)

    return read


def _bools(bufs: list[bytes], n: int) -> list[Any]:
    bits, valid = bufs[1], _valid(bufs, n)
    out = [bool(bits[i >> 3] & (1 << (i & 7))) for i in range(n)]
    return _masked(out, valid)


def _decompress(codec: int | None, raw: bytes) -> bytes:
    if codec is None or not raw:
        return raw
    (length,) = struct.unpack_from("<q", raw, 0)
    if length == -1:
        return raw[8:]
    import cramjam

    if codec == 0:
        return bytes(cramjam.lz4.decompress(raw[8:]))
    if codec == 1:
        return bytes(cramjam.zstd.decompress(raw[8:]))
    raise ArrowError(f"body compression codec {codec} is not supported")


def read_arrow(data: bytes) -> tuple[list[str], list[list[Any]]]:
    """Return (column names, columns) of an Arrow IPC file."""
    if data[:6] != MAGIC or data[-6:] != MAGIC:
        raise ArrowError("not an Arrow IPC file (no ARROW1 magic at both ends)")
    (footer_len,) = struct.unpack_from("<i", data, len(data) - 10)
    footer = _root(data[len(data) - 10 - footer_len : len(data) - 10])
    schema = footer.table(1)
    if schema is None:
        raise ArrowError("the footer has no schema")
    if schema.scalar(0, "h") != 0:
        raise ArrowError("big-endian Arrow files are not supported")
    kinds = [_column_kind(f) for f in schema.tables(1)]
    names = [name for name, _, _ in kinds]
    columns: list[list[Any]] = [[] for _ in kinds]
    for offset, meta_len, _pad, body_len in footer.structs(3, "qiiq"):
        start = offset + 8 if data[offset : offset + 4] == b"\xff\xff\xff\xff" else offset + 4
        message = _root(data[start : offset + meta_len])
        if message.scalar(1, "B") != 3:  # MessageHeader.RecordBatch
            raise ArrowError("a record-batch block does not hold a record batch")
        batch = message.table(2)
        if batch is None:
            continue
        body = data[offset + meta_len : offset + meta_len + body_len]
        compression = batch.table(3)
        codec = None if compression is None else compression.scalar(0, "b")
        nodes = batch.structs(1, "qq")
        buffers = [_decompress(codec, body[o : o + n]) for o, n in batch.structs(2, "qq")]
        b = 0
        for i, (_, count, read) in enumerate(kinds):
            length, nulls = nodes[i]
            bufs = buffers[b : b + count]
            if nulls == 0:
                bufs = [b"", *bufs[1:]]
            columns[i] += read(bufs, length)
            b += count
    return names, columns
