"""Async engine and session factory from `DatabaseSettings`; DB errors mapped to our taxonomy."""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from perpsignal_common.db.url import parse_database_url
from perpsignal_common.errors import DependencyUnavailable
from perpsignal_common.settings import DatabaseSettings

# how long past the server's statement timeout the client waits for an answer: a server that
# stops answering (a network partition, a frozen host: no RST, so the socket stays open for
# the kernel's keepalive, two hours) must not hang its callers; the server ends any statement
# at its own timeout, so an answer later than this never comes
CLIENT_TIMEOUT_GRACE_S = 5.0


def client_timeout_s(statement_timeout_ms: int) -> float | None:
    """Return the client-side command timeout for a server statement timeout (asyncpg's
    `command_timeout`): the server's limit plus CLIENT_TIMEOUT_GRACE_S; None (no limit) when
    the server's is off (0)."""
    if statement_timeout_ms <= 0:
        return None
    return statement_timeout_ms / 1000 + CLIENT_TIMEOUT_GRACE_S


def create_engine(db: DatabaseSettings, *, pool_size: int | None = None) -> AsyncEngine:
    """Return an asyncpg engine with a statement timeout on every connection.

    The URL may be in any libpq form (`sslmode=`, `sslrootcert=`, a pooled host, ...): see
    `perpsignal_common.db.url`.
    """
    target = db.connect()
    return create_async_engine(
        target.sqlalchemy_url,
        pool_size=pool_size or db.database_pool_size,
        max_overflow=2,
        pool_pre_ping=True,
        connect_args={
            "timeout": 10,
            "command_timeout": client_timeout_s(db.database_statement_timeout_ms),
            **target.sqlalchemy_connect_args(
                {"statement_timeout": str(db.database_statement_timeout_ms)}
            ),
        },
    )


def create_engine_from_url(url: str, **kwargs: Any) -> AsyncEngine:
    """Return an engine for a URL in any libpq form (Alembic's; `kwargs` go to SQLAlchemy)."""
    target = parse_database_url(url)
    return create_async_engine(
        target.sqlalchemy_url,
        connect_args={"timeout": 10, **target.sqlalchemy_connect_args()},
        **kwargs,
    )


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Return a session factory that keeps objects usable after commit."""
    return async_sessionmaker(engine, expire_on_commit=False)


# SQLSTATE classes of a server that is unreachable or restarting, not of a bad statement:
# 08 connection exception; 57P01-57P03 admin/crash shutdown and "the database system is
# starting up / not yet accepting connections" (a server back from a crash, in recovery)
UNAVAILABLE_SQLSTATES = ("08", "57P01", "57P02", "57P03")


def is_connection_error(exc: BaseException) -> bool:
    """Return True when `exc` means the database is unreachable (not a bad statement).

    `exc` is SQLAlchemy's error or asyncpg's own (the outcomes service runs statements on
    the asyncpg connection): a server shutting down or restarting fails a statement with
    SQLSTATE 57P01-57P03, an outage to wait out, not a bad record to retry and dead-letter.
    """
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    orig = exc.orig if isinstance(exc, sa_exc.DBAPIError) else exc
    state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if isinstance(state, str) and state.startswith(UNAVAILABLE_SQLSTATES):
        return True
    if isinstance(exc, sa_exc.InterfaceError | sa_exc.OperationalError):
        return True
    # asyncpg's client-side errors: the connection is closed or was lost mid-statement
    if isinstance(exc, asyncpg.InterfaceError | asyncpg.PostgresConnectionError):
        return True
    return isinstance(exc, OSError | ConnectionError | TimeoutError)


@contextlib.asynccontextmanager
async def session_scope(
    sessions: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """Yield a session in a transaction; connection failures become DependencyUnavailable."""
    try:
        async with sessions() as session, session.begin():
            yield session
    except Exception as exc:
        if is_connection_error(exc):
            raise _unavailable(exc) from exc
        raise


def _unavailable(exc: BaseException) -> DependencyUnavailable:
    """Say why the database is unreachable; a TLS failure names the URL parameters to check."""
    tls = exc if isinstance(exc, ssl.SSLError) else exc.__cause__
    if isinstance(tls, ssl.SSLCertVerificationError):
        why = f"certificate verify failed: {tls.verify_message}"
    elif isinstance(tls, ssl.SSLError):
        why = str(tls.reason or tls)
    else:
        return DependencyUnavailable(f"database unavailable: {type(exc).__name__}")
    return DependencyUnavailable(
        f"database TLS failed ({why}): check sslmode and sslrootcert in DATABASE_URL"
    )
