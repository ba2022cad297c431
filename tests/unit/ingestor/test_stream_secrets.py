"""Vendor keys never reach a log line or an event.

The Coinglass stream carries its key in the URL: a failing connection must not log it. The
REST clients carry theirs in a header: a request httpx refuses must not log it either.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from perpsignal_common.errors import PermanentError
from perpsignal_common.events.market import LiquidationOrderV1
from perpsignal_common.events.registry import encode
from perpsignal_common.events.status import SourceStatusV1
from perpsignal_connectors.coinapi.http import CoinApiHttp
from perpsignal_connectors.coinglass.http import CoinglassHttp
from perpsignal_connectors.coinglass.stream import CoinglassStream
from perpsignal_connectors.lunarcrush.http import LunarCrushHttp
from perpsignal_ingestor.publisher import Publisher
from perpsignal_ingestor.scheduler import SourceLoop
from perpsignal_ingestor.sources.vendors import CoinApiPoller, CoinglassPoller
from perpsignal_ingestor.universe import Universe
from tests.fakes.vendors import FakeVendors, Fault
from tests.helpers import eventually

KEY = "cg-secret-0123456789abcdef"


async def ignore(_: LiquidationOrderV1) -> None:
    return None


async def run_until_down(name: str, poll, producer, client) -> SourceLoop:
    """Run source `name`'s loop on `poll` until it reports the source down, then close
    `client`; return the loop (its `reason`)."""
    loop = SourceLoop(name, 0.05, poll, Publisher(producer), min_backoff_s=0.01)
    stop = asyncio.Event()
    task = asyncio.create_task(loop.run(stop))
    try:
        await eventually(lambda: loop.state == "down", timeout=10, what="source down")
    finally:
        stop.set()
        await task
        await client.aclose()
    return loop


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


@pytest.mark.parametrize(
    "key",
    [
        KEY + "\n",  # a key read from a file or a secret written by `echo`
        KEY + " ",
        KEY.replace("-", "\x00", 1),
    ],
)
async def test_a_key_with_a_stray_newline_is_never_logged_nor_published(
    fake: FakeVendors, producer, caplog, key: str
) -> None:
    """A key with a character HTTP forbids in a header: httpx refuses the request and names
    the header value, key included; that error was logged by every poll and published as
    the source's status reason on Kafka (shown by the gateway)."""
    caplog.set_level(logging.DEBUG)
    client = CoinglassHttp(key, fake.url("coinglass"))
    poller = CoinglassPoller(client, Universe(["BTCUSDT"]), "1h", max_coins=1)
    loop = await run_until_down("coinglass", poller.poll, producer, client)
    secret = KEY[3:]  # the key's distinctive part, whatever escaping an error applies
    status = [e for e in producer.events if isinstance(e, SourceStatusV1)]
    assert status and all(secret not in encode(e).decode() for e in status)
    # ours (httpx and httpcore log at WARNING at least: perpsignal_common.logging.NOISY)
    records = [r for r in caplog.records if r.name.startswith("perpsignal")]
    assert records
    for record in records:
        assert secret not in record.getMessage()
        assert secret not in repr(vars(record)), vars(record)
    assert loop.reason is not None and "API key" in loop.reason  # says what to check
    # refused locally, never sent: nothing to retry
    assert fake.requests[("coinglass", "/api/futures/open-interest/aggregated-history")] == 0


ECHOED = "ca-echoed-key-5f2b9c0e7d41"


@pytest.mark.parametrize(
    ("vendor", "status", "padding"),
    [
        ("coinapi", 401, 0),
        ("coinapi", 401, 155),  # the key across the 200-character cut of the snippet
        ("lunarcrush", 400, 0),
        ("coinglass", 200, 0),  # HTTP 200, the error in the envelope's `msg`
    ],
)
async def test_a_key_the_vendor_echoes_in_its_error_is_masked(
    fake: FakeVendors, vendor: str, status: int, padding: int
) -> None:
    """ "Invalid API key: <key>" in a vendor's error body became the error's message, which
    is logged and published as the source's status reason; cut at 200 characters, it could
    also leave half the key. Every configured key is masked before the text is cut."""
    clients = {
        "coinapi": lambda: CoinApiHttp(ECHOED, fake.url("coinapi")),
        "lunarcrush": lambda: LunarCrushHttp(ECHOED, fake.url("lunarcrush")),
        "coinglass": lambda: CoinglassHttp(ECHOED, fake.url("coinglass")),
    }
    calls = {
        "coinapi": lambda c: c.fetch_latest_trades("BINANCEFTS_PERP_BTC_USDT"),
        "lunarcrush": lambda c: c.fetch_coins_list(),
        "coinglass": lambda c: c.fetch_oi_ohlc("BTC", "4h"),
    }
    client = clients[vendor]()
    fake.inject(vendor, "/", Fault("echo_key", status=status, padding=padding))
    with pytest.raises(PermanentError) as refused:
        await calls[vendor](client)
    await client.aclose()
    message = str(refused.value)
    assert "Invalid API key: " in message  # the vendor's reason is still there...
    assert ECHOED[:8] not in message and ECHOED[-8:] not in message  # ...not the key
    assert "***" in message


async def test_an_echoed_key_is_neither_logged_nor_published_as_the_status(
    fake: FakeVendors, producer, caplog
) -> None:
    """The CoinAPI source failing on a 401 that quotes the key: the `source.status` reason
    says it is a 401, without the key, and no log line holds it."""
    caplog.set_level(logging.DEBUG)
    client = CoinApiHttp(ECHOED, fake.url("coinapi"))
    poller = CoinApiPoller(client, Universe(["BTCUSDT", "ETHUSDT"]), 250_000.0)
    fake.inject("coinapi", "/v1/trades", Fault("echo_key", status=401, times=None))
    loop = await run_until_down("coinapi", poller.poll, producer, client)
    status = [e for e in producer.events if isinstance(e, SourceStatusV1)]
    assert status and all(ECHOED not in encode(e).decode() for e in status)
    assert loop.reason is not None and "HTTP 401" in loop.reason and "***" in loop.reason
    records = [r for r in caplog.records if r.name.startswith("perpsignal")]
    assert records
    for record in records:
        assert ECHOED not in record.getMessage()
        assert ECHOED not in repr(vars(record)), vars(record)
