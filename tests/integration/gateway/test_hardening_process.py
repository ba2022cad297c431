"""The gateway process as deployed: never open, no key in its log, idle sockets shed.

Each test runs `python -m perpsignal_gateway` (uvicorn, its real HTTP protocol and logging)
on loopback, so what is checked is what an operator would see.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator

import httpx
import pytest
import websockets

from perpsignal_common.embedded import free_port
from tests.helpers import REPO, ServiceProcess, eventually

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(180)]

KEY = "hdr-key-7f3a9c21e5"
SECRET_PARTS = ("7f3a9c21e5",)


@contextlib.asynccontextmanager
async def _gateway(env: dict[str, str], tmp_path, port: int) -> AsyncIterator[ServiceProcess]:
    proc = ServiceProcess("gateway", {**env, "GATEWAY_PORT": str(port)}, tmp_path).start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:

            async def ready() -> bool:
                try:
                    return (await client.get("/readyz")).status_code == 200
                except httpx.TransportError:
                    return False

            await eventually(ready, timeout=60, what="gateway process ready")
        yield proc
    finally:
        proc.terminate(timeout=30)
        proc.kill()


@pytest.mark.parametrize("environment", ["prod", "staging"])
def test_production_without_keys_exits_non_zero_naming_the_setting(environment: str) -> None:
    env = {
        **os.environ,
        "ENVIRONMENT": environment,
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "GATEWAY_PUBLIC_URL": "https://api.example.com",
        "GATEWAY_API_KEYS": "",
    }
    done = subprocess.run(
        [sys.executable, "-m", "perpsignal_gateway"],
        env=env,
        capture_output=True,
        timeout=60,
        cwd=REPO,
        check=False,
    )
    assert done.returncode != 0
    assert "GATEWAY_API_KEYS" in (done.stdout + done.stderr).decode()


async def test_no_key_appears_in_the_log_whatever_way_it_is_sent(kafka_env, tmp_path) -> None:
    port = free_port()
    env = {
        **kafka_env,
        "GATEWAY_HOST": "127.0.0.1",
        "GATEWAY_ENABLE_DATABASE": "false",
        "GATEWAY_API_KEYS": KEY,
        "LOG_LEVEL": "DEBUG",
        "COINGLASS_API_KEY": "cg-vendor-secret-55",
    }
    async with _gateway(env, tmp_path, port) as proc:
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=base) as client:
            assert (await client.get("/signals", headers={"X-API-Key": KEY})).status_code == 200
            assert (await client.get("/signals", params={"apiKey": KEY})).status_code == 401
            ticket = (await client.post("/ws/ticket", headers={"X-API-Key": KEY})).json()
        ws_base = f"ws://127.0.0.1:{port}/ws/signals"
        for url in (f"{ws_base}?symbols=BTC&apiKey={KEY}", f"{ws_base}?ticket={ticket['ticket']}"):
            async with websockets.connect(url) as ws:
                await ws.recv()
        async with websockets.connect(ws_base, additional_headers={"X-API-Key": KEY}) as ws:
            await ws.recv()
        assert proc.terminate(timeout=30) == 0
    logs = proc.logs()
    # the lines that used to carry the key are there, redacted
    assert "/ws/signals?symbols=BTC&apiKey=***" in logs
    for secret in (KEY, *SECRET_PARTS, ticket["ticket"], "cg-vendor-secret-55"):
        assert secret not in logs


async def test_an_open_dev_gateway_listens_on_loopback_only(kafka_env, tmp_path) -> None:
    port = free_port()
    env = {**kafka_env, "GATEWAY_ENABLE_DATABASE": "false", "GATEWAY_API_KEYS": ""}
    env.pop("GATEWAY_HOST", None)
    async with _gateway(env, tmp_path, port) as proc:
        assert f"127.0.0.1:{port}" in proc.logs()
        with socket.socket() as s:  # every other interface: nobody listens
            s.settimeout(2)
            bound = s.connect_ex((_other_address(), port)) == 0
        assert not bound


def _other_address() -> str:
    """Return an address of this machine that is not loopback (or skip)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # no packet is sent: only picks the outgoing interface
            address = str(s.getsockname()[0])
        except OSError:
            address = ""
    if not address or address.startswith("127."):
        pytest.skip("no non-loopback interface")
    return address


async def test_idle_and_slow_connections_are_closed_while_clients_are_served(
    kafka_env, tmp_path
) -> None:
    """50 idle or half-sent connections: the server closes them; a real request gets through."""
    port = free_port()
    env = {
        **kafka_env,
        "GATEWAY_HOST": "127.0.0.1",
        "GATEWAY_ENABLE_DATABASE": "false",
        "GATEWAY_API_KEYS": KEY,
        # a cap below the flood: idle sockets are shed to admit newcomers
        "GATEWAY_MAX_CONNECTIONS": "40",
    }
    async with _gateway(env, tmp_path, port):
        flood: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        started = time.monotonic()
        for i in range(50):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            if i % 2:  # slowloris: a request head that never ends
                writer.write(b"GET /signals HTTP/1.1\r\nHost: x\r\nX-A: ")
                await writer.drain()
            flood.append((reader, writer))
        # a legitimate client is served while the flood is open
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            r = await client.get("/signals", headers={"X-API-Key": KEY}, timeout=10)
        assert r.status_code == 200

        async def closed_by_server(reader: asyncio.StreamReader) -> bool:
            try:
                async with asyncio.timeout(max(0.1, 60 - (time.monotonic() - started))):
                    while await reader.read(1024):
                        pass
            except TimeoutError:
                return False
            except ConnectionError:
                return True
            return True

        results = await asyncio.gather(*(closed_by_server(r) for r, _ in flood))
        elapsed = time.monotonic() - started
        for _, writer in flood:
            writer.close()
        assert sum(results) >= 45, f"{sum(results)} of 50 closed in {elapsed:.0f} s"
        assert elapsed < 60
