"""A minimal Arrow IPC (feather v2) writer for tests: freqtrade's layout of a history file.

Writes what freqtrade's `to_feather` writes for OHLCV data: a `date` timestamp column (ms,
UTC) and float64 columns, optionally LZ4-frame compressed, with the footer the reader uses.
FlatBuffers objects are laid out parent first, children after, so every offset points
forward as the format requires. pyarrow is not installed; the reader was also checked
against freqtrade's own feather test files.
"""

from __future__ import annotations

import struct
from array import array
from dataclasses import dataclass, field
from typing import Any

import cramjam


@dataclass
class T:
    """A FlatBuffers table: slot -> (struct format, value) or a child object."""

    fields: dict[int, Any] = field(default_factory=dict)


@dataclass
class S:
    """A string."""

    text: str


@dataclass
class TV:
    """A vector of tables."""

    items: list[T]


@dataclass
class SV:
    """A vector of structs."""

    fmt: str
    items: list[tuple[Any, ...]]


class _Builder:
    def __init__(self) -> None:
        self.buf = bytearray(b"\x00\x00\x00\x00")  # root offset, patched by finish()

    def _patch(self, at: int, target: int) -> None:
        struct.pack_into("<I", self.buf, at, target - at)

    def write(self, obj: Any) -> int:
        if isinstance(obj, S):
            pos = len(self.buf)
            data = obj.text.encode()
            self.buf += struct.pack("<I", len(data)) + data + b"\x00"
            return pos
        if isinstance(obj, SV):
            pos = len(self.buf)
            self.buf += struct.pack("<I", len(obj.items))
            for item in obj.items:
                self.buf += struct.pack("<" + obj.fmt, *item)
            return pos
        if isinstance(obj, TV):
            pos = len(self.buf)
            self.buf += struct.pack("<I", len(obj.items))
            slots = [len(self.buf) + 4 * i for i in range(len(obj.items))]
            self.buf += b"\x00" * 4 * len(obj.items)
            for at, item in zip(slots, obj.items, strict=True):
                self._patch(at, self.write(item))
            return pos
        assert isinstance(obj, T)
        n = max(obj.fields, default=-1) + 1
        vt = len(self.buf)
        self.buf += b"\x00" * (4 + 2 * n)
        pos = len(self.buf)
        self.buf += struct.pack("<i", pos - vt)
        offsets, children = [0] * n, []
        for slot, value in sorted(obj.fields.items()):
            offsets[slot] = len(self.buf) - pos
            if isinstance(value, tuple):
                self.buf += struct.pack("<" + value[0], value[1])
            else:
                children.append((len(self.buf), value))
                self.buf += b"\x00" * 4
        struct.pack_into(f"<HH{n}H", self.buf, vt, 4 + 2 * n, len(self.buf) - pos, *offsets)
        for at, child in children:
            self._patch(at, self.write(child))
        return pos

    def finish(self, root: T) -> bytes:
        self._patch(0, self.write(root))
        while len(self.buf) % 8:
            self.buf += b"\x00"
        return bytes(self.buf)


def _fb(root: T) -> bytes:
    return _Builder().finish(root)


def write_feather(columns: dict[str, list[Any]], *, lz4: bool = False) -> bytes:
    """Return an Arrow IPC file of a `date` (epoch ms) column plus float64 columns."""
    n = len(next(iter(columns.values())))
    fields, nodes, buffers, body = [], [], [], bytearray()

    def add(data: bytes) -> None:
        if lz4 and data:
            data = struct.pack("<q", len(data)) + bytes(cramjam.lz4.compress(data))
        buffers.append((len(body), len(data)))
        body.extend(data)
        while len(body) % 8:
            body.append(0)

    for name, values in columns.items():
        nulls = [i for i, v in enumerate(values) if v is None]
        if name == "date":
            kind = T({0: ("h", 1), 1: S("UTC")})  # Timestamp(MILLISECOND, "UTC")
            fields.append(T({0: S(name), 1: ("?", True), 2: ("B", 10), 3: kind}))
            data = array("q", values).tobytes()
        else:
            fields.append(T({0: S(name), 1: ("?", True), 2: ("B", 3), 3: T({0: ("h", 2)})}))
            data = array("d", [0.0 if v is None else v for v in values]).tobytes()
        bitmap = bytearray((n + 7) // 8)
        for i in range(n):
            if i not in nulls:
                bitmap[i >> 3] |= 1 << (i & 7)
        add(bytes(bitmap) if nulls else b"")
        add(data)
        nodes.append((n, len(nulls)))
    batch = T({0: ("q", n), 1: SV("qq", nodes), 2: SV("qq", buffers)})
    if lz4:
        batch.fields[3] = T({0: ("b", 0)})  # BodyCompression(LZ4_FRAME)
    meta = _fb(T({0: ("h", 4), 1: ("B", 3), 2: batch, 3: ("q", len(body))}))
    out = bytearray(b"ARROW1\x00\x00")
    offset = len(out)
    out += struct.pack("<Ii", 0xFFFFFFFF, len(meta)) + meta + body
    schema = T({0: ("h", 0), 1: TV(fields)})
    footer = _fb(
        T({0: ("h", 4), 1: schema, 3: SV("qiiq", [(offset, 8 + len(meta), 0, len(body))])})
    )
    out += footer + struct.pack("<i", len(footer)) + b"ARROW1"
    return bytes(out)
