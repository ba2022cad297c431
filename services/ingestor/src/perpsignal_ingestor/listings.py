"""New-listings monitor: diff exchangeInfo against the persisted set of known perpetuals.

* Every poll reads exchangeInfo (weight 1) and refreshes the universe.
* A perpetual absent from `known_symbols` is inserted; on a normal run it is announced once
  with a `ListingDetectedV1` (onboard time, detection latency, first 24h stats when the
  ticker already has them).
* First run (empty table for the venue): the whole current set is stored WITHOUT being
  announced — a fresh deployment must not flood subscribers with years-old symbols — except
  perpetuals whose `onboardDate` is within `bootstrap_window_s`, which a newly started
  system would otherwise miss for good.
* Announcing is at-least-once: the row is committed first with `announce=true`, the event
  is published and acknowledged, then `announced_at` is set. A crash in between re-sends the
  same event (same deterministic `event_id`); a restart or a re-sync never re-announces an
  announced or seeded symbol.
* `detection_latency_s` = first seen - onboard time; negative when Binance lists a
  perpetual before trading opens (announced ahead of the launch).
* A perpetual whose onboard date the event cannot carry (more than 30 days ahead, e.g.
  Binance's 2100 placeholder, or beyond year 9999) is not recorded yet: it is recorded and
  announced once exchangeInfo gives it an acceptable date, and it never holds up another
  listing. The 24h stats are optional: values the contract refuses drop the stats only.
* A perpetual whose name the event or the table cannot carry (a symbol the contract refuses:
  a space, a bidi control, NUL, longer than 64 characters; a base or quote asset longer than
  its column) is never recorded: one warning names it, and it holds up no other listing.
* More than `MAX_NEW_AT_ONCE` new perpetuals in one answer (after the first run) is a broken
  or hostile exchangeInfo: they are recorded without being announced, with one warning.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from perpsignal_common.db.engine import session_scope
from perpsignal_common.db.models.ingestor import KnownSymbol
from perpsignal_common.events.base import Event
from perpsignal_common.events.market import ListingDetectedV1
from perpsignal_common.events.values import ScheduledTime, Symbol
from perpsignal_connectors.binance_usdm.http import BinanceUsdmHttp
from perpsignal_connectors.binance_usdm.schemas import SymbolInfo
from perpsignal_connectors.ids import event_id, ms_to_dt
from perpsignal_ingestor.publisher import Publisher, refusal_reason
from perpsignal_ingestor.universe import Universe

log = logging.getLogger(__name__)
VENUE = "binance"
_SCHEDULED: TypeAdapter[datetime] = TypeAdapter(ScheduledTime)
# new perpetuals in one exchangeInfo beyond which none is announced (Binance lists a few a
# day; thousands at once is a broken or hostile answer, not thousands of alerts to send)
MAX_NEW_AT_ONCE = 20
_SYMBOL: TypeAdapter[str] = TypeAdapter(Symbol)
# the widths of the table's name columns (a longer value fails the whole insert)
_WIDTHS = {
    name: KnownSymbol.__table__.c[name].type.length  # type: ignore[attr-defined]
    for name in ("symbol", "base_asset", "quote_asset")
}


def name_problem(info: SymbolInfo) -> str | None:
    """Return why a perpetual's names cannot be recorded and announced, or None."""
    for name in ("symbol", "base_asset", "quote_asset"):
        value: str = getattr(info, name)
        try:
            _SYMBOL.validate_python(value)
        except ValidationError:
            return f"{name} is not a symbol the event contract accepts"
        if len(value) > _WIDTHS[name]:
            return f"{name} is longer than {_WIDTHS[name]} characters"
    return None


def onboard_time(info: SymbolInfo) -> datetime | None:
    """Return the onboard time a listing event can carry, or None (beyond year 9999, or
    further ahead than the contract's scheduled times: not a date to record yet)."""
    try:
        return _SCHEDULED.validate_python(ms_to_dt(info.onboard_date_ms or 0))
    except (ValueError, OverflowError, OSError):  # ValidationError is a ValueError
        return None


def listing_event(row: KnownSymbol, universe: Universe) -> ListingDetectedV1:
    """Build the (deterministic) listing event of a known-symbols row; 24h stats the
    contract refuses (a NaN, a negative price) are left out rather than the listing."""
    try:
        return _listing_event(row, universe, with_stats=True)
    except ValidationError:
        return _listing_event(row, universe, with_stats=False)


def _listing_event(row: KnownSymbol, universe: Universe, with_stats: bool) -> ListingDetectedV1:
    ticker = universe.tickers.get(row.symbol) if with_stats else None
    return ListingDetectedV1(
        event_id=event_id(VENUE, "listing.new", row.symbol, row.onboard_at),
        source=VENUE,
        venue=VENUE,
        symbol=row.symbol,
        observed_at=row.onboard_at,
        base_asset=row.base_asset,
        quote_asset=row.quote_asset,
        onboard_at=row.onboard_at,
        detected_at=row.first_seen_at,
        detection_latency_s=(row.first_seen_at - row.onboard_at).total_seconds(),
        last_price=ticker.last_price if ticker else None,
        price_change_pct_24h=ticker.price_change_pct if ticker else None,
        quote_volume_24h=ticker.quote_volume if ticker else None,
    )


