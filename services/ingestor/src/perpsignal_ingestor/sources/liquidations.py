"""Liquidation streams: relay every order to `liquidations.v1`, aggregate buckets to `market.v1`.

Buckets are fixed windows (`window_s`, aligned to the epoch) per venue and symbol; a window is
published once it has ended. Windows with no liquidation produce no bucket: the stream only
tells us what happened, and "nothing" would be a guess whenever the socket was down.

One source per venue and window: when both the venue's own stream and the Coinglass relay
report a venue's orders, the bucket sums the venue's own stream only (the relay repeats the
same orders), and the relayed orders fill a window only when the venue's stream gave none.

Kafka not acknowledging (`DependencyUnavailable`) is ridden out as the pollers do: a live
stream cannot be re-read, so unacknowledged orders and buckets are kept (`Outbox`, bounded)
and sent again with the next ones; only an outage longer than the dependency grace (120 s)
ends the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import ValidationError

from perpsignal_common.errors import DependencyUnavailable
from perpsignal_common.events.base import Event
from perpsignal_common.events.market import LiquidationBucketV1, LiquidationOrderV1
from perpsignal_connectors.ids import event_id, s_to_dt
from perpsignal_ingestor.publisher import Publisher, refuse

log = logging.getLogger(__name__)


class Outbox:
    """Publish events; keep those Kafka did not acknowledge and send them with the next ones.

    Raises `DependencyUnavailable` only once Kafka has refused for longer than `grace_s`
    (the process then exits and is restarted); at most `max_pending` events are kept.
    """

    def __init__(
        self,
        publisher: Publisher,
        source: str,
        *,
        grace_s: float = 120.0,
        max_pending: int = 50_000,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._publisher = publisher
        self._source = source
        self._grace_s = grace_s
        self._max_pending = max_pending
        self._monotonic = monotonic
        self._pending: list[Event] = []
        self._pending_ids: set[str] = set()
        self._down_since: float | None = None

    def holds(self, event_id: str) -> bool:
        """Return True when `event_id` waits for Kafka's acknowledgement here."""
        return event_id in self._pending_ids

    async def send(self, events: list[Event]) -> None:
        """Publish the kept events and `events`; keep them all when Kafka refuses."""
        batch = self._pending + events
        if not batch:
            return
        try:
            await self._publisher.publish(self._source, batch)
        except DependencyUnavailable as exc:
            now = self._monotonic()
            if self._down_since is None:
                self._down_since = now
                log.warning(
                    "events not acknowledged; sending them again with the next ones",
                    extra={"source": self._source, "error": str(exc)[:200]},
                )
            if now - self._down_since > self._grace_s:
                raise
            self._pending = batch[-self._max_pending :]
            self._pending_ids = {e.event_id for e in self._pending}
            return
        self._pending = []
        self._pending_ids = set()
        self._down_since = None


@dataclass
class _Bucket:
    long_usd: float = 0.0
    short_usd: float = 0.0
    count: int = 0


class LiquidationAggregator:
    """Sum liquidations per (venue, symbol, window) from one source and emit closed windows."""

    def __init__(
        self,
        window_s: int = 300,
        clock: Callable[[], float] = time.time,
        owns: Callable[[str], bool] = lambda _symbol: True,
        settled: Callable[[], bool] = lambda: True,
    ) -> None:
        self.window_s = window_s
        self._clock = clock
        # a symbol's bucket is published by its shard's owner at the window's end; a replica
        # that lost the symbol mid-window drops its partial sums (never two buckets, one id)
        self._owns = owns
        # False while a rebalance is in flight (the replica owns nothing for a few seconds,
        # then usually gets the same partitions back): ended windows wait for the answer, at
        # most one window, so a replica left without partitions never publishes old sums
        self._settled = settled
        # (venue, symbol, window) -> source -> sums
        self._buckets: dict[tuple[str, str, int], dict[str, _Bucket]] = defaultdict(dict)

    def add(self, order: LiquidationOrderV1) -> None:
        """Count one liquidation in its window (by exchange time)."""
        window = int(order.observed_at.timestamp() // self.window_s)
        sources = self._buckets[(order.venue, order.symbol, window)]
        b = sources.setdefault(order.source, _Bucket())
        if order.liquidated_side == "LONG":
            b.long_usd += order.notional_usd
        else:
            b.short_usd += order.notional_usd
        b.count += 1

    def flush(self) -> list[LiquidationBucketV1]:
        """Return (and forget) every bucket whose window has ended."""
        current = int(self._clock() // self.window_s)
        out = []
        settled = self._settled()
        for key in sorted(k for k in self._buckets if k[2] < current):
            venue, symbol, window = key
            if not settled and window >= current - 1:
                continue  # ended in the last window: wait for the new assignment
            sources = self._buckets.pop(key)
            if not self._owns(symbol):
                continue
            source, b = _one_source(venue, sources)
            end = s_to_dt((window + 1) * self.window_s)
            try:
                bucket = LiquidationBucketV1(
                    event_id=event_id(
                        source, "market.liquidation_bucket", symbol, end, venue, self.window_s
                    ),
                    source=source,
                    venue=venue,
                    symbol=symbol,
                    observed_at=end,
                    window_s=self.window_s,
                    long_liquidations_usd=b.long_usd,
                    short_liquidations_usd=b.short_usd,
                    count=b.count,
                )
            except ValidationError as exc:
                # orders each within the contract whose sum is not (above 1e30 USD): this
                # bucket alone is refused; raising here ended the flush task, and the service
                refuse(source, exc, f"liquidation bucket {symbol}")
                continue
            out.append(bucket)
        return out


def _one_source(venue: str, sources: dict[str, _Bucket]) -> tuple[str, _Bucket]:
    """Return the venue's own stream's sums when it reported the window, else a relay's."""
    source = venue if venue in sources else min(sources)
    return source, sources[source]


class LiquidationRelay:
    """Stream callback: publish each order at once and feed the aggregator."""

    def __init__(
        self,
        publisher: Publisher,
        aggregator: LiquidationAggregator,
        source: str,
        owns: Callable[[str], bool] = lambda _symbol: True,
        outbox: Outbox | None = None,
    ) -> None:
        self._owns = owns
        self._publisher = publisher
        self._aggregator = aggregator
        self._source = source
        self._outbox = outbox or Outbox(publisher, source)

    async def on_liquidation(self, order: LiquidationOrderV1) -> None:
        """Relay one order raw and count it in its bucket (when its symbol is our shard's)."""
        if (
            not self._owns(order.symbol)
            or self._publisher.seen(order.event_id)
            or self._outbox.holds(order.event_id)
        ):
            return
        self._aggregator.add(order)
        await self._outbox.send([order])


async def flush_loop(
    aggregator: LiquidationAggregator,
    publisher: Publisher,
    stop: asyncio.Event,
    every_s: float = 5.0,
    outbox: Outbox | None = None,
) -> None:
    """Publish closed liquidation buckets every few seconds until `stop` (then once more)."""
    outbox = outbox or Outbox(publisher, "liquidation_buckets")
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every_s)
        await outbox.send(list(aggregator.flush()))
