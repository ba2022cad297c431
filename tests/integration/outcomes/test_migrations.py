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


async def _sql(url: str, sql: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url.replace("+asyncpg", ""))
    try:
        return await conn.fetch(sql)
    finally:
        await conn.close()


async def test_candle_venue_up_and_down_on_a_populated_database(pg_server) -> None:
    """outcomes_0006 keys candles by venue: it upgrades stored candles (venue unknown) and
    downgrades with two venues' candles at one (symbol, timeframe, open time)."""
    name = f"m_{uuid.uuid4().hex[:12]}"
    await pg_server.create(name)
    url = pg_server.url_for(name)
    candle = (
        "INSERT INTO outcome_candles (symbol, timeframe, open_time, open, high, low, close{v}) "
        "VALUES ('XRPUSDT', '5m', '2021-11-15T00:00:00Z', 1, 1.2, 0.9, 1.1{value})"
    )
    try:
        await asyncio.to_thread(upgrade, url, "outcomes_0005")
        await _sql(url, candle.format(v="", value=""))
        await asyncio.to_thread(upgrade, url, "outcomes_0006")
        assert [r["venue"] for r in await _sql(url, "SELECT venue FROM outcome_candles")] == [""]
        await _sql(url, candle.format(v=", venue", value=", 'okx'"))
        await _sql(url, candle.format(v=", venue", value=", 'binance'"))

        await asyncio.to_thread(downgrade, url, "outcomes_0005")
        assert len(await _sql(url, "SELECT * FROM outcome_candles")) == 1
        await asyncio.to_thread(upgrade, url)
    finally:
        await pg_server.drop(name)


async def test_retry_at_downgrade_leaves_market_time_alone(pg_server) -> None:
    """outcomes_0005's downgrade: a row deferred under OUTCOMES_CLOCK=event is due on market
    time (2021 here) and waits for its retry on wall time; wall time must not be written into
    its market-time due column, or the older evaluator would never find it due again."""
    name = f"m_{uuid.uuid4().hex[:12]}"
    await pg_server.create(name)
    url = pg_server.url_for(name)
    due = "2021-11-15T01:05:00+00:00"
    try:
        await asyncio.to_thread(upgrade, url, "outcomes_0005")
        await _sql(
            url,
            "INSERT INTO outcome_signals (signal_id, event_id, symbol, timeframe, direction, "
            "score, confidence, price, observed_at, verdict, risk_mode, judge, "
            "position_multiplier, factors, verdict_layer) VALUES ('s1', 'e1', 'XRPUSDT', '5m', "
            "'LONG', 70, 0.7, 1.19, '2021-11-15T00:05:00Z', 'CONFIRM', 'normal', 'rules', 1, "
            "'[]', '{}')",
        )
        await _sql(
            url,
            "INSERT INTO signal_outcomes (signal_id, horizon, horizon_s, symbol, direction, "
            "verdict, risk_mode, judge, score, entry_price, entry_at, due_at, next_attempt_at, "
            f"retry_at, attempts, reason) VALUES ('s1', '1h', 3600, 'XRPUSDT', 'LONG', 'CONFIRM', "
            f"'normal', 'rules', 70, 1.19, '2021-11-15T00:05:00Z', '{due}', '{due}', "
            "now() + interval '60 seconds', 1, 'no complete candle path yet')",
        )
        await asyncio.to_thread(downgrade, url, "outcomes_0004")
        (row,) = await _sql(url, "SELECT next_attempt_at, status FROM signal_outcomes")
        assert row["status"] == "pending"
        assert row["next_attempt_at"].isoformat() == due
        await asyncio.to_thread(upgrade, url)
    finally:
        await pg_server.drop(name)


async def test_column_widths_down_keeps_what_fits(pg_server) -> None:
    """outcomes_0007's downgrade drops only the rows the narrower columns cannot hold."""
    name = f"m_{uuid.uuid4().hex[:12]}"
    await pg_server.create(name)
    url = pg_server.url_for(name)
    candle = (
        "INSERT INTO outcome_candles (symbol, timeframe, open_time, open, high, low, close) "
        "VALUES ('{symbol}', '5m', '2021-11-15T00:00:00Z', 1, 1.2, 0.9, 1.1)"
    )
    try:
        await asyncio.to_thread(upgrade, url, "outcomes_0006")
        await _sql(url, candle.format(symbol="XRPUSDT"))
        await asyncio.to_thread(upgrade, url, "outcomes_0007")
        await _sql(url, candle.format(symbol="X" * 64))
        await asyncio.to_thread(downgrade, url, "outcomes_0006")
        rows = await _sql(url, "SELECT symbol FROM outcome_candles")
        assert [r["symbol"] for r in rows] == ["XRPUSDT"]
        await asyncio.to_thread(upgrade, url)
    finally:
        await pg_server.drop(name)
