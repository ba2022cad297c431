"""The outcomes service reads a database shutting down or restarting as an outage.

SQLSTATE 57P01 admin_shutdown, 57P02 crash_shutdown and 57P03 cannot_connect_now mean the
server is going away or not back yet: the statement is fine and must wait, not count a retry
towards the dead-letter topic. The writer and the evaluator had their own list of asyncpg
error classes, which knew 57P03 only; they now use the shared `is_connection_error`.
(asyncpg reports a statement a shutdown ends as a lost connection, which the real-server test
in tests/integration/outcomes/test_database_shutdown.py holds; the SQLSTATE errors are what
reaches the service when the server's error is read before the connection closes.)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import asyncpg
import pytest

from perpsignal_common.errors import DependencyUnavailable
from perpsignal_outcomes import repository as repo
from tests.producers import real_judged

SHUTDOWNS = [
    asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator command"),
    asyncpg.exceptions.CrashShutdownError("terminating connection because of crash"),
    asyncpg.CannotConnectNowError("the database system is starting up"),
]


class FailingPool:
    """An asyncpg pool whose statements fail with `error`."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[FailingPool]:
        yield self

    async def fetchval(self, *_: object) -> object:
        raise self.error

    async def close(self) -> None:
        return None


@pytest.mark.parametrize("error", SHUTDOWNS, ids=lambda e: e.sqlstate)
async def test_a_shutting_down_database_fails_a_store_as_unavailable(error: Exception) -> None:
    writer = repo.SignalWriter("postgresql://unused/db", {"1h": 3600}, timedelta(0))
    writer._pool = FailingPool(error)
    with pytest.raises(DependencyUnavailable, match=type(error).__name__):
        await writer.store(real_judged("CONFIRM", "LONG", True))


@pytest.mark.parametrize("error", SHUTDOWNS, ids=lambda e: e.sqlstate)
def test_shutdown_states_are_outages(error: Exception) -> None:
    assert isinstance(repo.unavailable(error), DependencyUnavailable)


def test_a_refused_value_is_no_outage() -> None:
    nul = asyncpg.exceptions.CharacterNotInRepertoireError("invalid byte sequence: 0x00")
    assert repo.unavailable(nul) is None
    assert repo.refused_value(nul) is not None
