"""A restarting database is an outage, not a bad record; stale PostgreSQL locks are cleared."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_dbapi

from perpsignal_common.db.engine import is_connection_error
from perpsignal_common.embedded import EmbeddedPostgres, durable_default
from perpsignal_common.errors import DependencyUnavailable


def wrapped(error: Exception) -> sa_exc.DBAPIError:
    """Wrap an asyncpg error the way SQLAlchemy's asyncpg dialect raises it."""
    dbapi = AsyncAdapt_asyncpg_dbapi(asyncpg)
    adapted = dbapi.Error(error)  # type: ignore[attr-defined]
    adapted.sqlstate = adapted.pgcode = getattr(error, "sqlstate", None)
    return sa_exc.DBAPIError("select 1", None, adapted)


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.CannotConnectNowError("the database system is starting up"),
        asyncpg.exceptions.CrashShutdownError("terminating connection"),
        asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator"),
    ],
)
def test_a_server_in_recovery_or_shutdown_is_unavailable(error: Exception) -> None:
    assert is_connection_error(wrapped(error))


def test_a_bad_statement_is_not_an_outage() -> None:
    assert not is_connection_error(wrapped(asyncpg.UniqueViolationError("duplicate key")))


def test_durable_unless_explicitly_opted_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EMBEDDED_POSTGRES_DURABLE", raising=False)
    assert durable_default() is True
    assert EmbeddedPostgres(Path("/nonexistent")).durable is True
    for off in ("false", "0", "no", "OFF"):
        monkeypatch.setenv("EMBEDDED_POSTGRES_DURABLE", off)
        assert EmbeddedPostgres(Path("/nonexistent")).durable is False


def test_stale_files_of_a_dead_server_are_removed_and_a_reused_pid_left_alone(
    tmp_path: Path,
) -> None:
    # the PID in postmaster.pid now belongs to another program: it must not be signalled
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / "postmaster.pid").write_text(f"{other.pid}\n{tmp_path}\n")
        (tmp_path / ".s.PGSQL.5999.lock").write_text("5999\n")
        EmbeddedPostgres(tmp_path).recover_stale()
        assert other.poll() is None
        assert sorted(p.name for p in tmp_path.iterdir()) == []
    finally:
        other.kill()
        other.wait()


def test_a_dead_pid_is_just_a_stale_file(tmp_path: Path) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    (tmp_path / "postmaster.pid").write_text(f"{gone.pid}\n")
    EmbeddedPostgres(tmp_path).recover_stale()
    assert not (tmp_path / "postmaster.pid").exists()


def test_free_ports_come_from_outside_the_kernels_own_range(monkeypatch) -> None:
    """A port from bind(0) may be handed to any client connection before its server binds it
    (a test gateway failed on "address already in use"); ports outside the kernel's range
    are only taken by an explicit bind."""
    from perpsignal_common import embedded

    monkeypatch.setattr(embedded, "_ephemeral_range", lambda: (32768, 60999))
    ports = {embedded.free_port() for _ in range(50)}
    assert not [p for p in ports if 32768 <= p <= 60999]
    assert len(ports) > 40  # drawn at random: two servers rarely get the same one
    for port in ports:
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))  # each one free right now

    # a kernel that hands out (nearly) every port: the kernel's own choice, still free
    monkeypatch.setattr(embedded, "_ephemeral_range", lambda: (1024, 65535))
    with socket.socket() as s:
        s.bind(("127.0.0.1", embedded.free_port()))


def test_a_failed_initdb_says_why(tmp_path: Path) -> None:
    """initdb's reason used to be swallowed ("returned non-zero exit status 1"): a CI run
    whose /dev/null had been replaced by a file failed a dozen tests with no clue why."""
    data = tmp_path / "pg"
    data.mkdir()
    (data / "notes.txt").write_text("not a database folder\n")
    with pytest.raises(DependencyUnavailable, match="exists but is not empty"):
        EmbeddedPostgres(data).start()
