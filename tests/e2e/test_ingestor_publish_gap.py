"""A candle whose publish failed (Kafka down at that moment) must be published later.

Found while designing the broker-outage test: `BinanceMarketPoller._klines` used to record the
fetched candle boundary before the events were acknowledged, so a candle whose publish failed
was never fetched again. The boundary now advances only when the loop reports the publish
acknowledged (`acknowledge`).
Runs in-process (no service processes): the real poller, scheduler loop and publisher against
the fake Binance serving real candle history on a fake clock.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from perpsignal_common.errors import TransientError
from perpsignal_common.events.base import Event
from perpsignal_common.events.market import CandleClosedV1
from perpsignal_common.retry import RetryPolicy
from perpsignal_connectors.binance_usdm import constants as bc
from perpsignal_connectors.binance_usdm.http import BinanceUsdmHttp
from perpsignal_connectors.ratelimit import RateLimiter
from perpsignal_ingestor.publisher import Publisher
from perpsignal_ingestor.scheduler import SourceLoop
from perpsignal_ingestor.sources.binance import BinanceMarketPoller
from perpsignal_ingestor.universe import Universe
from tests.e2e.tape import MarketTape, TapeVendors
from tests.unit.connectors.clock import FakeClock

T0 = 1_700_000_000.0 - 1_700_000_000.0 % 3600 + 10  # 10 s after an hour boundary


class FlakyProducer:
    """Kafka stand-in: acknowledges everything except while `down`."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.down = False

    async def publish(self, event: Event, **_: object) -> None:
        if self.down:
            raise TransientError("broker unavailable")
        self.events.append(event)

    async def wait_delivered(self) -> None:
        return None

    async def publish_many(self, events: Iterable[Event], **_: object) -> int:
        n = 0
        for event in events:
            await self.publish(event)
            n += 1
        return n


async def test_a_candle_that_failed_to_publish_is_published_on_a_later_poll(
    shared_data: Path,
) -> None:
    clock = FakeClock(T0)
    tape = MarketTape(shared_data / "market", clock=clock.time)
    async with TapeVendors(shared_data, tape, symbols=["BTCUSDT"], clock=clock.time) as fake:
        http = BinanceUsdmHttp(
            fake.url("binance"),
            limiter=RateLimiter(bc.quotas(1200), clock=clock.time, sleep=clock.sleep),
            retry=RetryPolicy(max_attempts=1, sleep=clock.sleep, rng=random.Random(0)),
            timeout=httpx.Timeout(5),
            clock=clock.time,
        )
        poller = BinanceMarketPoller(http, Universe(["BTCUSDT"], clock=clock.time), ["1m"],
                                     clock=clock.time)  # fmt: skip
        producer = FlakyProducer()
        loop = SourceLoop(
            "binance",
            60,
            poller.poll,
            Publisher(producer),
            on_published=poller.acknowledge,  # type: ignore[arg-type]
        )
        await loop.run_once()  # backfill up to the 10:00 close
        clock.t += 60  # the 10:01 candle closes while Kafka is down
        producer.down = True
        with pytest.raises(TransientError):
            await loop.run_once()
        producer.down = False
        clock.t += 60  # the 10:02 candle closes; Kafka is back
        await loop.run_once()
        await http.aclose()
    closes = sorted({e.observed_at for e in producer.events if isinstance(e, CandleClosedV1)})
    last_hour = int(T0 // 3600 * 3600)
    want = [datetime.fromtimestamp(last_hour + 60 * m, UTC) for m in (0, 1, 2)]
    got = [c for c in closes if c >= want[0]]
    assert got == want, f"published closes {[c.isoformat() for c in got]}"
