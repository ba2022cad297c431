"""PostgreSQL access of the notifier: chats, subscriptions, the ledger and symbol state.

Each method is one short transaction (`session_scope`), so a database outage surfaces as
`DependencyUnavailable` and the consumer loop retries without committing the offset.

The three ledger statements run on every message, so they use a small asyncpg pool directly:
one autocommit round trip each, about 0.1 ms of CPU instead of about 1 ms through the ORM
session on the reference machine (bench/notifier_throughput.py). The SQL is fixed text.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg
from sqlalchemy import delete, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from perpsignal_common.db.engine import client_timeout_s, create_sessionmaker, session_scope
from perpsignal_common.db.models.notifier import (
    NotifierChat,
    NotifierDelivery,
    NotifierSubscription,
    NotifierSymbolState,
)
from perpsignal_common.db.url import parse_database_url
from perpsignal_common.errors import DependencyUnavailable
from perpsignal_common.events.base import utcnow
from perpsignal_common.events.signals import SignalJudgedV1
from perpsignal_notifier.filters import ALL, covered_assets, subscription_keys


@dataclass(frozen=True)
class ChatInfo:
    """What `/status` shows about a chat."""

    chat_id: int
    muted: bool
    blocked: bool
    subscriptions: tuple[tuple[str, float | None], ...]


@dataclass(frozen=True)
class AlertState:
    """The last alert of a symbol (cooldown input)."""

    event_id: str | None
    at: datetime | None
    call: str | None = None  # "LONG:WAIT" (a signal alert's direction and verdict)


# the snapshot of the outer select predates the upsert: `current` is the status that blocked it
BEGIN_SEND_SQL = """
with up as (
    insert into notifier_deliveries as d (event_id, chat_id, kind, symbol, status, attempts,
                                          updated_at)
    values ($1, $2, $3, $4, 'sending', 1, now())
    on conflict (event_id, chat_id) do update set status = 'sending', updated_at = now()
    where d.status = any($5::text[])
    returning 1
)
select exists(select 1 from up) as taken,
       (select status from notifier_deliveries where event_id = $1 and chat_id = $2) as current
"""
SET_STATUS_SQL = """
update notifier_deliveries
set status = $3, updated_at = now(), message_id = coalesce($4, message_id),
    error = coalesce($5, error), attempts = coalesce($6, attempts)
