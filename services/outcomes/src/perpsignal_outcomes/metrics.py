"""Outcomes metrics. No labels: which ids collided is in the log and the dead letter."""

from __future__ import annotations

from prometheus_client import Counter

SIGNAL_ID_CONFLICTS = Counter(
    "perpsignal_outcomes_signal_id_conflicts_total",
    "Judged signals redelivered under a stored signal or event id with other content "
    "(the first one is kept; the later one is dead-lettered)",
)
