"""CoinGecko markets → CoinProfileV1 keyed `<SYMBOL>USDT` (the Binance-style symbol)."""

from __future__ import annotations

from datetime import UTC

from perpsignal_common.events.market import CoinProfileV1
from perpsignal_connectors.coingecko.constants import VENDOR
from perpsignal_connectors.coingecko.schemas import CoinMarket
from perpsignal_connectors.ids import event_id


def parse_coins_markets(
    rows: list[CoinMarket], categories: tuple[str, ...] = ()
) -> list[CoinProfileV1]:
    """Return a profile per coin with a `last_updated` time (without it there is no fact time)."""
    out = []
    for r in rows:
        if r.last_updated is None:
            continue
        observed = r.last_updated.astimezone(UTC)
        symbol = f"{r.symbol.upper()}USDT"
        out.append(
            CoinProfileV1(
                event_id=event_id(VENDOR, "market.coin_profile", symbol, observed, r.id),
                source=VENDOR,
                venue=VENDOR,
                symbol=symbol,
                observed_at=observed,
                coin_id=r.id,
                name=r.name,
                market_cap=r.market_cap,
                fdv=r.fully_diluted_valuation,
                circulating_supply=r.circulating_supply,
                total_supply=r.total_supply,
                max_supply=r.max_supply,
                volume_24h=r.total_volume,
                price=r.current_price,
                market_cap_rank=r.market_cap_rank,
                categories=categories,
            )
        )
    return out
