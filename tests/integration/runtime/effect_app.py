"""A minimal consumer process for the runtime's crash tests.

Its effect is a row per event in PostgreSQL, written idempotently (ON CONFLICT DO NOTHING on
event_id) in the same transaction that records the delivery attempt. Run as
`python -m tests.integration.runtime.effect_app` with KAFKA_* and DATABASE_URL set.
"""

from __future__ import annotations

import os

from sqlalchemy import text

from perpsignal_common.db.engine import create_engine, create_sessionmaker, session_scope
from perpsignal_common.events.base import Event
from perpsignal_common.events.market import CandleClosedV1
from perpsignal_common.kafka.consumer import ConsumerLoop, ConsumerOptions, Record
from perpsignal_common.runtime import KafkaService, run_service
from perpsignal_common.settings import DatabaseSettings, ServiceSettings

SCHEMA = """
create table if not exists effects (event_id text primary key, symbol text, close double precision);
create table if not exists deliveries (id bigserial primary key, event_id text);
"""


class EffectService(KafkaService):
    def __init__(self, settings: ServiceSettings, db: DatabaseSettings) -> None:
        super().__init__("effect-app", settings)
        self.engine = create_engine(db)
        self.sessions = create_sessionmaker(self.engine)
        self.loops.append(
            ConsumerLoop(
                kafka=settings.kafka,
                service=self.name,
                producer=self.producer,
                handler=self.handle,
                options=ConsumerOptions(
                    group_id="effect-app",
                    topics=["perpsignal.market.v1"],
                    concurrency=int(os.environ.get("APP_CONCURRENCY", "8")),
                ),
            )
        )

    async def on_close(self) -> None:
        await self.engine.dispose()

    async def handle(self, event: Event, record: Record) -> None:
        assert isinstance(event, CandleClosedV1)
        async with session_scope(self.sessions) as s:
            await s.execute(
                text("insert into deliveries (event_id) values (:e)"), {"e": event.event_id}
            )
            await s.execute(
                text("insert into effects values (:e, :s, :c) on conflict do nothing"),
                {"e": event.event_id, "s": event.symbol, "c": event.close},
            )


def build() -> tuple[EffectService, ServiceSettings]:
    settings = ServiceSettings(service_name="effect-app")
    return EffectService(settings, DatabaseSettings()), settings


if __name__ == "__main__":
    run_service(build)
