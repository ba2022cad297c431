"""Binance budgets of replicas behind one IP: an even local share, and the IP-wide header
counted against a replica only beyond what the others may use."""

from __future__ import annotations

from perpsignal_connectors.binance_usdm import constants as c
from perpsignal_ingestor.budget import binance_limiter


def test_one_replica_keeps_the_whole_budget_and_the_plain_header_rule() -> None:
    limiter = binance_limiter(1200, 1, clock=lambda: 30.0)
    weight = limiter.budgets[c.WEIGHT]
    assert weight.quota.usable == 960  # 1,200 with 20 % headroom
    limiter.observe_used(c.WEIGHT, 700)
    assert weight.used == 700


def test_replicas_split_every_quota_evenly() -> None:
    whole = binance_limiter(1200, 1)
    third = binance_limiter(1200, 3)
    for name, budget in third.budgets.items():
        assert budget.quota.limit == whole.budgets[name].quota.limit // 3
    assert third.budgets[c.WEIGHT].quota.usable == 320


def test_the_ip_header_stops_a_replica_only_when_the_ip_total_is_reached() -> None:
    limiter = binance_limiter(1200, 2, clock=lambda: 30.0)
    weight = limiter.budgets[c.WEIGHT]
    assert weight.quota.usable == 480
    # the IP used 700 (us and the other replica): the other may use 480, so 220 is ours
    limiter.observe_used(c.WEIGHT, 700)
    assert weight.used == 220
    # the IP total hits 960 (the usable total): this replica's share counts as spent
    limiter.observe_used(c.WEIGHT, 960)
    assert weight.used == 480
    # the header never lowers what we counted ourselves
    limiter.observe_used(c.WEIGHT, 100)
    assert weight.used == 480
