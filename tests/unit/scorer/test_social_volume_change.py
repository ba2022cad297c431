"""The social factor's volume part reads LunarCrush's 24 h social volume day over day.

LunarCrush's coins list (what the ingestor polls) gives `social_volume_24h`, never a change;
nothing published `social_volume_change_pct`, so the factor's 0.2 "social volume change"
part was always absent in production. The scorer now derives it from the coin's own
readings: the 24 h volume against the reading a day earlier. Events come from the
LunarCrush connector's parser on the recorded coins list response.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from perpsignal_common.events.factors import SocialInputs
from perpsignal_connectors.lunarcrush.parsing import parse_coins_list
from perpsignal_connectors.lunarcrush.schemas import COINS_LIST
from perpsignal_domain.scoring.config import EngineConfig
from perpsignal_domain.scoring.engine import ScoringEngine
from perpsignal_domain.scoring.factors import FACTORS, EvalContext

DAY = 86_400


def _snapshot(api: Path, shift_s: int, volume_scale: float) -> list[Any]:
    """The recorded coins list, generated `shift_s` later, BTC's social volume scaled."""
    body = json.loads((api / "lunarcrush" / "coins_list_v2.json").read_text())
    body["config"]["generated"] += shift_s
    btc = body["data"][0]
    assert btc["symbol"] == "BTC"
    btc["social_volume_24h"] *= volume_scale
    body["data"] = [btc]
    social, _ = parse_coins_list(COINS_LIST.validate_python(body))
    return social


def _social(engine: ScoringEngine, now: float) -> SocialInputs:
    st = engine.state("BTCUSDT")
    r = FACTORS["social"](st, EvalContext(now), engine.cfg)
    assert r.status == "ok", r.reason
    return SocialInputs.model_validate(r.inputs)


@pytest.mark.parametrize(("scale", "change"), [(1.5, 50.0), (0.8, -20.0), (1.0, 0.0)])
def test_volume_change_is_the_24h_volume_against_a_day_earlier(
    shared_data: Path, scale: float, change: float
) -> None:
    api = shared_data / "api"
    engine = ScoringEngine(EngineConfig())
    readings = [(0, 1.0), (DAY // 2, 1.2), (DAY, scale)]  # every 12 h
    for shift, volume in readings:
        for ev in _snapshot(api, shift, volume):
            engine.apply(ev)
    now = _snapshot(api, DAY, scale)[0].observed_at.timestamp()
    inputs = _social(engine, now)
    assert inputs.social_volume_change_pct == pytest.approx(change, abs=1e-6)


def test_no_change_before_a_day_of_readings(shared_data: Path) -> None:
    """An hour of readings: no day-over-day change yet (and too few readings to rank the
    levels): the factor stays missing rather than read an hour's move as a day's."""
    api = shared_data / "api"
    engine = ScoringEngine(EngineConfig())
    for shift in (0, 3600):
        for ev in _snapshot(api, shift, 1.0 + shift / 3600):
            engine.apply(ev)
    now = _snapshot(api, 3600, 2.0)[0].observed_at.timestamp()
    r = FACTORS["social"](engine.state("BTCUSDT"), EvalContext(now), engine.cfg)
    assert r.status == "missing"


def test_the_part_moves_the_factor(shared_data: Path) -> None:
    """Social volume up 100 % in a day is the part at full pull: +0.2 x 50 = +10 points."""
    api = shared_data / "api"
    flat, doubled = ScoringEngine(EngineConfig()), ScoringEngine(EngineConfig())
    for engine, scale in ((flat, 1.0), (doubled, 2.0)):
        for shift, volume in ((0, 1.0), (DAY, scale)):
            for ev in _snapshot(api, shift, volume):
                engine.apply(ev)
    now = _snapshot(api, DAY, 1.0)[0].observed_at.timestamp()
    scores = [
        FACTORS["social"](e.state("BTCUSDT"), EvalContext(now), e.cfg).score
        for e in (flat, doubled)
    ]
    assert scores == [50.0, 100.0]