class ListingMonitor:
    """Refresh the universe from exchangeInfo and announce genuinely new perpetuals."""

    def __init__(
        self,
        client: BinanceUsdmHttp,
        universe: Universe,
        sessions: async_sessionmaker[AsyncSession] | None,
        publisher: Publisher,
        *,
        bootstrap_window_s: float = 86_400.0,
        clock: Callable[[], float] = time.time,
        announce: Callable[[], bool] = lambda: True,
    ) -> None:
        self.client = client
        self._announce = announce
        self.universe = universe
        self.sessions = sessions
        self.publisher = publisher
        self.bootstrap_window_s = bootstrap_window_s
        self._clock = clock
        # perpetuals left unrecorded for an unusable onboard date (warned about once)
        self._undated: set[str] = set()
        # perpetuals never recorded (names the event or table cannot carry), warned about once
        self._unnamed: set[str] = set()
        # recorded rows whose event cannot be built (warned about once)
        self._stuck: set[str] = set()

    async def poll(self) -> list[Event]:
        """Read exchangeInfo, update the universe, store and announce new perpetuals."""
        info = await self.client.fetch_exchange_info()
        self.universe.update_exchange(info.symbols)
        # with several replicas only one (partition 0's owner) records and announces
        if self.sessions is None or not self._announce():
            return []
        perps = [
            s
            for s in info.symbols
            if s.contract_type == "PERPETUAL" and s.onboard_date_ms is not None
        ]
        await self._record_new(perps)
        await self._announce_pending()
        return []

    async def _record_new(self, perps: list[SymbolInfo]) -> None:
        assert self.sessions is not None
        now = datetime.fromtimestamp(self._clock(), UTC)
        async with session_scope(self.sessions) as s:
            known = set(
                (
                    await s.scalars(select(KnownSymbol.symbol).where(KnownSymbol.venue == VENUE))
                ).all()
            )
            seeding = not known
            unnamed = [(p, why) for p in perps if (why := name_problem(p)) is not None]
            refused = {p.symbol for p, _ in unnamed} | known
            dated = {p.symbol: onboard_time(p) for p in perps if p.symbol not in refused}
            new = [p for p in perps if dated.get(p.symbol) is not None]
            undated = [p for p in perps if p.symbol in dated and dated[p.symbol] is None]
            # Binance lists a few perpetuals a day: many more at once is a broken answer (or
            # a hostile one), whose symbols are recorded but never announced as listings
            flood = not seeding and len(new) > MAX_NEW_AT_ONCE
            for p in new:
                onboard = dated[p.symbol]
                assert onboard is not None
                recent = (now - onboard).total_seconds() <= self.bootstrap_window_s
                s.add(
                    KnownSymbol(
                        venue=VENUE,
                        symbol=p.symbol,
                        base_asset=p.base_asset,
                        quote_asset=p.quote_asset,
                        onboard_at=onboard,
                        first_seen_at=now,
                        announce=not flood and ((not seeding) or recent),
                    )
                )
        for p in undated:
            if p.symbol not in self._undated:
                log.warning(
                    "new perpetual not recorded yet: its onboard date is out of range",
                    extra={"venue": VENUE, "symbol": p.symbol, "onboard_ms": p.onboard_date_ms},
                )
        self._undated = {p.symbol for p in undated}
        for p, why in unnamed:
            if p.symbol not in self._unnamed:
                log.warning(
                    "perpetual not recorded: its name cannot be carried; never announced",
                    extra={"venue": VENUE, "symbol": repr(p.symbol)[:80], "reason": why},
                )
        self._unnamed = {p.symbol for p, _ in unnamed}
        if flood:
            log.warning(
                "more new perpetuals at once than Binance ever lists: recorded, not announced",
                extra={"venue": VENUE, "symbols": len(new), "max": MAX_NEW_AT_ONCE},
            )
        elif seeding and new:
            log.info(
                "listings monitor seeded the known set (not announced)",
                extra={"venue": VENUE, "symbols": len(new)},
            )
        elif new:
            log.info(
                "new perpetuals detected",
                extra={"venue": VENUE, "symbols": [p.symbol for p in new]},
            )

    async def _announce_pending(self) -> None:
        assert self.sessions is not None
        async with session_scope(self.sessions) as s:
            rows = list(
                (
                    await s.scalars(
                        select(KnownSymbol).where(
                            KnownSymbol.venue == VENUE,
                            KnownSymbol.announce.is_(True),
                            KnownSymbol.announced_at.is_(None),
                        )
                    )
                ).all()
            )
        # row by row: a row whose event cannot be built (a name recorded before names were
        # checked) is left pending with one warning, and holds up no other listing
        events, sent = [], []
        for r in rows:
            try:
                events.append(listing_event(r, self.universe))
            except ValidationError as exc:
                if r.symbol not in self._stuck:
                    self._stuck.add(r.symbol)
                    log.warning(
                        "recorded perpetual cannot be announced: its event breaks the contract",
                        extra={
                            "venue": VENUE,
                            "symbol": repr(r.symbol)[:80],
                            "error": refusal_reason(exc),
                        },
                    )
                continue
            sent.append(r.symbol)
        if not events:
            return
        # Publish and wait for the acks before marking them announced
        await self.publisher.publish("listings", events)
        async with session_scope(self.sessions) as s:
            await s.execute(
                update(KnownSymbol)
                .where(KnownSymbol.venue == VENUE, KnownSymbol.symbol.in_(sent))
                .values(announced_at=datetime.fromtimestamp(self._clock(), UTC))
            )
