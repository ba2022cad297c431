"""LunarCrush → SocialMetricsV1 and CoinProfileV1, keyed `<SYMBOL>USDT`."""

from __future__ import annotations

from perpsignal_common.events.market import CoinProfileV1, SocialMetricsV1
from perpsignal_connectors.ids import event_id, s_to_dt
from perpsignal_connectors.lunarcrush.constants import VENDOR
from perpsignal_connectors.lunarcrush.schemas import CoinSeries, CoinsList


def _symbol(coin: str) -> str:
    return f"{coin.upper()}USDT"


def parse_coins_list(body: CoinsList) -> tuple[list[SocialMetricsV1], list[CoinProfileV1]]:
    """Return social metrics and a profile per coin, observed when LunarCrush computed them."""
    observed = s_to_dt(body.config.generated)
    social, profiles = [], []
    for c in body.data:
        sym = _symbol(c.symbol)
        social.append(
            SocialMetricsV1(
                event_id=event_id(VENDOR, "market.social", sym, observed, c.id),
                source=VENDOR,
                venue=VENDOR,
                symbol=sym,
                observed_at=observed,
                galaxy_score=c.galaxy_score,
                alt_rank=c.alt_rank,
                alt_rank_previous=c.alt_rank_previous,
                sentiment=c.sentiment,
                social_volume_24h=c.social_volume_24h,
                social_dominance=c.social_dominance,
                interactions_24h=c.interactions_24h,
                market_cap=c.market_cap,
            )
        )
        cats = tuple(x for x in (c.categories or "").split(",") if x)
        profiles.append(
            CoinProfileV1(
                event_id=event_id(VENDOR, "market.coin_profile", sym, observed, c.id),
                source=VENDOR,
                venue=VENDOR,
                symbol=sym,
                observed_at=observed,
                coin_id=str(c.id),
                name=c.name,
                market_cap=c.market_cap,
                circulating_supply=c.circulating_supply,
                max_supply=c.max_supply,
                volume_24h=c.volume_24h,
                price=c.price,
                market_cap_rank=c.market_cap_rank,
                categories=cats,
            )
        )
    return social, profiles


def parse_coin_series(body: CoinSeries, coin: str | None = None) -> list[SocialMetricsV1]:
    """Return one social event per time-series bucket."""
    sym = _symbol(coin or body.config.symbol or "")
    out = []
    for p in body.data:
        observed = s_to_dt(p.time)
        out.append(
            SocialMetricsV1(
                event_id=event_id(
                    VENDOR, "market.social", sym, observed, "series", body.config.bucket
                ),
                source=VENDOR,
                venue=VENDOR,
                symbol=sym,
                observed_at=observed,
                galaxy_score=p.galaxy_score,
                alt_rank=p.alt_rank,
                sentiment=p.sentiment,
                social_dominance=p.social_dominance,
                interactions_24h=p.interactions,
                market_cap=p.market_cap,
            )
        )
    return out
