"""One name per vendor key: the ingestor and the gateway read the same variable.

Before the registry the ingestor read `COINAPI_KEY` and the gateway `COINAPI_API_KEY`, so with
the documented setting every `coinapi.*` operation answered 503.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import httpx
import pytest
import respx
from pydantic import ValidationError

from perpsignal_connectors import keys
from perpsignal_connectors.catalog import load_catalogs
from perpsignal_connectors.keys import VENDOR_KEYS
from perpsignal_gateway.main import create_app, vendor_env_from_os
from perpsignal_gateway.settings import GatewaySettings
from perpsignal_ingestor.service import KEYED
from perpsignal_ingestor.settings import KEY_FIELDS, IngestorSettings

API = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "api"
ALL_KEY_VARS = [v for k in VENDOR_KEYS.values() for v in (k.env, *k.deprecated)]


@pytest.fixture(autouse=True)
def _no_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ALL_KEY_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(keys, "_warned", set())  # the deprecation warning is once per process


@pytest.mark.parametrize("vendor", sorted(KEY_FIELDS))
def test_ingestor_and_gateway_read_the_same_variable(
    vendor: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = VENDOR_KEYS[vendor].env
    monkeypatch.setenv(env, f"key-of-{vendor}")
    ingestor = getattr(IngestorSettings().keys, KEY_FIELDS[vendor])
    assert ingestor is not None and ingestor.get_secret_value() == f"key-of-{vendor}"
    catalog = next(c for c in load_catalogs() if c.name == vendor)
    assert catalog.key_env == env
    assert vendor_env_from_os()[env] == f"key-of-{vendor}"


def test_every_keyed_catalogue_and_ingestor_source_names_a_registry_variable() -> None:
    registry = {k.env for k in VENDOR_KEYS.values()}
    assert {c.key_env for c in load_catalogs() if c.key_required} <= registry
    assert {env for _, env in KEYED.values()} <= registry


async def _invoke_coinapi(vendor_env: dict[str, str]) -> httpx.Response:
    app = create_app(
        GatewaySettings(gateway_enable_database=False, gateway_rate_limit="1000/second"),
        vendor_env=vendor_env,
        connect_kafka=False,
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            return await client.post("/invoke", json={"operation": "coinapi.exchanges"})


@pytest.mark.parametrize("name", ["COINAPI_API_KEY", "COINAPI_KEY"])
@respx.mock
async def test_coinapi_operations_work_with_the_documented_and_the_old_name(
    name: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    path = API / "coinapi" / "v1_exchanges.json"
    if not path.exists():
        pytest.skip("recorded CoinAPI body not present")
    body = json.loads(path.read_text())
    route = respx.get("https://rest.coinapi.io/v1/exchanges").mock(
        return_value=httpx.Response(200, json=body)
    )
    monkeypatch.setenv(name, "ca-secret")
    with caplog.at_level(logging.WARNING):
        r = await _invoke_coinapi(vendor_env_from_os())
        ingestor_key = IngestorSettings().keys.coinapi_api_key
    assert r.status_code == 200, r.text
    assert route.calls[0].request.headers["X-CoinAPI-Key"] == "ca-secret"
    assert ingestor_key is not None and ingestor_key.get_secret_value() == "ca-secret"
    deprecated = "COINAPI_KEY is deprecated; rename it to COINAPI_API_KEY" in caplog.text
    assert deprecated is (name == "COINAPI_KEY")
    assert "ca-secret" not in caplog.text


@pytest.mark.parametrize("vendor", sorted(KEY_FIELDS))
@pytest.mark.parametrize("raw", ["key-4a9d0c\n", "  key-4a9d0c\r\n", "\tkey-4a9d0c "])
def test_a_key_from_a_secret_file_loses_its_trailing_newline(
    vendor: str, raw: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`echo key > secret` or a mounted secret file ends in a newline: kept, it made every
    call of the source fail ("request not sent: a header value has a character HTTP
    forbids"). No key ends in whitespace: it is dropped."""
    monkeypatch.setenv(VENDOR_KEYS[vendor].env, raw)
    key = getattr(IngestorSettings().keys, KEY_FIELDS[vendor])
    assert key is not None and key.get_secret_value() == "key-4a9d0c"


def test_a_key_under_its_old_name_loses_its_trailing_newline_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COINAPI_KEY", "ca-key-4a9d0c\n")
    key = IngestorSettings().keys.coinapi_api_key
    assert key is not None and key.get_secret_value() == "ca-key-4a9d0c"


def test_a_blank_key_leaves_the_source_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """A secret file holding only a newline is no key: the source is off, as when unset."""
    monkeypatch.setenv("LUNARCRUSH_API_KEY", " \n")
    assert IngestorSettings().keys.lunarcrush_api_key is None


@pytest.mark.parametrize(
    "raw",
    [
        "key-4a9d 0c",  # two keys pasted, or a word of the vendor's page
        "key-4a9d\n0c",
        "key-4a9d\x1b0c",  # an escape sequence from a terminal
        "key-4a9d\u200b0c",  # a zero-width space copied from a web page
        "\ufeffkey-4a9d0c",  # the byte-order mark of a file saved on Windows
    ],
)
def test_a_key_with_a_character_inside_that_http_forbids_is_refused_at_start(
    raw: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Inside a key, a space or an invisible character is no typo we may repair: refused
    when the settings are read, naming the variable and never showing the value."""
    monkeypatch.setenv("COINGLASS_API_KEY", raw)
    with pytest.raises(ValidationError) as refused:
        IngestorSettings()
    message = str(refused.value)
    assert "COINGLASS_API_KEY has a space or an invisible or control character" in message
    assert "4a9d" not in message
