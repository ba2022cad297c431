"""Argument models of the platform operations, shared by REST routes, `/gpt/*` and `/invoke`."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from perpsignal_common.events.signals import Verdict
from perpsignal_common.events.values import MAX_PRICE, MIN_PRICE
from perpsignal_gateway.schemas import ApiModel
from perpsignal_gateway.symbols import BodySymbol, QuerySymbol

Direction = Literal["LONG", "SHORT", "NEUTRAL"]
VerdictName = Verdict  # the judged event's own set
Horizon = Literal["1h", "4h", "24h"]


# a query string decodes "+" to a space: 2026-01-31T00:00:00+05:30 typed into a URL arrives
# as "...00:00:00 05:30" (a space, then an offset, is nothing else a date-time can mean)
_PLUS_AS_SPACE = re.compile(r"(.*[Tt _]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?) (\d{2}(?::?\d{2})?)")


def _iso_only(value: Any) -> Any:
    # pydantic reads a number as a Unix timestamp; the schema says an ISO 8601 string
    if isinstance(value, bool | int | float) or (
        isinstance(value, str) and value.strip().lstrip("+-").replace(".", "", 1).isdigit()
    ):
        raise ValueError("must be an ISO 8601 date-time such as 2026-01-31T00:00:00Z")
    if isinstance(value, str):
        unescaped = _PLUS_AS_SPACE.fullmatch(value.strip())
        if unescaped is not None:
            return f"{unescaped[1]}+{unescaped[2]}"
    return value


# a day inside Python's calendar, in UTC: at its very ends converting an offset to UTC (the
# database driver does) or finding the next midnight (verdict performance) overflows (a 500)
_EARLIEST = datetime(1, 1, 2, tzinfo=UTC)
_LATEST = datetime(9999, 12, 30, tzinfo=UTC)


def _in_calendar(value: datetime) -> datetime:
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)  # naive = UTC
    try:
        inside = _EARLIEST <= aware <= _LATEST
    except OverflowError:
        inside = False
    if not inside:
        raise ValueError("must be between 0001-01-02 and 9999-12-30 (UTC)")
    return aware  # answers echo it: an RFC 3339 date-time has an offset


IsoDatetime = Annotated[datetime, BeforeValidator(_iso_only), AfterValidator(_in_calendar)]


class StrictArgs(ApiModel):
    """Arguments: camelCase or snake_case names, unknown names rejected (named in the 422)."""

    # NaN and Infinity (the app's JSON parser reads the literals, a query string "nan") are
    # "not a finite number", not "should be less than or equal to 100"
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class SymbolArgs(StrictArgs):
    # the path's rule (BTC/USDT and surrounding spaces too): a NUL, a bidi override or markup
    # is a 422 as in GET /signals/{symbol}, never a venue lookup and a 404 that echoes it
    symbol: BodySymbol


class SignalArgs(SymbolArgs):
    debug: bool = Field(default=False, description="Add raw metrics and factor inputs")


class SignalsQuery(StrictArgs):
    direction: Direction | None = None
    verdict: VerdictName | None = None
    min_score: float = Field(default=0, ge=0, le=100)
    limit: int = Field(default=50, ge=1, le=500)


class MssQuery(StrictArgs):
    min_score: float = Field(default=0, ge=0, le=100)
    # a name ("A", "B", ...), never a number: a query string cannot tell 5 from "5"
    tier: str | None = Field(default=None, pattern=r"^[A-Za-z][A-Za-z0-9 _-]{0,39}$")
    limit: int = Field(default=50, ge=1, le=500)


class ListingsQuery(StrictArgs):
    limit: int = Field(default=50, ge=1, le=500)
    since_hours: float | None = Field(default=None, gt=0, le=24 * 365)


class LiquidationsArgs(SymbolArgs):
    limit: int = Field(default=50, ge=1, le=500)


class ValidateArgs(SymbolArgs):
    """A caller-supplied signal to judge."""

    direction: Literal["LONG", "SHORT"]
    score: float | None = Field(default=None, ge=0, le=100)
    # the judge request's own bounds (Price): refused here, before tracking or judging
    entry_price: float | None = Field(default=None, ge=MIN_PRICE, le=MAX_PRICE)
    stop_loss_price: float | None = Field(default=None, ge=MIN_PRICE, le=MAX_PRICE)
    take_profit_price: float | None = Field(default=None, ge=MIN_PRICE, le=MAX_PRICE)


class PerformanceQuery(StrictArgs):
    horizon: Horizon | None = None
    since: IsoDatetime | None = None


class CompareQuery(StrictArgs):
    horizon: Horizon | None = None


class HistoryQuery(StrictArgs):
    # a pattern, not just a length: bytes PostgreSQL refuses (NUL) must be a 422, not a 500
    symbol: QuerySymbol | None = None
    verdict: VerdictName | None = None
    horizon: Horizon | None = None
    start: IsoDatetime | None = None
    end: IsoDatetime | None = None
    limit: int = Field(default=50, ge=1, le=500)
    offset: int = Field(default=0, ge=0, le=1_000_000)


class NoArgs(StrictArgs):
    pass


class CalibrationQuery(StrictArgs):
    horizon: Horizon = "4h"
    bucket_size: int = Field(default=10, ge=1, le=50)


class ResearchQuery(StrictArgs):
    horizon: Horizon | None = Field(default=None, description="One horizon; all when omitted")
    days: int = Field(
        default=30,
        ge=1,
        le=365,
        description="Outcomes entered in the N days up to the newest completed one",
    )
    since: IsoDatetime | None = Field(
        default=None, description="Outcomes entered at or after this time (instead of `days`)"
    )
    limit: int = Field(
        default=20_000, ge=100, le=100_000, description="At most this many newest outcomes"
    )


class ExactJsonTypes(StrictArgs):
    """A JSON body: values must have the JSON type the schema says (see `json_type_errors`)."""

    @model_validator(mode="before")
    @classmethod
    def _exact_types(cls, data: Any) -> Any:
        if isinstance(data, dict):
            errors = json_type_errors(cls, data)
            if errors:
                raise ValueError("; ".join(f"{e['field']}: {e['message']}" for e in errors))
        return data


class SignalBody(ExactJsonTypes, SignalArgs):
    pass


class SignalsBody(ExactJsonTypes, SignalsQuery):
    pass


class SymbolBody(ExactJsonTypes, SymbolArgs):
    pass


class ValidateBody(ExactJsonTypes, ValidateArgs):
    pass


def json_type_errors(model: type[BaseModel], data: Mapping[str, Any]) -> list[dict[str, str]]:
    """Return one error per value whose JSON type its field does not allow.

    Pydantic's lax mode, right for query strings, also takes `"5"` or `false` for a number
    and `0` for a boolean; a JSON body must say what its schema says. Integral floats
    (`158.0`) stay valid integers, as in JSON Schema.
    """
    fields: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        fields[name] = fields[info.alias or name] = info.annotation
    errors = []
    for key, value in data.items():
        kinds = _json_kinds(fields[key]) if key in fields and value is not None else set()
        if kinds and _json_kind(value) not in kinds:
            wanted = " or ".join(sorted(kinds))
            errors.append({"field": key, "message": f"must be {wanted}", "type": "json_type"})
    return errors


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "other"


def _json_kinds(annotation: Any) -> set[str]:
    """Return the JSON kinds a field accepts (empty = unchecked)."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _json_kinds(get_args(annotation)[0])
    if origin in (Union, UnionType):
        kinds: set[str] = set()
        for arg in get_args(annotation):
            if arg is not type(None):
                sub = _json_kinds(arg)
                if not sub:
                    return set()
                kinds |= sub
        return kinds
    if origin is Literal:
        return {_json_kind(v) for v in get_args(annotation)}
    simple = {
        bool: {"boolean"},
        int: {"integer"},
        float: {"integer", "number"},
        str: {"string"},
        datetime: {"string"},
    }
    return simple.get(annotation, set())
