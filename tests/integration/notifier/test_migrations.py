"""The notifier's Alembic branch on a populated PostgreSQL: notifier_0004 widens the event id
columns to the contract's 256 characters and downgrades by removing what 64 cannot hold."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

from perpsignal_common.db.migrate import downgrade, upgrade
from perpsignal_common.events.values import MAX_ID_LENGTH

pytestmark = pytest.mark.db

LONG, SHORT = "e" * MAX_ID_LENGTH, "e" * 64


async def _sql(url: str, sql: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url.replace("+asyncpg", ""))
    try:
        return await conn.fetch(sql)
    finally:
        await conn.close()


def _delivery(event_id: str) -> str:
    return (
        "INSERT INTO notifier_deliveries (event_id, chat_id, kind, symbol, status, attempts) "
        f"VALUES ('{event_id}', 1, 'signal', 'BTCUSDT', 'sent', 1)"
    )


async def test_event_id_width_up_and_down_on_a_populated_database(pg_server) -> None:
    name = f"m_{uuid.uuid4().hex[:12]}"
    await pg_server.create(name)
    url = pg_server.url_for(name)
    state = (
        "INSERT INTO notifier_symbol_state (symbol, asset, latest_event_id, last_alert_event_id, "
        "last_alert_at, last_alert_call) VALUES ('{s}', 'X', '{e}', '{e}', now(), 'LONG:WAIT')"
    )
    try:
        await asyncio.to_thread(upgrade, url, "notifier_0003")
        with pytest.raises(asyncpg.StringDataRightTruncationError):
            await _sql(url, _delivery(LONG))
        await _sql(url, _delivery(SHORT))
        await asyncio.to_thread(upgrade, url)
        await _sql(url, _delivery(LONG))
        await _sql(url, state.format(s="BTCUSDT", e=LONG))
        await _sql(url, state.format(s="ETHUSDT", e=SHORT))

        await asyncio.to_thread(downgrade, url, "notifier_0003")
        kept = await _sql(url, "SELECT event_id FROM notifier_deliveries")
        assert [r["event_id"] for r in kept] == [SHORT]
        rows = await _sql(
            url,
            "SELECT symbol, latest_event_id, last_alert_event_id, last_alert_call "
            "FROM notifier_symbol_state ORDER BY symbol",
        )
        assert [tuple(r) for r in rows] == [
            ("BTCUSDT", None, None, None),
            ("ETHUSDT", SHORT, SHORT, "LONG:WAIT"),
        ]
        await asyncio.to_thread(upgrade, url)
        await _sql(url, _delivery(LONG))
    finally:
        await pg_server.drop(name)
