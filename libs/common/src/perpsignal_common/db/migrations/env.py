"""Alembic environment: async engine from the URL the caller put in the config."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import pool
from sqlalchemy.engine import Connection

import perpsignal_common.db.models  # noqa: F401 - registers every model on the metadata
from perpsignal_common.db.base import Base
from perpsignal_common.db.engine import create_engine_from_url
from perpsignal_common.db.url import parse_database_url

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    """Return the URL as given, in any libpq form (parsed by `create_engine_from_url`)."""
    url = config.attributes.get("database_url") or config.get_main_option("sqlalchemy.url")
    if not url:
        from perpsignal_common.settings import DatabaseSettings

        url = DatabaseSettings().database_url.get_secret_value()
    return str(url)


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


async def _online() -> None:
    engine = create_engine_from_url(_url(), poolclass=pool.NullPool)
    async with engine.connect() as conn:
        await conn.run_sync(_run)
    await engine.dispose()


if context.is_offline_mode():
    context.configure(
        url=parse_database_url(_url()).sqlalchemy_url,
        target_metadata=target_metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_online())
