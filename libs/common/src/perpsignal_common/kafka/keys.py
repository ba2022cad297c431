"""The record key a consumer accepts: the event's own partition key, or none.

Per-key ordering and partitioning depend on the key. A record keyed by anything but its
event's partition key (the symbol for most events) sits in another key's partition and
lane, at an arbitrary place among that key's events: handled out of order with its own
symbol's events, and a restart's re-read may interleave it differently. Such a record is
refused as poison (dead-lettered with the reason, no effect); a record without a key is
accepted (nothing claims an order for it).
"""

from __future__ import annotations

from perpsignal_common.errors import PoisonMessage
from perpsignal_common.events.base import Event
from perpsignal_common.kafka.lanes import Record


def check_record_key(event: Event, record: Record) -> None:
    """Raise PoisonMessage when `record` is keyed by anything but `event`'s partition key."""
    key = record.key
    if key is None:
        return
    expected = event.partition_key()
    if key == expected:
        return
    if expected == event.symbol.encode():
        what, share = f"symbol {event.symbol[:80]!r}", "the symbol's events"
    else:
        what, share = (
            f"partition key {expected.decode(errors='replace')[:80]!r}",
            "events of one key",
        )
    raise PoisonMessage(
        f"record key {key.decode(errors='replace')[:80]!r} is not the event's {what}: "
        f"{share} must share one partition"
    )
