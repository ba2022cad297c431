"""Liquidation streams: relay every order to `liquidations.v1`, aggregate buckets to `market.v1`.

Buckets are fixed windows (`window_s`, aligned to the epoch) per venue and symbol; a window is
published once it has ended. Windows with no liquidation produce no bucket: the stream only
tells us what happened, and "nothing" would be a guess whenever the socket was down.

One source per venue and window: when both the venue's own stream and the Coinglass relay
report a venue's orders, the bucket sums the venue's own stream only (the relay repeats the
same orders), and the relayed orders fill a window only when the venue's stream gave none.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from perpsignal_common.events.market import LiquidationBucketV1, LiquidationOrderV1
from perpsignal_connectors.ids import event_id, s_to_dt
from perpsignal_ingestor.publisher import Publisher


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
    ) -> None:
        self.window_s = window_s
        self._clock = clock
        # a symbol's bucket is published by its shard's owner at the window's end; a replica
        # that lost the symbol mid-window drops its partial sums (never two buckets, one id)
        self._owns = owns
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
        for key in sorted(k for k in self._buckets if k[2] < current):
            venue, symbol, window = key
            sources = self._buckets.pop(key)
            if not self._owns(symbol):
                continue
            source, b = _one_source(venue, sources)
            end = s_to_dt((window + 1) * self.window_s)
            out.append(
                LiquidationBucketV1(
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
            )
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
    ) -> None:
        self._owns = owns
        self._publisher = publisher
        self._aggregator = aggregator
        self._source = source

    async def on_liquidation(self, order: LiquidationOrderV1) -> None:
        """Relay one order raw and count it in its bucket (when its symbol is our shard's)."""
        if not self._owns(order.symbol) or self._publisher.seen(order.event_id):
            return
        self._aggregator.add(order)
        await self._publisher.publish(self._source, [order])


async def flush_loop(
    aggregator: LiquidationAggregator,
    publisher: Publisher,
    stop: asyncio.Event,
    every_s: float = 5.0,
) -> None:
    """Publish closed liquidation buckets every few seconds until `stop` (then once more)."""
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every_s)
        await publisher.publish("liquidation_buckets", aggregator.flush())
