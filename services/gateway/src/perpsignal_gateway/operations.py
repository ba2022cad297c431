"""The `/invoke` registry: every platform operation plus every vendor catalogue endpoint.

Vendor operations are generated from the catalogues (no per-endpoint code): each gets a
pydantic argument model built from its parameter spec, so bad arguments fail with the same
422 body as every other endpoint, naming each field.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from perpsignal_connectors.catalog import Endpoint, VendorCatalog
from perpsignal_gateway import args as a
from perpsignal_gateway.errors import (
    PUBLISHED_PATTERNS,
    ApiError,
    field_names,
    validation_details,
)
from perpsignal_gateway.platform import Platform
from perpsignal_gateway.symbols import PUBLISHED_ALNUM
from perpsignal_gateway.vendors import VendorClient

Handler = Callable[[BaseModel], Awaitable[Any]]
_PY_TYPES: dict[str, Any] = {"string": str, "integer": int, "number": float, "boolean": bool}
# a path parameter is one segment: no "/", "\\", "%" or "?", and it cannot start with "." (so
# never "." or ".."), which would let a caller walk out of the catalogued endpoint. Letters
# and digits of any script (a coin such as 币安人生 is sent percent-encoded), validated as
# \p{L}\p{N} (no invisible joiner or combining mark) and published, as the symbols are
# (symbols.py `_rule`), with ASCII plus the common scripts' letters and digits as plain
# characters: a `\w` is ASCII to ECMA-262, Java and Go, and `\p{L}` no Python re
PATH_PARAM_PATTERN = r"^[\p{L}\p{N}_$#@][\p{L}\p{N}_ .:@$#+~-]{0,127}$"
PY_PATH_PARAM_PATTERN = r"^[\w$#@][\w .:@$#+~-]{0,127}$"
PUBLISHED_PATH_PARAM_PATTERN = (
    f"^[{PUBLISHED_ALNUM}A-Za-z0-9_$#@][{PUBLISHED_ALNUM}A-Za-z0-9_ .:@$#+~-]{{0,127}}$"
)
PUBLISHED_PATTERNS[PATH_PARAM_PATTERN] = PUBLISHED_PATH_PARAM_PATTERN
MAX_QUERY_VALUE = 512
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


@dataclass(frozen=True)
class RawJson:
    """An already-serialised JSON result (the read model pre-renders hot answers)."""

    body: bytes


@dataclass
class Operation:
    """One invokable operation."""

    name: str
    description: str
    kind: Literal["platform", "vendor"]
    handler: Handler
    args_model_factory: Callable[[], type[BaseModel]]
    endpoint: Endpoint | None = None

    @cached_property
    def args_model(self) -> type[BaseModel]:
        return self.args_model_factory()

    def params_schema(self) -> dict[str, Any]:
        if self.endpoint is not None:
            vendor_schema: dict[str, Any] = self.endpoint.params_schema()
            for p in self.endpoint.params:
                prop = vendor_schema["properties"][p.name]
                if p.type == "string" and not p.enum:
                    if p.location == "path":
                        prop["pattern"] = PUBLISHED_PATH_PARAM_PATTERN
                    else:
                        prop["maxLength"] = MAX_QUERY_VALUE
                elif p.type == "integer":
                    prop.update(minimum=INT64_MIN, maximum=INT64_MAX)
            return vendor_schema
        schema = self.args_model.model_json_schema(by_alias=True)
        schema.pop("title", None)
        schema.setdefault("additionalProperties", False)
        return schema


def vendor_args_model(endpoint: Endpoint) -> type[BaseModel]:
    """Build the argument model of a vendor endpoint from its catalogue spec."""
    fields: dict[str, Any] = {}
    for i, p in enumerate(endpoint.params):
        py: Any = Literal[tuple(p.enum)] if p.enum else _PY_TYPES[p.type]
        limits: dict[str, Any] = {}
        if p.type == "number":
            # the app's JSON parser reads NaN and Infinity literals: no vendor means "nan"
            limits["allow_inf_nan"] = False
        elif p.type == "integer":
            # no vendor API takes an integer past 64 bits: a 4000-digit one was sent on
            limits.update(ge=INT64_MIN, le=INT64_MAX)
        if p.type == "string" and not p.enum:
            if p.location == "path":
                limits["pattern"] = PATH_PARAM_PATTERN
            else:
                limits["max_length"] = MAX_QUERY_VALUE
        if p.required:
            fields[f"p{i}"] = (py, Field(alias=p.name, **limits))
        else:
            # absent when omitted, never null: the published schema says its type only, and a
            # client that checks arguments against it sends no null (it was sent on as absent)
            fields[f"p{i}"] = (py, Field(default=None, alias=p.name, **limits))
    model: type[BaseModel] = create_model(
        "Args_" + endpoint.operation.replace(".", "_"),
        __config__=ConfigDict(extra="forbid", populate_by_name=False),
        **fields,
    )
    return model


class Registry:
    """Operation name → operation; validation and dispatch for `/invoke`."""

    def __init__(self) -> None:
        self.operations: dict[str, Operation] = {}

    def add(self, op: Operation) -> None:
        if op.name in self.operations:
            raise ValueError(f"duplicate operation {op.name}")
        self.operations[op.name] = op

    def get(self, name: str) -> Operation:
        op = self.operations.get(name)
        if op is None:
            close = difflib.get_close_matches(name, list(self.operations), n=5, cutoff=0.5)
            if not close:
                needle = name.lower().split(".")[-1]
                close = [n for n in self.operations if needle and needle in n.lower()][:5]
            raise ApiError(
                404,
                "unknown_operation",
                f"unknown operation {name!r}"
                + (f"; did you mean {', '.join(close)}?" if close else ""),
                {"operation": name, "closest": close},
            )
        return op

    def body_schema(self) -> dict[str, Any]:
        """Return the exact JSON Schema of a `/invoke` body: per operation, nested or flat.

        Which arguments are valid depends on the operation, so the body is a `oneOf` with
        two branches per operation (`{"operation", "args"}` and the arguments flat); an
        unknown operation matches none (and is answered 404).
        """
        branches: list[dict[str, Any]] = []
        for name, op in self.operations.items():
            params = op.params_schema()
            operation = {"type": "string", "const": name}
            branches.append(
                {
                    "type": "object",
                    "properties": {"operation": operation, "args": params},
                    "required": ["operation", "args"],
                    "additionalProperties": False,
                }
            )
            branches.append(
                {
                    "type": "object",
                    "properties": {"operation": operation, **params.get("properties", {})},
                    "required": ["operation", *params.get("required", [])],
                    "additionalProperties": False,
                }
            )
        return {
            "title": "InvokeBody",
            "description": '{"operation": "...", "args": {...}}, or the arguments flat next '
            "to operation; GET /invoke/operations lists every operation",
            "type": "object",
            "oneOf": branches,
        }

    def result_schema(self, paths: dict[str, Any]) -> dict[str, Any]:
        """Return the JSON Schema of a `/invoke` answer: per operation, its REST twin's.

        `paths` is the OpenAPI document's: a platform operation answers what its REST route
        documents for 200 (the same `Platform` call), so the two cannot drift apart; a vendor
        operation answers the vendor's JSON as the vendor sent it.
        """
        documented = {
            op["operationId"]: op
            for item in paths.values()
            for op in item.values()
            if isinstance(op, dict) and "operationId" in op
        }
        branches: list[dict[str, Any]] = []
        for name, op in self.operations.items():
            if op.kind != "platform":
                continue
            twin = documented[REST_TWINS[name]]
            result = twin["responses"]["200"]["content"]["application/json"]["schema"]
            branches.append(_result_branch({"type": "string", "const": name}, result))
        if any(op.kind == "vendor" for op in self.operations.values()):
            vendor = {"type": "string", "pattern": VENDOR_OPERATION_PATTERN}
            answer = {"description": "The vendor's JSON answer, as the vendor sent it"}
            branches.append(_result_branch(vendor, answer))
        return {
            "title": "InvokeResult",
            "description": "The operation's name and its answer: a platform operation answers "
            "as its REST route does (get_signal as GET /signals/{symbol}, list_signals as GET "
            "/signals, ...), a vendor operation with the vendor's JSON",
            "type": "object",
            "oneOf": branches,
        }

    async def invoke(self, name: str, raw_args: dict[str, Any]) -> Any:
        op = self.get(name)
        # every bad argument in one answer: a wrong JSON type ("5" for an integer, which
        # pydantic's lax mode takes) was left out when another argument was also refused
        wrong_types = a.json_type_errors(op.args_model, raw_args)
        try:
            parsed = op.args_model.model_validate(raw_args)
        except ValidationError as exc:
            details = validation_details(exc.errors(include_url=False), located=False)
            typed = {d["field"] for d in wrong_types}
            details = wrong_types + [d for d in details if d["field"] not in typed]
            fields = field_names(details)
            raise ApiError(
                422, "invalid_arguments", f"invalid arguments for {name}: {fields}", details
            ) from exc
        if wrong_types:
            fields = field_names(wrong_types)
            raise ApiError(
                422, "invalid_arguments", f"invalid arguments for {name}: {fields}", wrong_types
            )
        return await op.handler(parsed)


# the REST route each platform operation answers as (its operationId in the document)
REST_TWINS: dict[str, str] = {
    "get_signal": "getSignal",
    "list_signals": "listSignals",
    "get_market": "getMarket",
    "get_smc": "getSmc",
    "list_mss": "listMss",
    "list_new_listings": "listNewListings",
    "get_liquidations": "getLiquidations",
    "validate_signal": "validateSignal",
    "verdict_performance": "verdictPerformance",
    "verdict_compare": "verdictCompare",
    "outcomes_history": "outcomesHistory",
    "tracking_stats": "trackingStats",
    "calibration": "calibration",
    "signal_research": "signalResearch",
}
# vendor operations are `<vendor>.<endpoint>`; no platform operation has a dot
VENDOR_OPERATION_PATTERN = r"^[a-z][a-z0-9_]*\.[a-z0-9_]+$"


def _result_branch(operation: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"operation": operation, "result": result},
        "required": ["operation", "result"],
        "additionalProperties": False,
    }


def changes_vendor_state(endpoint: Endpoint) -> bool:
    """Return True for an endpoint that changes the operator's vendor account."""
    # e.g. LunarCrush's searches create/update/delete, all GETs: the method cannot tell
    return endpoint.method != "GET" or bool(
        re.search(r"(^|_)(create|update|delete)$", endpoint.name)
    )


