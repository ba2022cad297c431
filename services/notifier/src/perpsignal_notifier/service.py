"""The notifier service: judged signals, MSS results and listings in, Telegram messages out.

`NOTIFIER_PREVIEW=true` without a bot token shows what would be sent: every alert that passes
the filters and cooldown is logged as its Telegram HTML (and appended to
`NOTIFIER_PREVIEW_FILE`, one JSON line each, which `perpsignal demo` prints), so the alerts
can be seen without a bot.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from aiogram import Bot
from sqlalchemy.ext.asyncio import AsyncEngine

from perpsignal_common.db.engine import create_engine
from perpsignal_common.errors import PermanentError
from perpsignal_common.events.base import Event
from perpsignal_common.events.market import ListingDetectedV1
from perpsignal_common.events.signals import MssScoredV1, SignalJudgedV1
from perpsignal_common.events.topics import Topic
from perpsignal_common.kafka.consumer import ConsumerLoop, ConsumerOptions, Record
from perpsignal_common.kafka.keys import check_record_key
from perpsignal_common.observability.metrics import PIPELINE_LATENCY
from perpsignal_common.runtime import KafkaService
from perpsignal_notifier.commands import Commands
from perpsignal_notifier.delivery import Alert, Deliverer, DeliveryResult, Outcome, Sender
from perpsignal_notifier.filters import (
    FilterRules,
    alert_call,
    base_asset,
    in_cooldown,
    strength,
)
from perpsignal_notifier.filters import suppression_reason as signal_suppression
from perpsignal_notifier.metrics import SUPPRESSED
from perpsignal_notifier.ratelimit import TelegramLimits
from perpsignal_notifier.render import render_listing, render_mss, render_signal
from perpsignal_notifier.repository import NotifierRepository
from perpsignal_notifier.settings import NotifierSettings
from perpsignal_notifier.telegram import (
    BotSender,
    CommandPoller,
    build_dispatcher,
    check_token,
    create_bot,
)

log = logging.getLogger(__name__)

GROUP = "notifier"
TOPICS = (Topic.SIGNALS_JUDGED, Topic.MSS, Topic.LISTINGS)


def rules_from(settings: NotifierSettings) -> FilterRules:
    """Return the filter rules the settings describe."""
    return FilterRules(
        min_score=settings.notifier_min_score,
        min_confidence=settings.notifier_min_confidence,
        suppress_skip_avoid=settings.auto_skip_avoid_signals,
        cooldown_s=settings.notifier_cooldown_s,
        mss_min_score=settings.notifier_mss_min_score,
    )


@dataclass
class Stats:
    """Counters for `/status`-style introspection and tests (metrics carry no chat ids)."""

    sent: int = 0
    previewed: int = 0
    suppressed: dict[str, int] = field(default_factory=dict)

    def suppress(self, reason: str) -> None:
        self.suppressed[reason] = self.suppressed.get(reason, 0) + 1
        SUPPRESSED.labels(reason).inc()


class AlertHandler:
    """Turn one event into at most one message per destination chat."""

    def __init__(
        self,
        *,
        repo: NotifierRepository,
        deliverer: Deliverer | None,
        rules: FilterRules,
        configured_chats: tuple[int, ...],
        preview: Callable[[Alert], None] | None = None,
    ) -> None:
        self._repo = repo
        self._deliverer = deliverer
        self._preview = preview
        self._rules = rules
        self._configured = configured_chats
        self.stats = Stats()

    async def handle(self, event: Event, record: Record | None = None) -> None:
        """Dispatch on the event type; other types on these topics are ignored."""
        if record is not None:
            # a record under another key's partition: its cooldown and latest-signal state
            # would be updated out of its symbol's order (dead-lettered, nothing sent)
            check_record_key(event, record)
        if isinstance(event, SignalJudgedV1):
            await self.handle_signal(event)
        elif isinstance(event, MssScoredV1):
            await self.handle_mss(event)
        elif isinstance(event, ListingDetectedV1):
            await self.handle_listing(event)

    async def handle_signal(self, event: SignalJudgedV1) -> None:
        """Record the latest signal, apply the filters and cooldown, then alert."""
        asset = base_asset(event.symbol)
        # every judged signal, alerted or not: candle close -> the judge's verdict
        judged_s = (event.produced_at - event.observed_at).total_seconds()
        PIPELINE_LATENCY.labels("judged").observe(judged_s)
        await self._repo.record_latest(event, asset)
        reason = signal_suppression(event, self._rules)
        call = alert_call(event)
        if reason is None and not await self._cooldown_passed(event, event.symbol, asset, call):
            reason = "cooldown"
        if reason is not None:
            self.stats.suppress(reason)
            log.debug("signal suppressed", extra={"event_id": event.event_id, "reason": reason})
            return
        targets = await self._repo.targets(asset, strength(event), self._configured)
        alert = Alert(
            event.event_id, "signal", event.symbol, render_signal(event), event.observed_at
        )
        await self._deliver(alert, targets)

    async def handle_mss(self, event: MssScoredV1) -> None:
        """Alert an MSS result above the configured floor, once per coin per cooldown."""
        if event.mss < self._rules.mss_min_score:
            self.stats.suppress("mss_below_min")
            return
        asset = base_asset(event.coin)
        if not await self._cooldown_passed(event, f"mss:{asset}", asset):
            self.stats.suppress("cooldown")
            return
        targets = await self._repo.targets(asset, event.mss, self._configured)
        # the event's symbol (the coin, bounded by the contract; `coin` itself is not)
        await self._deliver(Alert(event.event_id, "mss", event.symbol, render_mss(event)), targets)

    async def handle_listing(self, event: ListingDetectedV1) -> None:
        """Alert a new listing (the ingestor detects each listing once)."""
        asset = base_asset(event.base_asset or event.symbol)
        targets = await self._repo.targets(asset, None, self._configured)
        alert = Alert(event.event_id, "listing", event.symbol, render_listing(event))
        await self._deliver(alert, targets)

    async def _cooldown_passed(
        self, event: Event, key: str, asset: str, call: str | None = None
    ) -> bool:
        if self._rules.cooldown_s <= 0:
            return True
        state = await self._repo.alert_state(key)
        if in_cooldown(
            event_id=event.event_id,
            observed_at=event.observed_at,
            last_alert_event_id=state.event_id,
            last_alert_at=state.at,
            cooldown_s=self._rules.cooldown_s,
            call=call,
            last_call=state.call,
        ):
            return False
        # recorded before sending, so a redelivery of this event is not in its own cooldown
        await self._repo.set_last_alert(key, asset, event.event_id, event.observed_at, call)
        return True

    async def _deliver(self, alert: Alert, targets: list[int]) -> None:
        if self._deliverer is None and self._preview is not None:
            self._preview(alert)
            self.stats.previewed += 1
            return
        if self._deliverer is None or not targets:
            return
        results = await self._deliverer.deliver(alert, targets)
        self.stats.sent += sum(r.outcome is Outcome.SENT for r in results)
        failed = [r for r in results if r.outcome is Outcome.FAILED]
        if failed:
            # every other chat got its message; the DLQ keeps the event for a replay that
            # (thanks to the ledger) retries only these chats
            raise PermanentError(_failure_reason(alert, failed))


def preview_writer(path: str) -> Callable[[Alert], None]:
    """Return a preview sink: log the alert's Telegram HTML, append it to `path` if set."""
    target = Path(path) if path else None

    def preview(alert: Alert) -> None:
        log.info(
            "alert preview (NOTIFIER_PREVIEW: not sent)",
            extra={"kind": alert.kind, "symbol": alert.symbol, "html": alert.text},
        )
        if target is not None:
            line = {"kind": alert.kind, "symbol": alert.symbol, "html": alert.text}
            with target.open("a", encoding="utf-8") as f:
                f.write(json.dumps(line, ensure_ascii=False) + "\n")

    return preview


