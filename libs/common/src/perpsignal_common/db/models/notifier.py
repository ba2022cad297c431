"""Notifier tables: chats, subscriptions, the sent-message ledger and per-symbol state.

Owner: the notifier service (the only writer).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, DateTime, Float, ForeignKey, Integer, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from perpsignal_common.db.base import Base, TimestampMixin


class NotifierChat(TimestampMixin, Base):
    """A Telegram chat the bot knows: muted by its members, or blocked (403) by Telegram."""

    __tablename__ = "notifier_chats"

    chat_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(16), default="unknown", nullable=False)
    title: Mapped[str | None] = mapped_column(String(256))
    muted: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    blocked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    blocked_reason: Mapped[str | None] = mapped_column(Text)
    # Telegram upgraded this group to a supergroup with a new id (TelegramMigrateToChat)
    migrated_to_chat_id: Mapped[int | None] = mapped_column(BigInteger)


class NotifierSubscription(TimestampMixin, Base):
    """A chat's interest in one base asset (`BTC`) or in everything (`*`)."""

    __tablename__ = "notifier_subscriptions"

    chat_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("notifier_chats.chat_id", ondelete="CASCADE"), primary_key=True
    )
    asset: Mapped[str] = mapped_column(String(32), primary_key=True)
    min_score: Mapped[float | None] = mapped_column(Float)


class NotifierDelivery(TimestampMixin, Base):
    """Sent-message ledger: one row per (event, chat); the exactly-once effect lives here.

    status: pending (reserved, nothing on the wire) -> sending (request may be on the wire)
    -> sent | failed (bounded retries exhausted) | blocked (chat blocked the bot) |
    uncertain (found `sending` after a crash: not resent unless configured).
    """

    __tablename__ = "notifier_deliveries"

    event_id: Mapped[str] = mapped_column(String(256), primary_key=True)  # notifier_0004
    chat_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    symbol: Mapped[str] = mapped_column(String(64), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    message_id: Mapped[int | None] = mapped_column(BigInteger)
    error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class NotifierSymbolState(Base):
    """Latest judged signal of a symbol (for `/signal`) and its last alert (for cooldown)."""

    __tablename__ = "notifier_symbol_state"

    symbol: Mapped[str] = mapped_column(String(64), primary_key=True)
    asset: Mapped[str] = mapped_column(String(32), index=True, nullable=False)
    latest_event_id: Mapped[str | None] = mapped_column(String(256))
    latest_observed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    latest_signal: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    last_alert_event_id: Mapped[str | None] = mapped_column(String(256))
    last_alert_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # "LONG:WAIT": a same-direction upgrade of the call passes the cooldown (filters.py)
    last_alert_call: Mapped[str | None] = mapped_column(String(24))
