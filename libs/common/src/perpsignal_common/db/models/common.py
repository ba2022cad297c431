"""Idempotency ledger shared by consumers whose effect is a database write.

Owner: every consumer writes only rows with its own `consumer` name.
"""

from __future__ import annotations

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from perpsignal_common.db.base import Base, TimestampMixin


class ProcessedEvent(TimestampMixin, Base):
    """One row per (consumer, event_id) whose effect is committed."""

    __tablename__ = "processed_events"

    consumer: Mapped[str] = mapped_column(String(64), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(64), primary_key=True)
