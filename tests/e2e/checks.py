"""What users see, read back from every exit of the platform, and the invariants across them.

Expected values are worked out from the inputs (the tape, the judged topic, the documented
notifier rules), never copied from the code under test.
"""

from __future__ import annotations

import contextlib
import re
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import asyncpg

from perpsignal_common.errors import PoisonMessage
from perpsignal_common.events.registry import decode
from perpsignal_common.events.signals import SignalJudgedV1, SignalScoredV1
from perpsignal_common.settings import KafkaSettings
from tests.helpers import TopicReader

FIRST_LINE = re.compile(r"<b>(LONG|SHORT) ([A-Z0-9]+)</b>")


async def read_topic(kafka: KafkaSettings, topic: str) -> list[Any]:
    """Return every event on `topic` right now (from the beginning)."""
    async with TopicReader(kafka, topic) as reader:
        empty = 0
        while empty < 3:  # three empty polls in a row: the end of the log
            before = len(reader.records)
            await reader.poll()
            empty = empty + 1 if len(reader.records) == before else 0
        out = []
        for rec in reader.records:
            with contextlib.suppress(PoisonMessage):  # poison records are the DLQ's business
                out.append(decode(rec.value))
        return out


def alert_worthy(e: SignalJudgedV1) -> bool:
    """The notifier's documented rule (README, NOTIFIER_SUPPRESS_SKIP_AVOID on, no score floor):
    LONG/SHORT only, never SKIP, AVOID or judge-suppressed."""
    layer = e.ai_verdict_layer
    return (
        e.direction != "NEUTRAL"
        and layer.verdict != "SKIP"
        and layer.risk_mode != "AVOID"
        and not layer.suppressed
    )


def distinct_judged(events: list[Any]) -> dict[str, SignalJudgedV1]:
    """Return judged signals by event id (a redelivery repeats an id, never a new one)."""
    return {e.event_id: e for e in events if isinstance(e, SignalJudgedV1)}


def distinct_scored(events: list[Any]) -> dict[str, SignalScoredV1]:
    return {e.event_id: e for e in events if isinstance(e, SignalScoredV1)}


def message_keys(texts: list[str]) -> Counter[tuple[str, str]]:
    """Return (direction, symbol) of every alert message, counted."""
    keys: Counter[tuple[str, str]] = Counter()
    for text in texts:
        m = FIRST_LINE.search(text)
        if m:
            keys[(m.group(1), m.group(2))] += 1
    return keys


async def outcome_rows(database_url: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database_url.replace("+asyncpg", ""))
    try:
        return list(
            await conn.fetch(
                "select signal_id, symbol, horizon, status, due_at, entry_at, entry_price,"
                " exit_price, evaluation_count, evaluated_at, reason from signal_outcomes"
            )
        )
    finally:
        await conn.close()


async def fetch(database_url: str, sql: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database_url.replace("+asyncpg", ""))
    try:
        return list(await conn.fetch(sql))
    finally:
        await conn.close()


def utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)