def build_registry(
    platform: Platform,
    vendors: VendorClient,
    catalogs: tuple[VendorCatalog, ...],
    *,
    vendor_writes: bool = False,
) -> Registry:
    """Return the registry of platform operations and generated vendor operations.

    Vendor endpoints that change the operator's vendor account are left out unless
    `vendor_writes`: an API key lets its holder read through the operator's vendor keys,
    not edit the operator's vendor accounts.
    """
    reg = Registry()
    for name, desc, model, handler in _platform_ops(platform):
        reg.add(Operation(name, desc, "platform", handler, _const(model)))
    for catalog in catalogs:
        for ep in catalog.endpoints:
            if changes_vendor_state(ep) and not vendor_writes:
                continue
            reg.add(
                Operation(
                    ep.operation,
                    f"{catalog.title}: {ep.summary} ({ep.method} {ep.path})",
                    "vendor",
                    _vendor_handler(vendors, ep),
                    _vendor_model(ep),
                    ep,
                )
            )
    return reg


def _const(model: type[BaseModel]) -> Callable[[], type[BaseModel]]:
    return lambda: model


def _vendor_model(ep: Endpoint) -> Callable[[], type[BaseModel]]:
    return lambda: vendor_args_model(ep)


def _vendor_handler(vendors: VendorClient, ep: Endpoint) -> Handler:
    async def handler(parsed: BaseModel) -> Any:
        return await vendors.call(ep, parsed.model_dump(by_alias=True, exclude_none=True))

    return handler