def _failure_reason(alert: Alert, failed: list[DeliveryResult]) -> str:
    parts = "; ".join(f"chat {r.chat_id}: {r.reason}" for r in failed[:5])
    return f"{alert.kind} alert undeliverable to {len(failed)} chat(s): {parts}"


class NotifierService(KafkaService):
    """Consume the three alert topics; poll bot commands in the background."""

    def __init__(self, settings: NotifierSettings, *, sender: Sender | None = None) -> None:
        super().__init__("notifier", settings)
        self.cfg = settings
        self._engine: AsyncEngine | None = None
        self._repo: NotifierRepository | None = None
        self._bot: Bot | None = None
        self._bot_username: str | None = None
        self._sender = sender
        self.handler: AlertHandler | None = None
        self.poller: CommandPoller | None = None
        self.loops.append(
            ConsumerLoop(
                kafka=settings.kafka,
                service=self.name,
                options=ConsumerOptions(
                    group_id=GROUP,
                    topics=TOPICS,
                    handler_timeout_s=settings.notifier_handler_timeout_s,
                    concurrency=settings.notifier_concurrency,
                ),
                handler=self._handle,
                producer=self.producer,
            )
        )

    async def _handle(self, event: Event, record: Record) -> None:
        if self.handler is None:
            raise RuntimeError("notifier handler used before start")
        await self.handler.handle(event, record)

    async def start(self) -> None:
        """Check the bot token with Telegram first, then start as every service does.

        First, so a revoked token stops the start-up at once (naming TELEGRAM_BOT_TOKEN),
        before Kafka and the database are waited for.
        """
        cfg = self.cfg
        if self._sender is None and cfg.telegram_enabled and cfg.telegram_bot_token is not None:
            self._bot = create_bot(
                cfg.telegram_bot_token.get_secret_value(),
                cfg.telegram_api_base,
                cfg.telegram_request_timeout_s,
            )
            self._bot_username = await check_token(self._bot)
        await super().start()

    async def on_start(self) -> None:
        """Open the database and the Bot API client; say once when Telegram is disabled."""
        cfg = self.cfg
        self._engine = create_engine(cfg.database)
        repo = self._repo = NotifierRepository(
            self._engine,
            statement_timeout_ms=cfg.database.database_statement_timeout_ms,
            database_url=cfg.database.database_url.get_secret_value(),
        )
        rules = rules_from(cfg)
        deliverer: Deliverer | None = None
        limits: TelegramLimits | None = None
        sender = self._sender
        if sender is None and self._bot is not None:  # created and checked by start()
            sender = BotSender(self._bot)
        preview = None
        if sender is None and cfg.notifier_preview:
            preview = preview_writer(cfg.notifier_preview_file)
            log.info("Telegram preview: alerts are logged as they would be sent, not sent")
        elif sender is None:
            log.warning("Telegram disabled (no TELEGRAM_BOT_TOKEN): consuming without sending")
        else:
            limits = TelegramLimits(
                global_per_s=cfg.notifier_rate_global_per_s,
                group_per_min=cfg.notifier_rate_group_per_min,
                private_per_s=cfg.notifier_rate_private_per_s,
            )
            deliverer = Deliverer(
                repo=repo,
                send=sender,
                limits=limits,
                max_attempts=cfg.notifier_send_max_attempts,
                max_retry_after_s=cfg.notifier_max_retry_after_s,
                resend_uncertain=cfg.notifier_resend_uncertain,
            )
            log.info(
                "Telegram enabled",
                extra={
                    "api_base": cfg.telegram_api_base,
                    "chats": len(cfg.telegram_chat_ids),
                    "bot": self._bot_username,  # None: Telegram was not reachable to ask
                },
            )
        self.handler = AlertHandler(
            repo=repo,
            deliverer=deliverer,
            rules=rules,
            configured_chats=cfg.telegram_chat_ids,
            preview=preview,
        )
        if self._bot is not None and cfg.notifier_poll_commands:
            dispatcher = build_dispatcher(
                Commands(repo),
                configured_chats=cfg.telegram_chat_ids,
                rules=rules,
                admins=frozenset(cfg.telegram_admin_ids),
                limits=limits,  # the alerts' own: replies take a share of the same quotas
            )
            self.poller = CommandPoller(
                self._bot, dispatcher, poll_timeout_s=cfg.notifier_poll_timeout_s
            )
            self.tasks.append(self.poller.run)

    async def on_close(self) -> None:
        """Close the Bot API session and the database pool."""
        if self._bot is not None:
            await self._bot.session.close()
        if self._repo is not None:
            await self._repo.close()
        if self._engine is not None:
            await self._engine.dispose()
