"""MSS counts each whale trade once, however often its record is delivered.

The scorer's group loop rewinds on every partition assignment and replays the records into
the running engine (a rebalance), and an ingestor restart re-polls CoinAPI's latest trades:
the same whale trade (same event id) reached `MssScanner` again and was counted again, so
the coin's `whale_trades_24h` (and its institutional score) grew with every redelivery.
Inputs: the recorded CoinAPI trades and CoinGecko markets bodies through their parsers.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from perpsignal_common.events.market import CoinProfileV1, WhaleTradeV1
from perpsignal_connectors.coinapi.parsing import parse_whale_trades
from perpsignal_connectors.coinapi.schemas import TRADES
from perpsignal_connectors.coingecko.parsing import parse_coins_markets
from perpsignal_connectors.coingecko.schemas import COINS_MARKETS
from perpsignal_domain.scoring.engine import ScoringEngine
from perpsignal_domain.scoring.mss import MssConfig, MssScanner, score_coin


def _whales(api: Path) -> list[WhaleTradeV1]:
    raw = json.loads((api / "coinapi" / "v1_trades_symbol_id_latest.json").read_text())
    return parse_whale_trades(TRADES.validate_python(raw), "BTCUSDT", 0.0)


def _profile(api: Path, before: WhaleTradeV1) -> CoinProfileV1:
    raw = json.loads((api / "coingecko" / "coins_markets.json").read_text())
    at = before.observed_at - timedelta(hours=1)
    raw[0]["last_updated"] = at.isoformat().replace("+00:00", "Z")
    (event,) = parse_coins_markets(COINS_MARKETS.validate_python(raw))
    return event


def test_a_redelivered_whale_trade_is_counted_once(shared_data: Path) -> None:
    api = shared_data / "api"
    whales = _whales(api)
    assert len({w.event_id for w in whales}) == len(whales) >= 2
    engine = ScoringEngine()
    engine.mss = MssScanner(MssConfig(threshold=0.0))
    engine.apply(_profile(api, min(whales, key=lambda w: w.observed_at)))
    now = max(w.observed_at for w in whales).timestamp() + 60

    def counted() -> object:
        _, _, _, institutional = score_coin(engine.mss.coins["BTC"], now, engine.mss.cfg)
        return institutional[1]["whale_trades_24h"]

    for w in whales:
        engine.apply(w)
    once = counted()
    assert once == len(whales)
    for w in [*whales, *reversed(whales)]:  # a rewind replays them; a re-poll sends them again
        engine.apply(w)
    assert counted() == once
