"""`python -m perpsignal_gateway` serves on GATEWAY_HOST/GATEWAY_PORT and stops on SIGTERM."""

from __future__ import annotations

import httpx
import pytest

from perpsignal_common.embedded import free_port
from tests.helpers import ServiceProcess, eventually

pytestmark = pytest.mark.kafka


async def test_module_entry_point_serves_and_drains(kafka_env, tmp_path) -> None:
    port = free_port()
    env = {
        **kafka_env,
        "GATEWAY_HOST": "127.0.0.1",
        "GATEWAY_PORT": str(port),
        "GATEWAY_ENABLE_DATABASE": "false",
        "GATEWAY_API_KEYS": "secret-key",
    }
    proc = ServiceProcess("gateway", env, tmp_path).start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:

            async def ready() -> bool:
                try:
                    return (await client.get("/readyz")).status_code == 200
                except httpx.TransportError:
                    return False

            await eventually(ready, timeout=60, what="gateway process ready")
            assert (await client.get("/signals")).status_code == 401
            ok = await client.get("/signals", headers={"X-API-Key": "secret-key"})
            assert ok.status_code == 200 and ok.json() == {"count": 0, "signals": []}
        assert proc.terminate(timeout=30) == 0
    finally:
        proc.kill()
    assert "secret-key" not in proc.logs()
    assert "Traceback" not in proc.logs()
