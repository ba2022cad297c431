"""A restarting database is an outage, not a bad record; stale PostgreSQL locks are cleared."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_dbapi

from perpsignal_common.db.engine import is_connection_error
from perpsignal_common.embedded import EmbeddedPostgres, durable_default


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
