"""A database that stops answering (a network partition, a frozen host) fails the outcomes
service's calls as "database unavailable" within its timeouts, instead of hanging them.

The server's `statement_timeout` cannot help: the server never hears of the statement. With
no RST the socket stays open until the kernel's keepalive gives up (two hours by default):
the evaluator stood still, and each judged signal's handler timed out and was retried into the
dead-letter topic instead of the service waiting for its database.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from perpsignal_common.db.engine import CLIENT_TIMEOUT_GRACE_S, create_engine, create_sessionmaker
from perpsignal_common.errors import DependencyUnavailable
from perpsignal_common.settings import DatabaseSettings
from perpsignal_outcomes import repository as repo
from perpsignal_outcomes.settings import OutcomesSettings
from perpsignal_outcomes.tracker import Tracker
from tests.db_faults import proxied
from tests.integration.outcomes.conftest import judged

pytestmark = pytest.mark.db

STATEMENT_TIMEOUT_MS = 1_000
# what a caller may wait at most: the statement, the grace, and the cancel of a timed-out one
DEADLINE_S = 3 * (STATEMENT_TIMEOUT_MS / 1000 + CLIENT_TIMEOUT_GRACE_S)


async def test_a_judged_signal_store_fails_as_unavailable_not_hangs(database_url: str) -> None:
    async with proxied(database_url.replace("+asyncpg", "")) as (proxy, url):
        writer = repo.SignalWriter(
            url, {"1h": 3600}, timedelta(0), statement_timeout_ms=STATEMENT_TIMEOUT_MS
        )
        try:
            await writer.store(judged(signal_id="before"))  # the database answers
            proxy.frozen.set()
            async with asyncio.timeout(DEADLINE_S):  # was: waited for ever
                with pytest.raises(DependencyUnavailable):
                    await writer.store(judged(signal_id="during"))
        finally:
            async with asyncio.timeout(DEADLINE_S):
                await writer.close()


async def test_the_evaluator_fails_as_unavailable_not_hangs(database_url: str) -> None:
    async with proxied(database_url) as (proxy, url):
        db = DatabaseSettings(database_url=url, database_statement_timeout_ms=STATEMENT_TIMEOUT_MS)
        engine = create_engine(db)
        try:
            tracker = Tracker(OutcomesSettings(database=db), create_sessionmaker(engine), None)
            assert await tracker.evaluate_batch() == 0  # the database answers
            proxy.frozen.set()
            async with asyncio.timeout(DEADLINE_S):  # was: waited for ever
                with pytest.raises(DependencyUnavailable):
                    await tracker.evaluate_batch()
        finally:
            async with asyncio.timeout(DEADLINE_S):
                await engine.dispose()
