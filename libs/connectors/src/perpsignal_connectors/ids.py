"""Deterministic event ids and time conversions shared by every vendor's parsing."""

from __future__ import annotations

from datetime import UTC, datetime

from perpsignal_common.events.base import deterministic_id


def ms_to_dt(ms: int | float) -> datetime:
    """Return the aware UTC datetime of epoch milliseconds."""
    return datetime.fromtimestamp(ms / 1000, UTC)


def s_to_dt(s: int | float) -> datetime:
    """Return the aware UTC datetime of epoch seconds."""
    return datetime.fromtimestamp(s, UTC)


def event_id(source: str, etype: str, symbol: str, observed_at: datetime, *extra: object) -> str:
    """Return the id of an ingested fact: same source/type/symbol/time/extras → same id."""
    return deterministic_id(source, etype, symbol, observed_at.isoformat(), *extra)
