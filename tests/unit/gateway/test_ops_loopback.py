"""The unauthenticated ops port (metrics, health, DLQ counts) listens on loopback by default."""

from __future__ import annotations

import httpx

from perpsignal_common.observability.ops_server import OpsServer
from perpsignal_common.settings import OpsSettings


async def test_ops_server_binds_loopback_unless_configured(monkeypatch) -> None:
    monkeypatch.delenv("OPS_HOST", raising=False)
    settings = OpsSettings()
    assert settings.ops_host == "127.0.0.1"
    server = OpsServer(settings.ops_host, 0, lambda: True)
    await server.start()
    try:
        sock = server._server.servers[0].sockets[0]
        assert sock.getsockname()[0] == "127.0.0.1"
        async with httpx.AsyncClient() as client:
            r = await client.get(f"http://127.0.0.1:{server.port}/readyz")
        assert r.status_code == 200
    finally:
        await server.stop()
    monkeypatch.setenv("OPS_HOST", "0.0.0.0")
    assert OpsSettings().ops_host == "0.0.0.0"  # Kubernetes and compose say so explicitly
