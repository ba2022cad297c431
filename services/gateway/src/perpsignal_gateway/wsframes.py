"""Write one WebSocket message to many sockets: frame bytes built once, written below ASGI.

Fanning one signal out through Starlette and uvicorn costs about 100 µs a client: an ASGI
message dict, a `send` coroutine chain, per-client frame building and per-client
permessage-deflate compression of the same text. The payload is identical for every client,
so the hub builds the frame once per distinct framing (plain, or compressed with one set of
deflate parameters) and writes the bytes straight to each client's transport.

That is only done when the connection is served by uvicorn's `websockets-sansio`
implementation and everything needed is exactly as expected; otherwise `DirectWriter.attach`
returns None and the hub keeps using `WebSocket.send_text`. No middleware of the gateway
rewrites outgoing WebSocket messages; one that did would be bypassed by this path.

Compression stays valid without per-client state: each client's compressor is switched to
"no context takeover" (RFC 7692 §7.1.1.1 lets a server reset its context on any message even
when the client accepted takeover), so every message, whether written here or by uvicorn,
is compressed on its own and decodes whatever came before it.
"""

from __future__ import annotations

import asyncio
import struct
import zlib
from typing import Any

from websockets.extensions.permessage_deflate import PerMessageDeflate
from websockets.protocol import State
from websockets.server import ServerProtocol

try:  # uvicorn's sans-I/O implementation; without it every client uses send_text
    from uvicorn.protocols.websockets.websockets_sansio_impl import (
        WebSocketsSansIOProtocol,
    )
except ImportError:  # pragma: no cover - depends on the installed uvicorn
    WebSocketsSansIOProtocol = None  # type: ignore[assignment,misc]

_OP_TEXT = 0x1
_FIN = 0x80
_RSV1 = 0x40

# (window bits, compressor settings) of a deflate client; None for an uncompressed one
Framing = tuple[int, tuple[tuple[str, Any], ...]] | None


def text_frame(payload: bytes, framing: Framing) -> bytes:
    """Return an unmasked, final server TEXT frame carrying `payload` with `framing`."""
    head1 = _FIN | _OP_TEXT
    if framing is not None:
        wbits, settings = framing
        encoder = zlib.compressobj(wbits=-wbits, **dict(settings))
        data = encoder.compress(payload) + encoder.flush(zlib.Z_SYNC_FLUSH)
        payload = data[:-4]  # a sync flush ends with 00 00 ff ff, which RFC 7692 removes
        head1 |= _RSV1
    length = len(payload)
    if length < 126:
        head = struct.pack("!BB", head1, length)
    elif length < 65536:
        head = struct.pack("!BBH", head1, 126, length)
    else:
        head = struct.pack("!BBQ", head1, 127, length)
    return head + payload


class Outgoing:
    """One text message for many clients; each framing's bytes are built on first use."""

    __slots__ = ("_frames", "_payload", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._payload = text.encode()
        self._frames: dict[Framing, bytes] = {}

    def frame(self, framing: Framing) -> bytes:
        """Return the frame bytes for clients with `framing`."""
        data = self._frames.get(framing)
        if data is None:
            data = self._frames[framing] = text_frame(self._payload, framing)
        return data


class DirectWriter:
    """Writes pre-built frames to one client's transport, skipping the ASGI layers."""

    __slots__ = ("_conn", "_proto", "_writable", "framing", "transport", "written")

    def __init__(self, proto: Any, framing: Framing) -> None:
        self.written = 0  # frames written on the fast path (tests check uvicorn still allows it)
        self._proto = proto
        self._conn: ServerProtocol = proto.conn
        self.transport: asyncio.Transport = proto.transport
        self._writable: asyncio.Event = proto.writable
        self.framing = framing

    @classmethod
    def attach(cls, scope: object) -> DirectWriter | None:
        """Return a writer for the accepted socket of `scope`, or None when unsupported.

        Must be called from the task that runs the ASGI app for this connection (the route
        handler): uvicorn runs it in `WebSocketsSansIOProtocol.run_asgi`, whose `self` is the
        protocol; the scope object identifies it as this connection's.
        """
        if WebSocketsSansIOProtocol is None:  # pragma: no cover
            return None
        task = asyncio.current_task()
        frame = getattr(task.get_coro(), "cr_frame", None) if task is not None else None
        proto = frame.f_locals.get("self") if frame is not None else None
        if type(proto) is not WebSocketsSansIOProtocol or proto.scope is not scope:
            return None
        conn = getattr(proto, "conn", None)
        transport = getattr(proto, "transport", None)
        if (
            not isinstance(conn, ServerProtocol)
            or conn.state is not State.OPEN
            or not isinstance(getattr(proto, "writable", None), asyncio.Event)
            or transport is None
        ):
            return None
        framing: Framing = None
        if conn.extensions:
            if len(conn.extensions) != 1 or type(conn.extensions[0]) is not PerMessageDeflate:
                return None
            ext = conn.extensions[0]
            settings = tuple(sorted(ext.compress_settings.items()))
            try:
                zlib.compressobj(wbits=-ext.local_max_window_bits, **dict(settings))
            except (TypeError, ValueError):
                return None
            ext.local_no_context_takeover = True  # every message compressed on its own
            framing = (ext.local_max_window_bits, settings)
        return cls(proto, framing)

    def ready(self) -> bool:
        """True when a frame can be written now: open, not closing, not over high water."""
        proto = self._proto
        return (
            self._writable.is_set()
            and not proto.close_sent
            and not proto.disconnected
            and self._conn.state is State.OPEN
            and not self.transport.is_closing()
        )

    def write(self, frame: bytes) -> None:
        """Hand `frame` to the transport (the kernel, or its buffer if the socket is full)."""
        self.transport.write(frame)
        self.written += 1

    async def wait_closed(self, poll_s: float = 0.05) -> None:
        """Return once the connection is gone (uvicorn exposes a flag, not an event)."""
        while not self._proto.disconnected:  # noqa: ASYNC110 - no event to await
            await asyncio.sleep(poll_s)

    def abort(self) -> None:
        """Drop the connection at once (a client that does not even read its close frame)."""
        self.transport.abort()
