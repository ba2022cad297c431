"""A PostgreSQL that stops answering, for the services' database-outage tests.

A network partition or a frozen host sends no RST: the client's socket stays open until the
kernel's keepalive gives up (two hours by default) and the server's `statement_timeout` never
fires, since the server never hears of the statement.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from urllib.parse import urlsplit


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