def _platform_ops(p: Platform) -> list[tuple[str, str, type[BaseModel], Handler]]:
    def sync(fn: Callable[[Any], Any]) -> Handler:
        async def handler(q: BaseModel) -> Any:
            return fn(q)

        return handler

    def analytics(name: str) -> Handler:
        async def handler(q: BaseModel) -> Any:
            return await p.analytics(name, q)

        return handler

    async def research(q: BaseModel) -> Any:
        return await p.signal_research(q)  # type: ignore[arg-type]

    async def get_signal(q: BaseModel) -> Any:
        if not q.debug:  # type: ignore[attr-defined]
            cached = p.cached_signal(q.symbol)  # type: ignore[attr-defined]
            if cached is not None:
                return RawJson(cached)
        return await p.get_signal(q)  # type: ignore[arg-type]

    async def validate(q: BaseModel) -> Any:
        return await p.validate(q)  # type: ignore[arg-type]

    return [
        (
            "get_signal",
            "Latest judged signal of a symbol (tracks an untracked listed symbol on demand)",
            a.SignalArgs,
            get_signal,
        ),
        (
            "list_signals",
            "Latest signals, filtered and sorted by score",
            a.SignalsQuery,
            sync(p.list_signals),
        ),
        (
            "get_market",
            "Latest aggregated market data with per-source age",
            a.SymbolArgs,
            sync(p.get_market),
        ),
        ("get_smc", "Smart Money Concepts view of a symbol", a.SymbolArgs, sync(p.get_smc)),
        ("list_mss", "Emerging coins by MSS score", a.MssQuery, sync(p.list_mss)),
        ("list_new_listings", "Newly listed perpetuals", a.ListingsQuery, sync(p.list_listings)),
        (
            "get_liquidations",
            "Recent liquidation orders of a symbol",
            a.LiquidationsArgs,
            sync(p.get_liquidations),
        ),
        (
            "validate_signal",
            "Judge a caller-supplied signal (verdict layer and trade plan)",
            a.ValidateArgs,
            validate,
        ),
        (
            "verdict_performance",
            "Win rate and P&L per verdict",
            a.PerformanceQuery,
            analytics("verdict_performance"),
        ),
        (
            "verdict_compare",
            "Verdict-filtered versus unfiltered results",
            a.CompareQuery,
            analytics("verdict_compare"),
        ),
        (
            "outcomes_history",
            "Evaluated signal outcomes, newest first",
            a.HistoryQuery,
            analytics("outcomes_history"),
        ),
        (
            "tracking_stats",
            "How many signals are tracked and evaluated",
            a.NoArgs,
            analytics("tracking_stats"),
        ),
        (
            "calibration",
            "Score calibration: win rate per score bucket",
            a.CalibrationQuery,
            analytics("calibration"),
        ),
        (
            "signal_research",
            "Factor information (IC with interval) and judge lift on tracked outcomes",
            a.ResearchQuery,
            research,
        ),
    ]
