"""The notifier's sent-message ledger fails as "database unavailable" when PostgreSQL stops
answering (a partition, a frozen host), instead of hanging the alert in hand: its own asyncpg
pool had no client-side timeout, so a delivery waited for the kernel's two-hour keepalive."""

from __future__ import annotations

import asyncio

import pytest

from perpsignal_common.db.engine import CLIENT_TIMEOUT_GRACE_S, create_engine
from perpsignal_common.errors import DependencyUnavailable
from perpsignal_common.settings import DatabaseSettings
from perpsignal_notifier.repository import NotifierRepository
from tests.db_faults import proxied

pytestmark = pytest.mark.db

STATEMENT_TIMEOUT_MS = 1_000
DEADLINE_S = 3 * (STATEMENT_TIMEOUT_MS / 1000 + CLIENT_TIMEOUT_GRACE_S)


async def test_a_ledger_call_fails_as_unavailable_not_hangs(database_url: str) -> None:
    async with proxied(database_url) as (proxy, url):
        db = DatabaseSettings(database_url=url, database_statement_timeout_ms=STATEMENT_TIMEOUT_MS)
        engine = create_engine(db)
        repo = NotifierRepository(
            engine, statement_timeout_ms=STATEMENT_TIMEOUT_MS, database_url=url
        )
        try:
            assert await repo.statuses("e-before") == {}  # the database answers
            proxy.frozen.set()
            async with asyncio.timeout(DEADLINE_S):  # was: waited for ever
                with pytest.raises(DependencyUnavailable):
                    await repo.statuses("e-during")
        finally:
            async with asyncio.timeout(DEADLINE_S):
                await repo.close()
                await engine.dispose()
