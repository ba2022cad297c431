"""A full run of every service, then every log line of every process searched for every secret.

The stack gets a distinctive value for each secret it knows (the gateway's API key, every
vendor key the catalogues name, the OpenAI key, the Telegram bot token); the test drives the
ways a key travels (header, WebSocket URL, ticket, wrong keys, vendor pass-through) and the
pipeline until an alert reaches Telegram, stops everything, and greps the logs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets

from perpsignal_common.settings import KafkaSettings
from perpsignal_connectors.catalog import load_catalogs
from tests.conftest import PgServer
from tests.e2e.conftest import E2E_SYMBOLS, ON_DEMAND, fresh_database, kafka_env_of
from tests.e2e.stack import CHAT_IDS, SERVICES, Stack
from tests.fakes.telegram import DEFAULT_TOKEN
from tests.helpers import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

API_KEY = "gw-key-5c1e0b77d2"
VENDOR_KEYS = {c.key_env: f"vendor-{c.name}-key-4a9d" for c in load_catalogs() if c.key_env}
OPENAI_KEY = "sk-e2e-fake"  # what the stack gives the judge


@pytest.fixture(scope="module")
def stack(
    shared_data: Path,
    e2e_kafka_settings: KafkaSettings,
    pg_server: PgServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    url = fresh_database(pg_server)
    keyed = {"GATEWAY_API_KEYS": API_KEY, **VENDOR_KEYS}
    s = Stack(
        shared_data=shared_data,
        kafka_env=kafka_env_of(e2e_kafka_settings),
        database_url=url,
        log_dir=tmp_path_factory.mktemp("secret-logs"),
        symbols=E2E_SYMBOLS,
        listed=E2E_SYMBOLS + ON_DEMAND,
        extra_env={
            "gateway": keyed,
            "ingestor": dict(VENDOR_KEYS),
            "judge": {"LOG_LEVEL": "DEBUG"},
        },
    )
    try:
        s.start_fakes()
        s.start_all(SERVICES)
        s.wait_started()
        yield s
    finally:
        s.stop()
        with contextlib.suppress(Exception):
            asyncio.run(pg_server.drop(url.rsplit("/", 1)[-1]))


async def test_no_configured_secret_appears_in_any_log(stack: Stack) -> None:
    base, ws = stack.gateway_url, f"{stack.ws_url}/ws/signals"
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        header = {"X-API-Key": API_KEY}
        assert (await client.get("/signals", headers=header)).status_code == 200
        for wrong in (API_KEY[:-1], API_KEY + "x"):
            assert (await client.get("/signals", headers={"X-API-Key": wrong})).status_code == 401
        ticket = (await client.post("/ws/ticket", headers=header)).json()["ticket"]
        # through the vendor pass-through: the gateway sends the vendor key to the fake
        await client.post(
            "/invoke", headers=header, json={"operation": "coinglass.futures_supported_coins"}
        )
    async with websockets.connect(f"{ws}?ticket={ticket}") as conn:
        assert json.loads(await conn.recv())["type"] == "subscribed"
    async with websockets.connect(f"{ws}?apiKey={API_KEY}&symbols=BTC") as conn:
        assert json.loads(await conn.recv())["type"] == "subscribed"
        # the whole pipeline runs (judge with its OpenAI key, Telegram with its token)
        await eventually(
            lambda: any(stack.telegram_texts(c) for c in CHAT_IDS),
            timeout=300,
            interval=1,
            what="an alert delivered to Telegram",
        )
    for proc in stack.procs.values():  # drain and flush every log before reading them
        proc.terminate(30)
    logs = {p.name: p.read_text(errors="replace") for p in stack.log_dir.glob("*.log")}
    assert set(logs) >= {f"{n}.log" for n in SERVICES}
    assert "apiKey=***" in logs["gateway.log"]  # the line that used to carry the key
    secrets = [API_KEY, OPENAI_KEY, DEFAULT_TOKEN, *VENDOR_KEYS.values()]
    leaks = [(name, s) for name, text in logs.items() for s in secrets if s in text]
    assert not leaks, leaks
