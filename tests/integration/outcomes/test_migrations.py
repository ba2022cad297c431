"""The outcomes Alembic branch upgrades and downgrades cleanly on a fresh PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

from perpsignal_common.db.migrate import downgrade, upgrade

pytestmark = pytest.mark.db

TABLES = {"outcome_signals", "outcome_mss", "signal_outcomes", "outcome_candles", "outcome_funding"}


async def _tables(url: str) -> set[str]:
    conn = await asyncpg.connect(url.replace("+asyncpg", ""))
    try:
        rows = await conn.fetch("select tablename from pg_tables where schemaname = 'public'")
    finally:
        await conn.close()
    return {r["tablename"] for r in rows}


async def test_upgrade_downgrade_upgrade(pg_server) -> None:
    name = f"m_{uuid.uuid4().hex[:12]}"
    await pg_server.create(name)
    url = pg_server.url_for(name)
    try:
        await asyncio.to_thread(upgrade, url)
        assert await _tables(url) >= TABLES

        await asyncio.to_thread(downgrade, url, "outcomes@base")
        left = await _tables(url)
        assert not TABLES & left
        assert "processed_events" in left  # other branches are untouched

        await asyncio.to_thread(upgrade, url)
        assert await _tables(url) >= TABLES
    finally:
        await pg_server.drop(name)
