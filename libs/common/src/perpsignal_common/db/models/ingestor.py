"""Ingestor-owned tables. Owner: the ingestor service (the only writer).

`known_symbols` is the persisted set of perpetuals the new-listings monitor has seen, so a
restart or a full re-sync never announces an old symbol again; `announced_at` stays NULL
until the listing event is acknowledged by Kafka, so a crash in between re-announces it
(with the same deterministic event id) rather than losing it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, String
from sqlalchemy.orm import Mapped, mapped_column

from perpsignal_common.db.base import Base, TimestampMixin


class KnownSymbol(TimestampMixin, Base):
    """One perpetual seen on a venue; `announce` marks those that get a listing event."""

    __tablename__ = "known_symbols"

    venue: Mapped[str] = mapped_column(String(32), primary_key=True)
    symbol: Mapped[str] = mapped_column(String(64), primary_key=True)
    base_asset: Mapped[str] = mapped_column(String(32), nullable=False)
    quote_asset: Mapped[str] = mapped_column(String(16), nullable=False)
    onboard_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    first_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    announce: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    announced_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
