"""End-to-end fixtures: one isolated stack (topic prefix + database) per test module."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from perpsignal_common.settings import KafkaSettings
from tests.conftest import PgServer
from tests.e2e.stack import SERVICES, Stack

E2E_SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT"]
# listed but not watched: asking the gateway for one starts a fresh 99-candle burst mid-stream
ON_DEMAND = ["ADAUSDT", "DOGEUSDT", "LINKUSDT", "AVAXUSDT", "DOTUSDT", "LTCUSDT", "BNBUSDT"]


def e2e_kafka(bootstrap: str) -> KafkaSettings:
    """Kafka settings of one e2e stack: a fresh topic prefix, fast group joins and fetches."""
    return KafkaSettings(
        kafka_bootstrap_servers=bootstrap,
        kafka_topic_prefix=f"e{uuid.uuid4().hex[:10]}.",
        kafka_topic_partitions=3,
        kafka_session_timeout_ms=2000,
        kafka_heartbeat_interval_ms=500,
        kafka_fetch_max_wait_ms=25,
        kafka_linger_ms=1,
    )


def kafka_env_of(k: KafkaSettings) -> dict[str, str]:
    """The same settings as environment variables for the service processes."""
    return {
        "KAFKA_BOOTSTRAP_SERVERS": k.kafka_bootstrap_servers,
        "KAFKA_TOPIC_PREFIX": k.kafka_topic_prefix,
        "KAFKA_TOPIC_PARTITIONS": str(k.kafka_topic_partitions),
        "KAFKA_SESSION_TIMEOUT_MS": str(k.kafka_session_timeout_ms),
        "KAFKA_HEARTBEAT_INTERVAL_MS": str(k.kafka_heartbeat_interval_ms),
        "KAFKA_FETCH_MAX_WAIT_MS": str(k.kafka_fetch_max_wait_ms),
        "KAFKA_LINGER_MS": str(k.kafka_linger_ms),
    }


def fresh_database(pg: PgServer) -> str:
    """Create and migrate a database for one stack; return its URL."""
    from perpsignal_common.db.migrate import upgrade

    name = f"e2e_{uuid.uuid4().hex[:10]}"
    asyncio.run(pg.create(name))
    url = pg.url_for(name)
    upgrade(url)
    return url


@pytest.fixture(scope="module")
def e2e_kafka_settings(kafka_bootstrap: str) -> KafkaSettings:
    return e2e_kafka(kafka_bootstrap)


@pytest.fixture(scope="module")
def stack(
    shared_data: Path,
    kafka_bootstrap: str,
    e2e_kafka_settings: KafkaSettings,
    pg_server: PgServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    """The whole platform, market data flowing in through the ingestor's vendor edge."""
    url = fresh_database(pg_server)
    s = Stack(
        shared_data=shared_data,
        kafka_env=kafka_env_of(e2e_kafka_settings),
        database_url=url,
        log_dir=tmp_path_factory.mktemp("e2e-logs"),
        symbols=E2E_SYMBOLS,
        listed=E2E_SYMBOLS + ON_DEMAND,
    )
    try:
        s.start_fakes()
        s.start_all(tuple(n for n in SERVICES if n != "ingestor"))
        s.wait_started()
        s.ws_inbox = s.open_ws()  # before any market data: it must see the first signals
        s.start("ingestor")
        yield s
    finally:
        s.stop()
        with contextlib.suppress(Exception):  # best effort: the server may be busy
            asyncio.run(pg_server.drop(url.rsplit("/", 1)[-1]))
