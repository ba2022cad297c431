"""Fear & Greed → FearGreedV1 on `perpsignal.market.global.v1`, keyed `fear_greed`."""

from __future__ import annotations

from perpsignal_common.events.market import FearGreedV1
from perpsignal_connectors.alternative_me.constants import VENDOR
from perpsignal_connectors.alternative_me.schemas import FngResponse
from perpsignal_connectors.ids import event_id, s_to_dt

KEY = "fear_greed"


def parse_fng(body: FngResponse) -> list[FearGreedV1]:
    """Return one event per daily value, oldest first."""
    out = []
    for row in sorted(body.data, key=lambda r: r.timestamp):
        observed = s_to_dt(row.timestamp)
        out.append(
            FearGreedV1(
                event_id=event_id(VENDOR, "global.fear_greed", KEY, observed),
                source=VENDOR,
                symbol=KEY,
                observed_at=observed,
                value=row.value,
                classification=row.value_classification,
            )
        )
    return out
