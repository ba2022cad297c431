"""Notifier metrics: Telegram sends by outcome, retries by reason, suppressed alerts.

Labels are bounded (outcomes, retry reasons and suppression reasons are closed sets, alert
kinds are signal/mss/listing); never chat ids or symbols.
"""

from __future__ import annotations

from prometheus_client import Counter

SENDS = Counter(
    "perpsignal_notifier_sends_total",
    "Alert deliveries per (alert, chat), by kind and outcome "
    "(sent, already_sent, uncertain, blocked, migrated, failed)",
    ["kind", "outcome"],
)
RETRIES = Counter(
    "perpsignal_notifier_send_retries_total",
    "Telegram sendMessage attempts retried, by reason (retry_after, server, network)",
    ["reason"],
)
SUPPRESSED = Counter(
    "perpsignal_notifier_suppressed_total",
    "Alerts not sent because a filter or the cooldown held them back, by reason",
    ["reason"],
)
CHAT_MIGRATIONS = Counter(
    "perpsignal_notifier_chat_migrations_total",
    "Groups that became supergroups and were followed to their new chat id",
)
COMMAND_REPLIES_SKIPPED = Counter(
    "perpsignal_notifier_command_replies_skipped_total",
    "Bot command replies not sent because the chat was over its share of the rate limits",
)
