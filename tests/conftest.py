"""Shared fixtures: a real Kafka-protocol broker and a real PostgreSQL for every test run.

* Kafka: `KAFKA_BOOTSTRAP_SERVERS` when set, else the embedded broker (one per xdist worker).
  Each test gets its own topic prefix, so tests never see each other's messages.
* PostgreSQL: `DATABASE_URL` when set (a server URL; databases are created on it), else the
  embedded server (not durable: test data is thrown away, and fsync is slow on a busy
  machine). Each test that asks for `database_url` gets a fresh, migrated database.

Embedded servers run in their own process group and are registered with the reaper
(`tests.helpers.kill_on_exit`), so they are stopped however the run ends.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import stat
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from perpsignal_common.embedded import EmbeddedKafka, EmbeddedPostgres
from perpsignal_common.settings import KafkaSettings
from tests.helpers import install_reaper, kill_on_exit
from tests.recorded import recorded_data_dir

REPO = Path(__file__).resolve().parents[1]


def pytest_configure(config: pytest.Config) -> None:
    """Arm the reaper in the controller and in every xdist worker, before any fixture runs."""
    install_reaper()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Iterator[None]:
    """Fail the test that leaves /dev/null broken, not the dozen unrelated ones after it.

    An export renamed over /dev/null once: every later initdb (and anything else writing to
    it as another user) failed far from the cause. The check is one stat per test.
    """
    yield
    if os.name == "posix" and not stat.S_ISCHR(os.stat(os.devnull).st_mode):
        pytest.fail(f"{item.nodeid} left {os.devnull} as something other than a device")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Recorded market data and vendor bodies (bundled in data/recorded; tests/recorded.py)."""
    path = recorded_data_dir()
    if path is None:
        pytest.skip("no recorded data: data/recorded/recorded-data.tar.xz is missing")
    return path


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Bootstrap address of a real broker for this test session."""
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        yield external
        return
    log = tmp_path_factory.mktemp("kafka") / "broker.log"
    broker = EmbeddedKafka(log_path=log).start()
    forget = kill_on_exit(broker.stop)
    try:
        yield broker.bootstrap
    finally:
        broker.stop()
        forget()


@pytest.fixture
def kafka_settings(kafka_bootstrap: str) -> KafkaSettings:
    """Kafka settings with a unique topic prefix and test-friendly timeouts."""
    return KafkaSettings(
        kafka_bootstrap_servers=kafka_bootstrap,
        kafka_topic_prefix=f"t{uuid.uuid4().hex[:10]}.",
        kafka_topic_partitions=3,
        kafka_session_timeout_ms=2000,
        kafka_heartbeat_interval_ms=500,
        kafka_fetch_max_wait_ms=25,
        kafka_linger_ms=1,
    )


@pytest.fixture
def kafka_env(kafka_settings: KafkaSettings) -> dict[str, str]:
    """The same Kafka settings as environment variables, for service subprocesses."""
    return {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_settings.kafka_bootstrap_servers,
        "KAFKA_TOPIC_PREFIX": kafka_settings.kafka_topic_prefix,
        "KAFKA_TOPIC_PARTITIONS": str(kafka_settings.kafka_topic_partitions),
        "KAFKA_SESSION_TIMEOUT_MS": "2000",
        "KAFKA_HEARTBEAT_INTERVAL_MS": "500",
        "KAFKA_FETCH_MAX_WAIT_MS": "25",
        "KAFKA_LINGER_MS": "1",
    }


class PgServer:
    """A PostgreSQL server on which tests create and drop databases."""

    def __init__(self, admin_url: str, embedded: EmbeddedPostgres | None) -> None:
        self.admin_url = admin_url  # asyncpg-style URL of a maintenance database
        self.embedded = embedded

    def url_for(self, name: str) -> str:
        base, _, _ = self.admin_url.rpartition("/")
        return f"{base}/{name}"

    async def create(self, name: str) -> None:
        import asyncpg

        conn = await asyncpg.connect(self.admin_url.replace("+asyncpg", ""))
        try:
            await conn.execute(f'create database "{name}"')
        finally:
            await conn.close()

    async def drop(self, name: str) -> None:
        import asyncpg

        conn = await asyncpg.connect(self.admin_url.replace("+asyncpg", ""))
        try:
            await conn.execute(f'drop database if exists "{name}" with (force)')
        finally:
            await conn.close()


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgServer]:
    """A real PostgreSQL server for this session (embedded unless DATABASE_URL is set)."""
    external = os.environ.get("DATABASE_URL")
    if external:
        url = external.replace("postgresql://", "postgresql+asyncpg://", 1)
        yield PgServer(url, None)
        return
    # Not under pytest's basetemp: a concurrent pytest run prunes old basetemps, and
    # PostgreSQL shuts down when its data folder disappears
    root = Path(tempfile.mkdtemp(prefix="perpsignal-pg-"))
    server = EmbeddedPostgres(root / "data", database="postgres", durable=False)

    def cleanup() -> None:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)

    forget = kill_on_exit(cleanup)
    server.start()
    try:
        yield PgServer(server.url("postgres"), server)
    finally:
        cleanup()
        forget()


@pytest.fixture
async def database_url(pg_server: PgServer) -> AsyncIterator[str]:
    """URL of a fresh database with every migration applied; dropped after the test."""
    from perpsignal_common.db.migrate import upgrade

    name = f"t_{uuid.uuid4().hex[:12]}"
    await pg_server.create(name)
    url = pg_server.url_for(name)
    await asyncio.to_thread(upgrade, url)
    try:
        yield url
    finally:
        await pg_server.drop(name)
