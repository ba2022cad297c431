"""MSS cadence through the scorer service: a listing announced ahead does not move it.

A listing's `observed_at` is its onboard time, which Binance announces days ahead. The
service moved the MSS cadence to that time: with a profiled coin the scan was stamped in the
future (the contract refused the result: the record failed), and on its retry the cadence
sat days ahead, so no MSS was published until market time caught up with the launch.
Inputs: the recorded CoinGecko markets body through its parser, the ingestor's listing event.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiokafka.structs import ConsumerRecord

from perpsignal_common.db.models.ingestor import KnownSymbol
from perpsignal_common.events.base import Event
from perpsignal_common.events.market import CoinProfileV1
from perpsignal_common.events.registry import encode
from perpsignal_common.events.signals import MssScoredV1, SignalScoredV1
from perpsignal_common.events.topics import Topic
from perpsignal_connectors.coingecko.parsing import parse_coins_markets
from perpsignal_connectors.coingecko.schemas import COINS_MARKETS
from perpsignal_domain.scoring.mss import MssConfig, MssScanner
from perpsignal_ingestor.listings import listing_event
from perpsignal_ingestor.universe import Universe
from perpsignal_scorer.service import ScorerService
from perpsignal_scorer.settings import ScorerSettings
from tests.poison_helpers import binance_candles


def _profile(api: Path, at: datetime) -> CoinProfileV1:
    raw = json.loads((api / "coingecko" / "coins_markets.json").read_text())
    raw[0]["last_updated"] = at.isoformat().replace("+00:00", "Z")
    (event,) = parse_coins_markets(COINS_MARKETS.validate_python(raw))
    return event


class _Service:
    """The scorer service's market handler, with what it publishes collected."""

    def __init__(self, settings: ScorerSettings | None = None) -> None:
        self.service = ScorerService(settings or ScorerSettings(scorer_mss_threshold=0.0))
        self.service._global_ready.set()
        self.published: list[Event] = []
        self.offset = 0

        async def publish(event: Event, **_: object) -> None:
            self.published.append(event)

        self.service.producer.publish = publish  # type: ignore[method-assign]

    def record(self, event: Event, topic: str) -> ConsumerRecord[bytes, bytes]:
        """The next record of `topic` holding `event`, as the consumer hands it over."""
        self.offset += 1
        return ConsumerRecord(
            topic, 0, self.offset, 0, 0, event.partition_key(), encode(event), None, 0, 0, []
        )

    async def handle(self, event: Event, topic: str) -> None:
        await self.service.handle_market(event, self.record(event, topic))


async def test_a_listing_announced_ahead_leaves_the_mss_cadence_on_market_time(
    shared_data: Path,
) -> None:
    api = shared_data / "api"
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=6)
    row = KnownSymbol(
        venue="binance",
        symbol="NEWUSDT",
        base_asset="NEW",
        quote_asset="USDT",
        onboard_at=start + timedelta(days=10),  # announced ten days ahead
        first_seen_at=start + timedelta(minutes=30),
        announce=True,
    )
    listing = listing_event(row, Universe([]))
    assert listing.observed_at > datetime.now(UTC) + timedelta(days=9)
    svc = _Service()
    await svc.handle(_profile(api, start), Topic.MARKET)
    await svc.handle(listing, Topic.LISTINGS)
    later = _profile(api, start + timedelta(hours=2))
    await svc.handle(later, Topic.MARKET)
    mss = [e for e in svc.published if isinstance(e, MssScoredV1)]
    assert mss, "no MSS published after the listing"
    # the newest scan is the one the profile two hours later started, on market time
    interval = svc.service.engine.mss.cfg.interval_s
    newest = later.observed_at.timestamp() // interval * interval
    assert mss[-1].observed_at.timestamp() == newest
    assert all(e.observed_at <= datetime.now(UTC) for e in mss)


class _ScanFailsOnce(MssScanner):
    """The scanner with its next scan failing once: any bug or refused result after the
    engine applied the record (a stand-in, since the known causes are fixed)."""

    failed = False

    def scan(self, at: float) -> list[MssScoredV1]:
        if not self.failed:
            self.failed = True
            raise RuntimeError("scan failed")
        return super().scan(at)


async def test_a_retry_after_the_mss_scan_failed_still_publishes_the_signal(
    shared_data: Path,
) -> None:
    """The consumer retries a record whose handler raised. The handler applied the candle to
    the engine and then the MSS scan raised; the retry applied the candle again, the engine
    took it for a duplicate, and the candle's signal was never published."""
    candles = binance_candles(
        shared_data / "market" / "XRP_USDT_USDT-5m-futures.csv", "XRPUSDT", "5m", 6
    )
    svc = _Service(ScorerSettings(scorer_primary_timeframe="5m", scorer_smc_timeframes="5m"))
    svc.service.engine.mss = _ScanFailsOnce(MssConfig(threshold=0.0, interval_s=900))
    svc.service.engine.apply(_profile(shared_data / "api", candles[0].observed_at))
    failed = 0
    for c in candles:
        record = svc.record(c, Topic.MARKET)
        try:
            await svc.service.handle_market(c, record)
        except RuntimeError:
            failed += 1
            await svc.service.handle_market(c, record)  # the consumer's retry
    assert failed == 1
    signals = [e for e in svc.published if isinstance(e, SignalScoredV1)]
    assert [s.causation_id for s in signals] == [c.event_id for c in candles]
