"""Binance USD-M market streams: `!forceOrder@arr` liquidations and closed klines.

Docs: websocket-market-streams (Live-Subscribing-Unsubscribing-to-streams,
All-Market-Liquidation-Order-Streams, Kline-Candlestick-Streams). The server pings every
3 minutes and drops a connection after 24 h; `WsStream` answers pings, reconnects with
backoff and sends the SUBSCRIBE again on every new connection. `!forceOrder@arr` is a
snapshot stream: at most one liquidation per symbol per second is pushed.

The kline streams follow the tracked symbols on the open connection (`follow_klines`):
Binance's live SUBSCRIBE/UNSUBSCRIBE for what was added and removed, within its limit of
10 messages a second (`WS_MIN_SEND_INTERVAL_S`), instead of at the next reconnect (up to
24 h later). A refused live request is logged; its streams come with the next connection.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

import orjson
from pydantic import ValidationError

from perpsignal_common.events.market import CandleClosedV1, LiquidationOrderV1
from perpsignal_connectors.binance_usdm import constants as c
from perpsignal_connectors.binance_usdm import schemas as s
from perpsignal_connectors.binance_usdm.parsing import parse_force_order, parse_kline_stream
from perpsignal_connectors.loglimit import LogLimit
from perpsignal_connectors.metrics import STREAM_MESSAGES
from perpsignal_connectors.redact import redact
from perpsignal_connectors.stream import WsStream

log = logging.getLogger(__name__)


LIQUIDATIONS_REQUEST, KLINES_REQUEST, KLINES_ADDED, KLINES_REMOVED = 1, 2, 3, 4
REQUESTS = {
    LIQUIDATIONS_REQUEST: "liquidations subscription",
    KLINES_REQUEST: "klines subscription",
    KLINES_ADDED: "subscription of newly tracked klines",
    KLINES_REMOVED: "unsubscription of untracked klines",
}


def subscribe_message(
    streams: Sequence[str], request_id: int = 1, method: str = "SUBSCRIBE"
) -> str:
    """Return the SUBSCRIBE (or UNSUBSCRIBE) request for `streams`."""
    return orjson.dumps({"method": method, "params": list(streams), "id": request_id}).decode()


class BinanceUsdmStream:
    """Liquidations (and optionally closed klines) from the Binance USD-M market stream."""

    def __init__(
        self,
        ws_url: str,
        on_liquidation: Callable[[LiquidationOrderV1], Awaitable[None]],
        *,
        on_candle: Callable[[CandleClosedV1], Awaitable[None]] | None = None,
        kline_streams: Callable[[], Sequence[str]] = tuple,
        on_connect: Callable[[], Awaitable[None]] | None = None,
        idle_timeout_s: float | None = 300.0,
    ) -> None:
        self._on_liquidation = on_liquidation
        self._on_candle = on_candle
        self._kline_streams = kline_streams
        self._klines: set[str] = set()  # kline streams asked for on the open connection
        self._malformed = LogLimit()
        self.ws = WsStream(
            c.VENDOR,
            "market",
            ws_url.rstrip("/") + "/ws",
            self._handle,
            subscribe=self._subscriptions,
            on_connect=on_connect,
            idle_timeout_s=idle_timeout_s,
            min_send_interval_s=c.WS_MIN_SEND_INTERVAL_S,
        )

    def _subscriptions(self) -> list[str]:
        # two requests: Binance refuses a SUBSCRIBE as a whole (past its streams cap, or a
        # stream name it does not know), and the klines must never cost the liquidations
        out = [subscribe_message([c.LIQUIDATION_STREAM], LIQUIDATIONS_REQUEST)]
        klines = list(self._kline_streams())
        self._klines = set(klines)
        if klines:
            out.append(subscribe_message(klines, KLINES_REQUEST))
        return out

    async def follow_klines(self) -> tuple[int, int]:
        """Bring the open connection's kline streams to `kline_streams()`: UNSUBSCRIBE the
        ones no longer wanted, SUBSCRIBE the new ones. Returns (added, removed); nothing is
        sent without an open connection (the next one subscribes what is wanted then)."""
        if not self.ws.connected:
            return 0, 0
        connection = self.ws.connections
        wanted = set(self._kline_streams())
        gone, new = sorted(self._klines - wanted), sorted(wanted - self._klines)
        if gone:
            message = subscribe_message(gone, KLINES_REMOVED, "UNSUBSCRIBE")
            if not await self.ws.send(message, connection):
                return 0, 0
            self._klines.difference_update(gone)
        if new:
            if not await self.ws.send(subscribe_message(new, KLINES_ADDED), connection):
                return 0, len(gone)
            self._klines.update(new)
        return len(new), len(gone)

    async def _handle(self, raw: str | bytes) -> None:
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            STREAM_MESSAGES.labels(c.VENDOR, "market", "malformed").inc()
            level, quiet = self._malformed.level("not json")
            log.log(
                level,
                "malformed stream message",
                extra={"vendor": c.VENDOR, "size": len(raw), "quiet_before": quiet},
            )
            return
        if isinstance(data, dict) and isinstance(data.get("stream"), str) and "data" in data:
            # the combined-stream form, `{"stream": "<name>", "data": <event>}` (a /stream
            # URL, or a connection with the `combined` property set): read as an ack without
            # an event type, every liquidation and candle was dropped without a word
            data = data["data"]
        if not isinstance(data, dict) or "e" not in data:
            if isinstance(data, dict) and ("error" in data or "code" in data):
                # a refused request: nothing of it will ever arrive on this connection
                STREAM_MESSAGES.labels(c.VENDOR, "market", "error").inc()
                request_id = data.get("id")
                what = (
                    REQUESTS.get(request_id, "request")
                    if isinstance(request_id, int)
                    else "request"
                )
                log.warning(
                    f"stream {what} refused by the vendor",
                    extra={
                        "vendor": c.VENDOR,
                        "error": redact(repr(data.get("error", data)))[:300],
                    },
                )
            return  # subscription acks ({"result": null, "id": 1})
        try:
            kind = data["e"]
            if kind == "forceOrder":
                event: LiquidationOrderV1 | CandleClosedV1 | None = parse_force_order(
                    s.FORCE_ORDER.validate_python(data)
                )
            elif kind == "kline" and self._on_candle is not None:
                event = parse_kline_stream(s.KLINE_STREAM.validate_python(data))
            else:
                return
        except (ValueError, OverflowError, OSError) as exc:
            # a ValidationError (wrong shape, a value the contract refuses) or a time Python
            # cannot hold (beyond year 9999): this message only, the connection stays up
            STREAM_MESSAGES.labels(c.VENDOR, "market", "malformed").inc()
            error = str(exc.errors()[:2]) if isinstance(exc, ValidationError) else repr(exc)
            # one warning a minute per event type: a changed format fails every message
            level, quiet = self._malformed.level(str(data.get("e"))[:32])
            log.log(
                level,
                "malformed stream message; skipped",
                extra={
                    "vendor": c.VENDOR,
                    "event": str(data.get("e"))[:32],
                    "error": redact(error)[:300],
                    "quiet_before": quiet,
                },
            )
            return
        STREAM_MESSAGES.labels(c.VENDOR, "market", "ok").inc()
        if isinstance(event, LiquidationOrderV1):
            await self._on_liquidation(event)
        elif event is not None and self._on_candle is not None:
            await self._on_candle(event)
