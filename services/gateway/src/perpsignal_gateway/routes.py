"""HTTP and WebSocket routes: thin adapters over `Platform` and the `/invoke` registry."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Body, Depends, Path, Query, Request, WebSocket
from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from perpsignal_common.db import analytics
from perpsignal_gateway import args as a
from perpsignal_gateway.errors import ApiError, known_query_only
from perpsignal_gateway.operations import RawJson, Registry
from perpsignal_gateway.platform import Platform
from perpsignal_gateway.research import SignalResearch
from perpsignal_gateway.schemas import (
    ApiModel,
    ErrorBody,
    LiquidationList,
    ListingList,
    MarketOut,
    MssList,
    SignalList,
    SignalOut,
    SmcResponse,
    TrackingAccepted,
    served_as,
)
from perpsignal_gateway.security import IDENT_STATE
from perpsignal_gateway.streams import StreamHub, SubscriptionRefused, parse_subscription
from perpsignal_gateway.symbols import PathSymbol
from perpsignal_gateway.tickets import TicketBook

router = APIRouter(dependencies=[Depends(known_query_only)])

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "Missing or invalid API key"},
    422: {"model": ErrorBody, "description": "Invalid arguments, one entry per field"},
    429: {"model": ErrorBody, "description": "Rate limited; see Retry-After"},
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorBody, "description": "Unknown"}}
# whether an untracked symbol is listed is asked of the venue: its outage is a 503
UNAVAILABLE: dict[int | str, dict[str, Any]] = {
    503: {
        "model": ErrorBody,
        "description": "The venue's symbol list or a platform dependency is unavailable; "
        "see Retry-After",
    }
}
ON_DEMAND: dict[int | str, dict[str, Any]] = {
    202: {"model": TrackingAccepted, "description": "Tracking requested; retry later"},
    **NOT_FOUND,
    **UNAVAILABLE,
}
DB: dict[int | str, dict[str, Any]] = {503: {"model": ErrorBody, "description": "DB down"}}


# async on purpose: FastAPI runs sync dependencies in a thread pool (a hop per request)
async def platform(request: Request) -> Platform:
    return request.app.state.platform  # type: ignore[no-any-return]


async def registry(request: Request) -> Registry:
    return request.app.state.registry  # type: ignore[no-any-return]


SymbolPath = Annotated[PathSymbol, Path(examples=["BTC"])]
PlatformDep = Annotated[Platform, Depends(platform)]
RegistryDep = Annotated[Registry, Depends(registry)]


def json_response(model: Any, status: int = 200) -> Response:
    """Render a model (or plain data) as camelCase JSON."""
    if isinstance(model, BaseModel):
        data = model.model_dump(mode="json", by_alias=True)
    else:
        data = jsonable_encoder(model, by_alias=True)
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


# signals -------------------------------------------------------------------------------------


@router.get(
    "/signals/{symbol}",
    response_model=SignalOut,
    responses={**ERRORS, **ON_DEMAND},
    operation_id="getSignal",
    summary="Latest judged signal of a symbol",
    description="Signal, score, top factors and the AI verdict layer with its trade plan. "
    "Accepts BTC, btc, BTCUSDT or 币安人生USDT. An untracked listed symbol is analysed on demand "
    "(202 + Retry-After when not ready). debug=true adds raw metrics and factor inputs.",
    tags=["signals"],
)
async def get_signal(symbol: SymbolPath, request: Request, debug: bool = False) -> Response:
    p: Platform = request.app.state.platform  # no Depends on the hot path: it costs a solve
    if not debug:
        cached = p.cached_signal(symbol)
        if cached is not None:  # pre-rendered at event time: the hot path serialises nothing
            return Response(cached, media_type="application/json")
    return json_response(await p.get_signal(a.SignalArgs(symbol=symbol, debug=debug)))


@router.get(
    "/signals",
    response_model=SignalList,
    responses=ERRORS,
    operation_id="listSignals",
    summary="Latest signals with filters",
    description="Latest signal per symbol, highest score first; filter by direction, verdict "
    "and minimum score.",
    tags=["signals"],
)
async def list_signals(q: Annotated[a.SignalsQuery, Query()], p: PlatformDep) -> Response:
    return json_response(p.list_signals(q))


@router.get(
    "/smc/{symbol}",
    response_model=SmcResponse,
    responses={**ERRORS, **NOT_FOUND},
    operation_id="getSmc",
    summary="Smart Money Concepts view of a symbol",
    description="Bias per timeframe and the last structure event (BOS/CHoCH) behind a signal.",
    tags=["signals"],
)
async def get_smc(symbol: SymbolPath, p: PlatformDep) -> Response:
    return json_response(p.get_smc(a.SymbolArgs(symbol=symbol)))


# market --------------------------------------------------------------------------------------


@router.get(
    "/market/{symbol}",
    response_model=MarketOut,
    responses={**ERRORS, **NOT_FOUND},
    operation_id="getMarket",
    summary="Latest market data of a symbol",
    description="Latest value of every market source (candles, funding, open interest, "
    "ratios, taker flow, liquidations, social) with its age in seconds.",
    tags=["market"],
)
async def get_market(symbol: SymbolPath, p: PlatformDep) -> Response:
    return json_response(p.get_market(a.SymbolArgs(symbol=symbol)))


@router.get(
    "/mss",
    response_model=MssList,
    responses=ERRORS,
    operation_id="listMss",
    summary="Emerging coins by MSS score",
    description="MSS results (discovery, social momentum, institutional validation), "
    "highest first.",
    tags=["market"],
)
async def list_mss(q: Annotated[a.MssQuery, Query()], p: PlatformDep) -> Response:
    return json_response(p.list_mss(q))


@router.get(
    "/listings/new",
    response_model=ListingList,
    responses=ERRORS,
    operation_id="listNewListings",
    summary="Newly listed perpetuals",
    description="Perpetuals detected as newly listed, newest first.",
    tags=["market"],
)
async def list_listings(q: Annotated[a.ListingsQuery, Query()], p: PlatformDep) -> Response:
    return json_response(p.list_listings(q))


@router.get(
    "/liquidations/{symbol}",
    response_model=LiquidationList,
    responses=ERRORS,
    operation_id="getLiquidations",
    summary="Recent liquidation orders of a symbol",
    description="Most recent liquidation orders (newest first) with long and short totals.",
    tags=["market"],
)
async def get_liquidations(
    symbol: SymbolPath,
    p: PlatformDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Response:
    return json_response(p.get_liquidations(a.LiquidationsArgs(symbol=symbol, limit=limit)))


# analytics -----------------------------------------------------------------------------------

_ANALYTICS_DESC = "Read from PostgreSQL; 503 when the database is down."


@router.get(
    "/analytics/verdict-performance",
    response_model=served_as(analytics.VerdictPerformance),
    responses={**ERRORS, **DB},
    operation_id="verdictPerformance",
    summary="Win rate and P&L per verdict",
    description=_ANALYTICS_DESC,
    tags=["analytics"],
)
async def verdict_performance(
    q: Annotated[a.PerformanceQuery, Query()], p: PlatformDep
) -> Response:
    return json_response(await p.analytics("verdict_performance", q))


@router.get(
    "/analytics/verdict-compare",
    response_model=served_as(analytics.VerdictCompare),
    responses={**ERRORS, **DB},
    operation_id="verdictCompare",
    summary="Verdict-filtered versus unfiltered results",
    description=_ANALYTICS_DESC,
    tags=["analytics"],
)
async def verdict_compare(q: Annotated[a.CompareQuery, Query()], p: PlatformDep) -> Response:
    return json_response(await p.analytics("verdict_compare", q))


@router.get(
    "/analytics/outcomes-history",
    response_model=served_as(analytics.OutcomesHistory),
    responses={**ERRORS, **DB},
    operation_id="outcomesHistory",
    summary="Evaluated signal outcomes",
    description=_ANALYTICS_DESC,
    tags=["analytics"],
)
async def outcomes_history(q: Annotated[a.HistoryQuery, Query()], p: PlatformDep) -> Response:
    return json_response(await p.analytics("outcomes_history", q))


@router.get(
    "/analytics/tracking-stats",
    response_model=served_as(analytics.TrackingStats),
    responses={**ERRORS, **DB},
    operation_id="trackingStats",
    summary="Tracking statistics",
    description=_ANALYTICS_DESC,
    tags=["analytics"],
)
async def tracking_stats(p: PlatformDep) -> Response:
    return json_response(await p.analytics("tracking_stats", a.NoArgs()))


@router.get(
    "/analytics/calibration",
    response_model=served_as(analytics.Calibration),
    responses={**ERRORS, **DB},
    operation_id="calibration",
    summary="Score calibration per bucket",
    description=_ANALYTICS_DESC,
    tags=["analytics"],
)
async def calibration(q: Annotated[a.CalibrationQuery, Query()], p: PlatformDep) -> Response:
    return json_response(await p.analytics("calibration", q))


@router.get(
    "/analytics/signal-research",
    response_model=SignalResearch,
    responses={**ERRORS, **DB},
    operation_id="signalResearch",
    summary="Factor information and judge lift on tracked outcomes",
    description="Per horizon: each factor's mean sub-score and information coefficient with a "
    "95 % interval, and CONFIRM - SKIP / CONFIRM - all in mean P&L and win rate with intervals "
    "(block bootstrap allowing for overlapping windows). " + _ANALYTICS_DESC,
    tags=["analytics"],
)
async def signal_research(q: Annotated[a.ResearchQuery, Query()], p: PlatformDep) -> Response:
    return json_response(await p.signal_research(q))


# GPT-facing (flat parameters) ------------------------------------------------------------------


@router.post(
    "/gpt/signal",
    response_model=SignalOut,
    responses={**ERRORS, **ON_DEMAND},
    operation_id="gptSignal",
    summary="Signal of a symbol (flat body)",
    description="Same as GET /signals/{symbol} with a flat JSON body: {symbol, debug}.",
    tags=["gpt"],
)
async def gpt_signal(body: a.SignalBody, p: PlatformDep) -> Response:
    return json_response(await p.get_signal(body))


@router.post(
    "/gpt/signals",
    response_model=SignalList,
    responses=ERRORS,
    operation_id="gptSignals",
    summary="Filtered signals (flat body)",
    description="Same as GET /signals with a flat JSON body.",
    tags=["gpt"],
)
async def gpt_signals(body: a.SignalsBody, p: PlatformDep) -> Response:
    return json_response(p.list_signals(body))


@router.post(
    "/gpt/market",
    response_model=MarketOut,
    responses={**ERRORS, **NOT_FOUND},
    operation_id="gptMarket",
    summary="Market data of a symbol (flat body)",
    description="Same as GET /market/{symbol} with a flat JSON body: {symbol}.",
    tags=["gpt"],
)
async def gpt_market(body: a.SymbolBody, p: PlatformDep) -> Response:
    return json_response(p.get_market(body))


@router.post(
    "/judge/validate",
    response_model=SignalOut,
    responses={
        **ERRORS,
        **NOT_FOUND,
        **UNAVAILABLE,
        409: {"model": ErrorBody, "description": "No market context yet; tracking requested"},
        504: {"model": ErrorBody, "description": "Judge timeout"},
    },
    operation_id="validateSignal",
    summary="Judge a caller-supplied signal",
    description="Send a signal (symbol, direction, optional score and levels); the judge "
    "answers with the verdict layer and trade plan against the symbol's market context. An "
    "untracked symbol is tracked first: 409 + Retry-After until its context exists; 504 if "
    "the judge does not answer in time.",
    tags=["gpt"],
)
async def validate(body: a.ValidateBody, p: PlatformDep) -> Response:
    return json_response(await p.validate(body))


# RPC -----------------------------------------------------------------------------------------


class InvokeBody(ApiModel):
    """`{"operation": "...", "args": {...}}`, or the arguments flat at the root."""

    model_config = ConfigDict(extra="allow")
    operation: str = Field(min_length=1, max_length=200, examples=["list_signals"])
    # absent = the arguments are flat; never null (the schema says object)
    args: dict[str, Any] = Field(default_factory=dict, examples=[{"limit": 10}])


class InvokeResult(ApiModel):
    operation: str
    result: Any


class OperationInfo(ApiModel):
    name: str
    kind: str
    description: str
    parameters: dict[str, Any]


class OperationList(ApiModel):
    count: int
    operations: list[OperationInfo]


@router.post(
    "/invoke",
    response_model=InvokeResult,
    responses={
        **ERRORS,
        202: {
            "model": TrackingAccepted,
            "description": "get_signal of an untracked symbol: tracking requested; retry later",
        },
        400: {
            "model": ErrorBody,
            "description": "A vendor refused the request (vendor_rejected; its answer in "
            "details), or the body could not be decoded: bytes that are no UTF-8 text",
        },
        404: {"model": ErrorBody, "description": "Unknown operation, with the closest names"},
        409: {
            "model": ErrorBody,
            "description": "validate_signal: no market context yet; tracking requested",
        },
        502: {"model": ErrorBody, "description": "Vendor failed"},
        503: {"model": ErrorBody, "description": "Vendor key missing or dependency down"},
        504: {"model": ErrorBody, "description": "Vendor or judge timeout"},
    },
    operation_id="invokeOperation",
    summary="Invoke any operation by name",
    description="Run a platform operation or a vendor pass-through (see GET /invoke/operations)"
    ". Body: {operation, args} or the arguments flat next to operation.",
    tags=["rpc"],
)
async def invoke(request: Request, body: Annotated[InvokeBody, Body()]) -> Response:
    reg: Registry = request.app.state.registry
    extra = body.model_extra or {}
    given = "args" in body.model_fields_set
    if given and extra:
        raise ApiError(
            422,
            "invalid_arguments",
            "give arguments either in args or flat, not both",
            [{"field": k, "message": "unexpected next to args", "type": "extra"} for k in extra],
        )
    raw = body.args if given else dict(extra)
    result = await reg.invoke(body.operation, raw)
    if isinstance(result, RawJson):
        op = orjson.dumps(body.operation)
        content = b'{"operation":' + op + b',"result":' + result.body + b"}"
        return Response(content, media_type="application/json")
    return json_response(InvokeResult(operation=body.operation, result=_plain(result)))


def _plain(result: Any) -> Any:
    if isinstance(result, BaseModel):
        return result.model_dump(mode="json", by_alias=True)
    return result


@router.get(
    "/invoke/operations",
    response_model=OperationList,
    responses=ERRORS,
    operation_id="listOperations",
    summary="Every invokable operation with its parameter schema",
    description="Platform operations and vendor pass-throughs, each with a JSON Schema of its "
    "arguments. Filter with kind (platform/vendor) or a name prefix.",
    tags=["rpc"],
)
async def list_operations(
    reg: RegistryDep,
    kind: Annotated[str | None, Query(pattern="^(platform|vendor)$")] = None,
    prefix: Annotated[str | None, Query(pattern=r"^[A-Za-z][A-Za-z0-9_.]{0,99}$")] = None,
) -> Response:
    ops = [
        OperationInfo(
            name=op.name, kind=op.kind, description=op.description, parameters=op.params_schema()
        )
        for op in reg.operations.values()
        if (kind is None or op.kind == kind) and (prefix is None or op.name.startswith(prefix))
    ]
    return json_response(OperationList(count=len(ops), operations=ops))


# WebSockets ----------------------------------------------------------------------------------


class WsTicket(ApiModel):
    ticket: str = Field(description="Pass as ?ticket= when opening a WebSocket; single use")
    expires_in_s: float


@router.post(
    "/ws/ticket",
    response_model=WsTicket,
    responses=ERRORS,
    operation_id="wsTicket",
    summary="A short-lived ticket to open a WebSocket",
    description="Browsers cannot send X-API-Key on a WebSocket: fetch a ticket with the "
    "header, then open /ws/signals?ticket=... within its lifetime (single use).",
    tags=["streams"],
)
async def ws_ticket(request: Request) -> Response:
    tickets: TicketBook = request.app.state.tickets
    ident = request.scope.get("state", {}).get(IDENT_STATE, "anonymous")
    body = WsTicket(ticket=tickets.issue(ident), expires_in_s=tickets.ttl_s)
    response = json_response(body)
    response.headers["Cache-Control"] = "no-store"
    return response


@router.websocket("/ws/signals")
async def ws_signals(ws: WebSocket) -> None:
    await _stream(ws, "signals")


@router.websocket("/ws/liquidations")
async def ws_liquidations(ws: WebSocket) -> None:
    await _stream(ws, "liquidations")


async def _stream(ws: WebSocket, stream: str) -> None:
    hub: StreamHub = ws.app.state.hub
    ident = ws.scope.get("state", {}).get(IDENT_STATE, "anonymous")
    raw: dict[str, object] = dict(ws.query_params)  # one value per name: the last
    for name in ("symbols", "verdicts"):
        # ?symbols=BTC&symbols=ETH (how most HTTP clients send a list) means both, not ETH
        raw[name] = ",".join(ws.query_params.getlist(name))
    try:
        sub = parse_subscription(raw)
    except SubscriptionRefused as exc:  # a browser sees a close code, never a status
        await ws.accept()
        await ws.close(exc.code, str(exc))
        return
    await hub.serve(ws, stream, sub, ident)
