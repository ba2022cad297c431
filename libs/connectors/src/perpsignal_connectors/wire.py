"""Value types of the vendors' wire models.

`Number` is a float read from a vendor: a decimal string or a JSON number, as pydantic reads
a float, except that a boolean is no number. Pydantic reads `true` as 1.0 and `false` as 0.0,
so a broken answer's `"lastFundingRate": true` became a 100 % funding rate and
`"markPrice": true` a mark price of 1: invented values that pass every contract bound. A
boolean is read as NaN instead, which the event contract refuses like a `"NaN"` string: the
event built from it is refused alone (one log line), the rest of its response is published.

`Int` is an integer read from a vendor (a count, a rank, a 0-100 index, an id), with the
same exception: pydantic reads `true` as 1, so a broken Fear & Greed answer's `"value": true`
was published as 1 ("Extreme Fear") and LunarCrush's `"alt_rank": true` as the best rank of
all. A boolean is refused (read as NaN, which no integer accepts).

`Blank` is an optional vendor number whose absence is sent as an empty string: Binance's
all-symbols premium index documents delivery contracts with `"lastFundingRate": ""`. It reads
as None (unknown, never zero); a required number still refuses the blank.

`UtcTime` is a vendor's ISO-8601 time, aware in UTC. CoinGecko and CoinAPI document their
times as UTC; one written without a zone was read as naive and then converted from the
machine's local time (`astimezone`), hours off on any host not set to UTC.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator


def _no_bool(value: object) -> object:
    return math.nan if isinstance(value, bool) else value


def _blank_is_none(value: object) -> object:
    return None if isinstance(value, str) and not value.strip() else value


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def check_shares(long: float, short: float, whole: float) -> None:
    """Raise ValueError unless a long and a short share add up to `whole` (1 or 100 %).

    Vendors round each to 4 digits (Binance) or 2 (Coinglass), so within 1 % of the whole.
    Shares that do not add up (0.66 and 0.0, 80 % and 80 %) are no positioning: published,
    their ratio (derived from them) said the crowd was all long or evenly split.
    """
    if not abs(long + short - whole) <= whole / 100:
        raise ValueError(f"long {long:g} and short {short:g} do not add up to {whole:g}")


Number = Annotated[float, BeforeValidator(_no_bool)]
Int = Annotated[int, BeforeValidator(_no_bool)]
UtcTime = Annotated[datetime, AfterValidator(_utc)]
Blank = Annotated[Number | None, BeforeValidator(_blank_is_none)]
