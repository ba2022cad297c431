"""A database that stops answering (a network partition, a frozen host) fails the outcomes
service's calls as "database unavailable" within its timeouts, instead of hanging them.

The server's `statement_timeout` cannot help: the server never hears of the statement. With
no RST the socket stays open until the kernel's keepalive gives up (two hours by default):
the evaluator stood still, and each judged signal's handler timed out and was retried into the
dead-letter topic instead of the service waiting for its database.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta
from urllib.parse import urlsplit

import pytest

from perpsignal_common.db.engine import CLIENT_TIMEOUT_GRACE_S, create_engine, create_sessionmaker
from perpsignal_common.errors import DependencyUnavailable
from perpsignal_common.settings import DatabaseSettings
from perpsignal_outcomes import repository as repo
from perpsignal_outcomes.settings import OutcomesSettings
from perpsignal_outcomes.tracker import Tracker
from tests.integration.outcomes.conftest import judged

pytestmark = pytest.mark.db

STATEMENT_TIMEOUT_MS = 1_000
# what a caller may wait at most: the statement, the grace, and the cancel of a timed-out one
DEADLINE_S = 3 * (STATEMENT_TIMEOUT_MS / 1000 + CLIENT_TIMEOUT_GRACE_S)


class FreezingProxy:
    """TCP in front of PostgreSQL that, once `freeze()`d, keeps every socket open and
    forwards nothing more (what a partitioned or frozen server looks like to a client)."""

    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self.frozen = asyncio.Event()
        self.tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    async def __aenter__(self) -> FreezingProxy:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_: object) -> None:
        self.server.close()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    def url(self, database_url: str) -> str:
        return database_url.replace(f":{self.upstream[1]}/", f":{self.port}/")

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await src.read(65536):
                if self.frozen.is_set():
                    await asyncio.Event().wait()  # swallowed: no answer, no close
                dst.write(data)
                await dst.drain()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        if self.frozen.is_set():
            await asyncio.Event().wait()
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            up_writer.close()
            writer.close()


@contextlib.asynccontextmanager
async def proxied(database_url: str) -> AsyncIterator[tuple[FreezingProxy, str]]:
    u = urlsplit(database_url)
    assert u.hostname is not None and u.port is not None
    async with FreezingProxy(u.hostname, u.port) as proxy:
        yield proxy, proxy.url(database_url)


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
