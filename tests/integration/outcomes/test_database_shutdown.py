"""A PostgreSQL shutting down or restarting is an outage to the outcomes service, not a bad
record.

A fast shutdown (and `pg_terminate_backend`) ends each running statement with SQLSTATE 57P01
`admin_shutdown`; a crash with 57P02, and a server still starting refuses with 57P03. The
signal writer and the evaluator knew only connection errors (class 08): a restart failed the
judged signal's handler with asyncpg's raw error (a counted retry towards the dead-letter
topic, with a traceback) and the evaluator logged "evaluation batch failed". Now both raise
`DependencyUnavailable`, so the consumer loop and the evaluator wait for the database.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import TypeVar

import asyncpg
import pytest

from perpsignal_common.db.engine import create_engine, create_sessionmaker
from perpsignal_common.errors import DependencyUnavailable
from perpsignal_common.settings import DatabaseSettings
from perpsignal_outcomes import repository as repo
from perpsignal_outcomes.settings import OutcomesSettings
from perpsignal_outcomes.tracker import Tracker
from tests.integration.outcomes.conftest import judged

pytestmark = pytest.mark.db

T = TypeVar("T")


@asynccontextmanager
async def locked(dsn: str, table: str) -> AsyncIterator[asyncpg.Connection]:
    """Hold `table` locked, so a statement on it waits (and can be ended mid-way)."""
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await conn.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
            yield conn
    finally:
        await conn.close()


async def shut_down_waiting(admin: asyncpg.Connection, call: Awaitable[T]) -> T:
    """Run `call` and end its backend as a server shutdown does (57P01) once it waits."""
    task = asyncio.ensure_future(call)
    async with asyncio.timeout(10):
        while True:
            ended = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE wait_event_type = 'Lock' AND datname = current_database()"
            )
            if ended:
                break
            await asyncio.sleep(0.02)
        return await task


async def test_a_shutdown_mid_store_is_an_outage(database_url: str) -> None:
    dsn = database_url.replace("+asyncpg", "")
    writer = repo.SignalWriter(dsn, {"1h": 3600}, timedelta(0))
    try:
        await writer.store(judged(signal_id="before"))  # the pool is connected
        async with locked(dsn, "outcome_signals") as admin:
            with pytest.raises(DependencyUnavailable):
                await shut_down_waiting(admin, writer.store(judged(signal_id="during")))
        assert await writer.store(judged(signal_id="after")) is None  # the server is back
    finally:
        await writer.close()


async def test_a_shutdown_mid_evaluation_is_an_outage(database_url: str) -> None:
    db = DatabaseSettings(database_url=database_url)
    engine = create_engine(db)
    try:
        tracker = Tracker(OutcomesSettings(database=db), create_sessionmaker(engine), None)
        assert await tracker.evaluate_batch() == 0
        async with locked(database_url.replace("+asyncpg", ""), "signal_outcomes") as admin:
            with pytest.raises(DependencyUnavailable):
                await shut_down_waiting(admin, tracker.evaluate_batch())
        assert await tracker.evaluate_batch() == 0
    finally:
        await engine.dispose()
