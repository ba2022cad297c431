"""The gateway sends BINANCE_API_KEY on its Binance pass-through calls, and never logs it.

The key registry named Binance `binance_usdm` while the gateway's catalogue is `binance`: the
key was read (compose passes it) but never sent, so keyed calls ran on the anonymous limits.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest

from perpsignal_connectors.catalog import load_catalogs
from perpsignal_gateway.main import vendor_env_from_os

KEY = "kX9mBinanceKeyForTheFakeServer0123456789"


@pytest.fixture
async def fake_binance() -> AsyncIterator[tuple[str, list[dict[str, str]], list[bytes]]]:
    """A local HTTP server recording each request's headers; answers `bodies` in turn."""
    seen: list[dict[str, str]] = []
    bodies: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode().split("\r\n")[1:]
        seen.append({k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines if ln)})
        status, body = (b"200 OK", b"{}") if not bodies else (b"401 Unauthorized", bodies.pop(0))
        writer.write(b"HTTP/1.1 " + status + b"\r\ncontent-type: application/json\r\n")
        writer.write(b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body) + body)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", seen, bodies
    finally:
        server.close()
        await server.wait_closed()


def test_the_binance_catalogue_reads_binance_api_key() -> None:
    binance = next(c for c in load_catalogs() if c.name == "binance")
    assert binance.key_env == "BINANCE_API_KEY"


async def test_a_binance_call_carries_the_key_and_no_log_shows_it(
    make_client,
    fake_binance,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    base, seen, refusals = fake_binance
    monkeypatch.setenv("BINANCE_API_KEY", KEY)  # as compose passes it
    monkeypatch.setenv("BINANCE_FAPI_BASE_URL", base)
    caplog.set_level(logging.DEBUG)
    _, client = await make_client(vendor_env=vendor_env_from_os())
    r = await client.post("/invoke", json={"operation": "binance.ping"})
    assert r.status_code == 200, r.text
    assert seen[-1].get("x-mbx-apikey") == KEY
    # a refusal that echoes the key: the answer names the setting, not the key
    refusals.append(b'{"code": -2015, "msg": "Invalid API-key ' + KEY.encode() + b'"}')
    r = await client.post("/invoke", json={"operation": "binance.time"})
    assert r.status_code == 502, r.text
    assert "BINANCE_API_KEY" in r.text and KEY not in r.text
    logged = "\n".join(f"{rec.getMessage()} {rec.__dict__}" for rec in caplog.records)
    assert caplog.records and KEY not in logged
