"""Coinglass `liquidationOrders` WebSocket: every exchange's liquidations, live.

Docs (reference/websocket): connect to `wss://open-ws.coinglass.com/ws-api?cg-api-key=KEY`,
send `{"method":"subscribe","channels":["liquidationOrders"]}`, and send the text `ping`
every 20 s (the server answers `pong` and drops silent clients).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from urllib.parse import urlencode

import orjson
from pydantic import ValidationError

from perpsignal_common.events.market import LiquidationOrderV1
from perpsignal_connectors.coinglass import constants as c
from perpsignal_connectors.coinglass.parsing import parse_ws_liquidation
from perpsignal_connectors.coinglass.schemas import WS_LIQUIDATION, WS_SHELL
from perpsignal_connectors.loglimit import LogLimit
from perpsignal_connectors.metrics import STREAM_MESSAGES
from perpsignal_connectors.redact import redact, remember
from perpsignal_connectors.stream import WsStream

log = logging.getLogger(__name__)
SUBSCRIBE = orjson.dumps({"method": "subscribe", "channels": ["liquidationOrders"]}).decode()


class CoinglassStream:
    """Liquidation orders of every exchange from Coinglass."""

    def __init__(
        self,
        api_key: str,
        on_liquidation: Callable[[LiquidationOrderV1], Awaitable[None]],
        ws_url: str = c.WS_URL,
        *,
        ping_interval_s: float = c.WS_PING_INTERVAL_S,
    ) -> None:
        self._on_liquidation = on_liquidation
        remember(api_key)
        self._malformed = LogLimit()  # one warning a minute per kind, not one per message
        sep = "&" if "?" in ws_url else "?"
        self.ws = WsStream(
            c.VENDOR,
            "liquidationOrders",
            f"{ws_url}{sep}{urlencode({'cg-api-key': api_key})}",
            self._handle,
            subscribe=lambda: [SUBSCRIBE],
            app_ping=(ping_interval_s, "ping"),
            ping_interval_s=None,
            idle_timeout_s=3 * ping_interval_s,
        )

    async def _handle(self, raw: str | bytes) -> None:
        if raw in ("pong", b"pong"):
            return
        try:
            msg = WS_SHELL.validate_json(raw)
        except ValidationError as exc:
            STREAM_MESSAGES.labels(c.VENDOR, "liquidationOrders", "malformed").inc()
            level, quiet = self._malformed.level("message")
            log.log(
                level,
                "malformed stream message; skipped",
                extra={
                    # the errors quote the message: a key the vendor echoed is masked
                    "vendor": c.VENDOR,
                    "error": redact(str(exc.errors()[:2]))[:300],
                    "quiet_before": quiet,
                },
            )
            return
        if msg.channel != "liquidationOrders":
            return
        STREAM_MESSAGES.labels(c.VENDOR, "liquidationOrders", "ok").inc()
        for row in msg.data:
            try:
                event = parse_ws_liquidation(WS_LIQUIDATION.validate_python(row))
            except (ValueError, OverflowError, OSError) as exc:
                # one row of the wrong shape, one the contract refuses (or a time beyond year
                # 9999) costs only itself, not the rest of its message nor the connection
                STREAM_MESSAGES.labels(c.VENDOR, "liquidationOrders", "malformed").inc()
                error = str(exc.errors()[:2]) if isinstance(exc, ValidationError) else repr(exc)
                level, quiet = self._malformed.level("row")
                log.log(
                    level,
                    "liquidation refused; skipped",
                    extra={
                        "vendor": c.VENDOR,
                        "symbol": str(row.get("symbol") if isinstance(row, dict) else "?")[:64],
                        "error": redact(error)[:300],
                        "quiet_before": quiet,
                    },
                )
                continue
            if event is not None:
                await self._on_liquidation(event)