where event_id = $1 and chat_id = $2
"""
LEDGER_DOWN = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
)


class NotifierRepository:
    """Every query the notifier makes; the notifier is the only writer of these tables."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        statement_timeout_ms: int = 5_000,
        database_url: str | None = None,
    ) -> None:
        self._sessions: async_sessionmaker[AsyncSession] = create_sessionmaker(engine)
        # the configured URL carries TLS / pooler parameters the engine's URL no longer has
        self._target = parse_database_url(
            database_url
            or engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        )
        self._pool_size = max(2, engine.pool.size() if hasattr(engine.pool, "size") else 5)
        self._timeout_ms = statement_timeout_ms
        self._pool: asyncpg.Pool | None = None
        self._pool_lock = asyncio.Lock()

    async def close(self) -> None:
        """Close the ledger pool (the engine is closed by its owner)."""
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    @contextlib.asynccontextmanager
    async def _ledger(self) -> AsyncIterator[asyncpg.Connection]:
        try:
            if self._pool is None:
                async with self._pool_lock:
                    if self._pool is None:
                        self._pool = await asyncpg.create_pool(
                            self._target.dsn,
                            min_size=1,
                            max_size=self._pool_size,
                            # a server that stops answering (no RST) fails the call, not hangs it
                            command_timeout=client_timeout_s(self._timeout_ms),
                            **self._target.asyncpg_kwargs(
                                {"statement_timeout": str(self._timeout_ms)}
                            ),
                        )
            async with self._pool.acquire() as conn:
                yield conn
        except LEDGER_DOWN as exc:
            raise DependencyUnavailable(f"database unavailable: {type(exc).__name__}") from exc

    # chats and subscriptions

    async def ensure_chat(
        self, chat_id: int, kind: str = "unknown", title: str | None = None
    ) -> None:
        """Create the chat row, or refresh its kind and title; a chat that writes is unblocked."""
        async with session_scope(self._sessions) as s:
            stmt = insert(NotifierChat).values(chat_id=chat_id, kind=kind, title=title, muted=False)
            await s.execute(
                stmt.on_conflict_do_update(
                    index_elements=[NotifierChat.chat_id],
                    set_={"kind": kind, "title": title, "blocked_at": None, "blocked_reason": None},
                )
            )

    async def set_muted(self, chat_id: int, muted: bool) -> None:
        """Mute or unmute every alert of a chat."""
        await self.ensure_chat_exists(chat_id)
        async with session_scope(self._sessions) as s:
            await s.execute(
                update(NotifierChat).where(NotifierChat.chat_id == chat_id).values(muted=muted)
            )

    async def ensure_chat_exists(self, chat_id: int) -> None:
        """Create a bare chat row when missing (configured chats, first command)."""
        async with session_scope(self._sessions) as s:
            await s.execute(
                insert(NotifierChat)
                .values(chat_id=chat_id, kind="unknown", muted=False)
                .on_conflict_do_nothing()
            )

    async def mark_blocked(self, chat_id: int, reason: str) -> None:
        """Remember that Telegram refused this chat (403): skip it until it writes again."""
        await self.ensure_chat_exists(chat_id)
        async with session_scope(self._sessions) as s:
            await s.execute(
                update(NotifierChat)
                .where(NotifierChat.chat_id == chat_id)
                .values(blocked_at=utcnow(), blocked_reason=reason[:500])
            )

    async def migrate_chat(self, old: int, new: int) -> None:
        """Follow a group Telegram upgraded to a supergroup: its settings move to `new`.

        The new chat inherits the title, mute flag and subscriptions; the old one is kept,
        marked migrated (and so skipped), so configured chat ids that still name it are
        redirected by `targets`.
        """
        async with session_scope(self._sessions) as s:
            before = await s.get(NotifierChat, old)
            await s.execute(
                insert(NotifierChat)
                .values(
                    chat_id=new,
                    kind="supergroup",
                    title=before.title if before else None,
                    muted=bool(before and before.muted),
                )
                .on_conflict_do_nothing()
            )
            subs = await s.execute(
                select(NotifierSubscription.asset, NotifierSubscription.min_score).where(
                    NotifierSubscription.chat_id == old
                )
            )
            for asset, min_score in subs.all():
                await s.execute(
                    insert(NotifierSubscription)
                    .values(chat_id=new, asset=asset, min_score=min_score)
                    .on_conflict_do_nothing()
                )
            await s.execute(delete(NotifierSubscription).where(NotifierSubscription.chat_id == old))
            await s.execute(
                insert(NotifierChat)
                .values(chat_id=old, kind="group", muted=False)
                .on_conflict_do_nothing()
            )
            await s.execute(
                update(NotifierChat)
                .where(NotifierChat.chat_id == old)
                .values(
                    migrated_to_chat_id=new,
                    blocked_at=utcnow(),
                    blocked_reason=f"migrated to supergroup {new}",
                )
            )

    async def former_ids(self, chat_id: int) -> tuple[int, ...]:
        """Return the ids this chat had before Telegram upgraded it (group -> supergroup)."""
        async with session_scope(self._sessions) as s:
            rows = await s.execute(
                select(NotifierChat.chat_id).where(NotifierChat.migrated_to_chat_id == chat_id)
            )
            return tuple(rows.scalars().all())

    async def subscribe(self, chat_id: int, assets: Sequence[str], min_score: float | None) -> None:
        """Add or update subscriptions (`*` = everything)."""
        await self.ensure_chat_exists(chat_id)
        async with session_scope(self._sessions) as s:
            for asset in assets:
                stmt = insert(NotifierSubscription).values(
                    chat_id=chat_id, asset=asset, min_score=min_score
                )
                await s.execute(
                    stmt.on_conflict_do_update(
                        index_elements=[NotifierSubscription.chat_id, NotifierSubscription.asset],
                        set_={"min_score": min_score},
                    )
                )

    async def unsubscribe(self, chat_id: int, assets: Sequence[str] | None) -> list[str]:
        """Remove some subscriptions (or all with None); return the assets removed, sorted.

        The mirror of `subscribe` as alerts see it: a coin takes its scaled contracts'
        subscriptions with it (`PEPE` removes `1000PEPE` too), as `/subscribe PEPE` covers
        them; `1000PEPE` names that contract alone.
        """
        async with session_scope(self._sessions) as s:
            stmt = delete(NotifierSubscription).where(NotifierSubscription.chat_id == chat_id)
            if assets:
                covered = {c for a in assets for c in ([a] if a == ALL else covered_assets(a))}
                stmt = stmt.where(NotifierSubscription.asset.in_(sorted(covered)))
            result = await s.execute(stmt.returning(NotifierSubscription.asset))
            return sorted(result.scalars().all())

    async def chat_info(self, chat_id: int) -> ChatInfo:
        """Return a chat's mute/blocked flags and subscriptions."""
        async with session_scope(self._sessions) as s:
            chat = await s.get(NotifierChat, chat_id)
            rows = await s.execute(
                select(NotifierSubscription.asset, NotifierSubscription.min_score)
                .where(NotifierSubscription.chat_id == chat_id)
                .order_by(NotifierSubscription.asset)
            )
            subs = tuple((a, m) for a, m in rows.all())
        return ChatInfo(
            chat_id=chat_id,
            muted=bool(chat and chat.muted),
            blocked=bool(chat and chat.blocked_at),
            subscriptions=subs,
        )

    async def targets(
        self, asset: str, value: float | None, configured: Iterable[int]
    ) -> list[int]:
        """Return the chats that should get an alert about `asset` scoring `value`.

        Configured chats get everything; subscribers get their assets (or `*`) when `value`
        reaches their minimum; a scaled contract's alert (`1000PEPE`) reaches the coin's
        subscribers too (`PEPE`). Muted chats are left out, and so are subscribers that blocked
        the bot (their /start or /subscribe clears it); configured chats are always tried.
        """
        configured = list(configured)
        async with session_scope(self._sessions) as s:
            if configured:
                # a configured group that became a supergroup is reached under its new id
                rows = await s.execute(
                    select(NotifierChat.chat_id, NotifierChat.migrated_to_chat_id).where(
                        NotifierChat.chat_id.in_(configured),
                        NotifierChat.migrated_to_chat_id.is_not(None),
                    )
                )
                moved = {old: new for old, new in rows.all() if new is not None}
                configured = [moved.get(c, c) for c in configured]
            sub = select(NotifierSubscription.chat_id).where(
                NotifierSubscription.asset.in_([*subscription_keys(asset), ALL])
            )
            if value is not None:
                sub = sub.where(
                    or_(
                        NotifierSubscription.min_score.is_(None),
                        NotifierSubscription.min_score <= value,
                    )
                )
            subscribed = set((await s.execute(sub)).scalars().all())
            wanted = subscribed | set(configured)
            if not wanted:
                return []
            states = await s.execute(
                select(NotifierChat.chat_id, NotifierChat.muted, NotifierChat.blocked_at).where(
                    NotifierChat.chat_id.in_(wanted),
                    or_(NotifierChat.muted.is_(True), NotifierChat.blocked_at.is_not(None)),
                )
            )
            # a configured chat is tried even when it blocked the bot once: a channel never
            # sends the /start that clears the mark, and the operator asked for it by name
            keep = set(configured)
            excluded = {c for c, muted, _ in states.all() if muted or c not in keep}
            return sorted(wanted - excluded)

    # symbol state

    async def record_latest(self, event: SignalJudgedV1, asset: str) -> None:
        """Keep the newest judged signal of a symbol (older redeliveries do not overwrite)."""
        payload = event.model_dump(mode="json", exclude={"candles"})
        async with session_scope(self._sessions) as s:
            stmt = insert(NotifierSymbolState).values(
                symbol=event.symbol,
                asset=asset,
                latest_event_id=event.event_id,
                latest_observed_at=event.observed_at,
                latest_signal=payload,
            )
            await s.execute(
                stmt.on_conflict_do_update(
                    index_elements=[NotifierSymbolState.symbol],
                    set_={
                        "latest_event_id": stmt.excluded.latest_event_id,
                        "latest_observed_at": stmt.excluded.latest_observed_at,
                        "latest_signal": stmt.excluded.latest_signal,
                    },
                    where=or_(
                        NotifierSymbolState.latest_observed_at.is_(None),
                        NotifierSymbolState.latest_observed_at <= stmt.excluded.latest_observed_at,
                    ),
                )
            )

    async def covered_symbols(self, asset: str) -> list[str]:
        """Return the symbols seen so far (a judged signal) that a subscription to `asset`
        covers, e.g. `PEPEUSDT`, `1000PEPEUSDT` for `PEPE`."""
        async with session_scope(self._sessions) as s:
            rows = await s.execute(
                select(NotifierSymbolState.symbol)
                .where(
                    NotifierSymbolState.asset.in_(covered_assets(asset)),
                    NotifierSymbolState.latest_signal.is_not(None),
                )
                .order_by(NotifierSymbolState.symbol)
            )
            return list(rows.scalars().all())

    async def latest_signal(self, asset: str) -> SignalJudgedV1 | None:
        """Return the newest judged signal of any symbol with this base asset (for a coin,
        of its scaled contracts too: `/signal PEPE` shows 1000PEPEUSDT's)."""
        async with session_scope(self._sessions) as s:
            row = (
                await s.execute(
                    select(NotifierSymbolState.latest_signal)
                    .where(
                        NotifierSymbolState.asset.in_(covered_assets(asset)),
                        NotifierSymbolState.latest_signal.is_not(None),
                    )
                    .order_by(NotifierSymbolState.latest_observed_at.desc())
                    .limit(1)
                )
            ).scalar_one_or_none()
        return None if row is None else SignalJudgedV1.model_validate(row)

    async def alert_state(self, key: str) -> AlertState:
        """Return the last alert of a symbol (or `mss:<coin>`)."""
        async with session_scope(self._sessions) as s:
            row = await s.get(NotifierSymbolState, key)
        if row is None:
            return AlertState(None, None)
        return AlertState(row.last_alert_event_id, row.last_alert_at, row.last_alert_call)

    async def set_last_alert(
        self, key: str, asset: str, event_id: str, at: datetime, call: str | None = None
    ) -> None:
        """Start the cooldown of a symbol at this alert (`call`: its direction and verdict)."""
        async with session_scope(self._sessions) as s:
            values = {"last_alert_event_id": event_id, "last_alert_at": at, "last_alert_call": call}
            stmt = insert(NotifierSymbolState).values(symbol=key, asset=asset, **values)
            await s.execute(
                stmt.on_conflict_do_update(index_elements=[NotifierSymbolState.symbol], set_=values)
            )

    # sent-message ledger

    async def statuses(self, event_id: str) -> dict[int, str]:
        """Return {chat: status} already in the ledger for one event (one query per event)."""
        async with self._ledger() as conn:
            rows = await conn.fetch(
                "select chat_id, status from notifier_deliveries where event_id = $1", event_id
            )
        return {int(r["chat_id"]): str(r["status"]) for r in rows}

    async def begin_send(
        self,
        event_id: str,
        chat_id: int,
        kind: str,
        symbol: str,
        *,
        takeover: tuple[str, ...] = ("pending", "failed"),
    ) -> str | None:
        """Mark (event, chat) `sending` in one committed statement, just before the HTTP call.

        Succeeds (returns None) when the row is new or in a `takeover` status; otherwise
        returns the status that blocks the send (`sent`, `sending` from a crashed run, ...).
        """
        async with self._ledger() as conn:
            row = await conn.fetchrow(BEGIN_SEND_SQL, event_id, chat_id, kind, symbol, takeover)
        assert row is not None
        return None if row["taken"] else str(row["current"] or "pending")

    async def set_status(
        self,
        event_id: str,
        chat_id: int,
        status: str,
        *,
        message_id: int | None = None,
        error: str | None = None,
        attempts: int | None = None,
    ) -> None:
        """Move a ledger row to `status` (committed before this returns)."""
        async with self._ledger() as conn:
            await conn.execute(
                SET_STATUS_SQL,
                event_id,
                chat_id,
                status,
                message_id,
                None if error is None else error[:1000],
                attempts,
            )

    async def deliveries(self, event_id: str | None = None) -> list[NotifierDelivery]:
        """Return ledger rows (of one event, or all), for `/status` counts and tests."""
        async with session_scope(self._sessions) as s:
            stmt = select(NotifierDelivery).order_by(
                NotifierDelivery.event_id, NotifierDelivery.chat_id
            )
            if event_id is not None:
                stmt = stmt.where(NotifierDelivery.event_id == event_id)
            return list((await s.execute(stmt)).scalars().all())
