"""The liquidation-id dedupe under a flood of unique ids: bounded, oldest forgotten first.

Every order and bucket a symbol's ledger records is remembered by its identity, so a
redelivery (a rewind after a rebalance, a relay repeating itself) counts once. The memory
is bounded: past `LIQUIDATION_IDS_KEPT` the oldest identity is forgotten (redeliveries come
soon after the original). That used to be a dict evicted with `next(iter(ids))`: CPython
keeps a deleted entry's slot until the dict's next resize and iteration walks over those
slots from the front, so once full every eviction rescanned the ones evicted before it,
and a flood of unique ids (a liquidation cascade, a misbehaving relay) cost several times
more per order than filling the ledger did. That cost is a speed figure, so no test times it
(timed tests flake on a shared machine); this one holds the behaviour `RecentKeys` keeps.
"""

from __future__ import annotations

from perpsignal_domain.scoring.state import LIQUIDATION_IDS_KEPT, LiquidationLedger


def _order(ledger: LiquidationLedger, i: int) -> bool:
    return ledger.add_order(("binance", "BTCUSDT", "LONG", i), "binance", "binance", i, 1.0, 0.0)


def test_the_ids_are_bounded_and_the_oldest_is_forgotten_first() -> None:
    ledger = LiquidationLedger()
    for i in range(LIQUIDATION_IDS_KEPT + 10):
        assert _order(ledger, i)
    # the ten oldest are forgotten: delivered again, they count again (and push out the
    # next ten oldest); everything newer is still remembered
    assert [_order(ledger, i) for i in range(10)] == [True] * 10
    assert not any(_order(ledger, i) for i in range(20, LIQUIDATION_IDS_KEPT + 10))
    assert [_order(ledger, i) for i in (10, 19)] == [True, True]
