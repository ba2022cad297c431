"""The Coinglass stream carries its key in the URL: a failing connection must not log it."""

from __future__ import annotations

import asyncio
import logging

from perpsignal_common.events.market import LiquidationOrderV1
from perpsignal_connectors.coinglass.stream import CoinglassStream

KEY = "cg-secret-0123456789abcdef"


async def ignore(_: LiquidationOrderV1) -> None:
    return None


async def test_a_misconfigured_stream_url_never_logs_the_key(caplog) -> None:
    """COINGLASS_WS_URL set with an https scheme (a common slip): websockets refuses the URI
    and names it, key included, in its error; the reconnect warning must not repeat it."""
    caplog.set_level(logging.DEBUG)
    stream = CoinglassStream(KEY, ignore, "https://open-ws.coinglass.com/ws-api")
    stop = asyncio.Event()
    task = asyncio.create_task(stream.ws.run(stop))
    await asyncio.sleep(0.2)
    stop.set()
    await task
    failures = [r for r in caplog.records if r.name == "perpsignal_connectors.stream"]
    assert failures, "the failing connection is logged"
    for record in failures:
        assert KEY not in record.getMessage()
        assert KEY not in repr(vars(record)), vars(record)
    assert any("cg-api-key=***" in str(getattr(r, "error", "")) for r in failures)
