"""The platform operations: read-model queries, on-demand tracking, judge RPC, analytics.

REST routes, `/gpt/*` and `/invoke` all call these, so every surface answers the same way.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic.alias_generators import to_camel
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from perpsignal_common.db.engine import session_scope
from perpsignal_common.errors import DependencyUnavailable
from perpsignal_common.events.market import TrackCommandV1
from perpsignal_common.events.signals import (
    JudgeReplyV1,
    JudgeRequestV1,
    ScoredSignalFields,
    SignalJudgedV1,
)
from perpsignal_common.events.topics import Topic
from perpsignal_common.kafka.producer import EventProducer
from perpsignal_gateway import args as a
from perpsignal_gateway.errors import ApiError, field_names, validation_details
from perpsignal_gateway.readmodel import ReadModel, age_s
from perpsignal_gateway.schemas import (
    LiquidationList,
    ListingList,
    ListingOut,
    MarketOut,
    MarketSource,
    MssList,
    MssOut,
    PhaseOut,
    SignalList,
    SignalOut,
    SmcOut,
    SmcResponse,
    TrackingAccepted,
    signal_out,
)
from perpsignal_gateway.streams import liquidation_out
from perpsignal_gateway.symbols import SymbolUniverse, normalize_symbol

log = logging.getLogger(__name__)

_ENVELOPE = {
    "event_id",
    "type",
    "schema_version",
    "source",
    "symbol",
    "produced_at",
    "correlation_id",
    "causation_id",
}
_TRACK_REPEAT_S = 60.0


class Pending(Exception):
    """The answer is not ready yet: respond 202 with Retry-After."""

    def __init__(self, body: TrackingAccepted) -> None:
        super().__init__(body.message)
        self.body = body


class Platform:
    """Every platform operation over the read model, the bus and the database."""

    def __init__(
        self,
        *,
        model: ReadModel,
        producer: EventProducer | None,
        universe: SymbolUniverse,
        sessions: async_sessionmaker[AsyncSession] | None,
        on_demand_wait_s: float = 20.0,
        judge_timeout_s: float = 20.0,
    ) -> None:
        self.model = model
        self.producer = producer
        self.universe = universe
        self.sessions = sessions
        self.on_demand_wait_s = on_demand_wait_s
        self.judge_timeout_s = judge_timeout_s
        self._tracked_at: dict[str, float] = {}
        self._research: Any = None  # perpsignal_gateway.research.Research, made on first use
        self._replies: dict[str, asyncio.Future[JudgeReplyV1]] = {}
        model.reply_listeners.append(self._on_reply)

    # signals -------------------------------------------------------------------------------

    def _symbol(self, raw: str) -> str:
        return self.model.resolve_symbol(raw)

    def cached_signal(self, symbol: str) -> bytes | None:
        """Return the pre-rendered JSON of a symbol's latest signal (no debug), if any."""
        cached = self.model.signal_body(symbol)
        if cached is None:
            cached = self.model.signal_body(normalize_symbol(symbol))
        return cached

    async def get_signal(self, q: a.SignalArgs) -> SignalOut:
        symbol = self._symbol(q.symbol)
        event = self.model.signals.get(symbol) or await self._on_demand(symbol)
        return signal_out(event, debug=q.debug)

    async def _on_demand(self, symbol: str) -> SignalJudgedV1:
        event = await self._track_and_wait(symbol)
        if event is not None:
            return event
        retry = max(1, math.ceil(self.on_demand_wait_s))
        raise Pending(
            TrackingAccepted(
                symbol=symbol,
                retry_after_s=retry,
                message=f"{symbol} is being analysed for the first time; retry in {retry} s",
            )
        )

    async def _track_and_wait(self, symbol: str) -> SignalJudgedV1 | None:
        """Request tracking of a listed symbol; return its first signal if it comes soon."""
        if not await self._is_listed(symbol):
            raise ApiError(
                404,
                "unknown_symbol",
                f"{symbol} is not a listed USD-M perpetual",
                {"symbol": symbol},
            )
        await self._request_tracking(symbol)
        # the first signal may have landed while the command was being published
        return self.model.signals.get(symbol) or await self.model.wait_for_signal(
            symbol, self.on_demand_wait_s
        )

    async def _is_listed(self, symbol: str) -> bool:
        if symbol in self.model.known_symbols():
            return True
        listed = await self.universe.listed()
        return listed is not None and symbol in listed

    async def _request_tracking(self, symbol: str) -> None:
        now = time.monotonic()
        if now - self._tracked_at.get(symbol, -math.inf) < _TRACK_REPEAT_S:
            return
        if self.producer is None:
            raise DependencyUnavailable("no producer")
        command = TrackCommandV1(
            event_id=str(uuid.uuid4()),
            source="gateway",
            symbol=symbol,
            observed_at=datetime.now(UTC),
            action="track",
        )
        await self.producer.publish(command, wait=True)
        self._tracked_at[symbol] = now
        log.info("requested on-demand tracking", extra={"symbol": symbol})

    def list_signals(self, q: a.SignalsQuery) -> SignalList:
        events = [
            e
            for e in self.model.signals.values()
            if e.score >= q.min_score
            and (q.direction is None or e.direction == q.direction)
            and (q.verdict is None or e.ai_verdict_layer.verdict == q.verdict)
        ]
        # the symbol breaks ties: every replica (one restored from the snapshot too) answers
        # the same page whatever order it learnt the symbols in
        events.sort(key=lambda e: e.symbol)
        events.sort(key=lambda e: (e.score, e.observed_at), reverse=True)
        out = [signal_out(e) for e in events[: q.limit]]
        return SignalList(count=len(out), signals=out)

    def get_smc(self, q: a.SymbolArgs) -> SmcResponse:
        symbol = self._symbol(q.symbol)
        event = self.model.signals.get(symbol)
        if event is None:
            raise ApiError(404, "no_signal", f"no signal for {symbol} yet", {"symbol": symbol})
        smc = SmcOut.model_validate(event.smc.model_dump()) if event.smc else SmcOut()
        return SmcResponse(
            symbol=symbol, timestamp=event.observed_at, signal=event.direction, smc=smc
        )

    # market --------------------------------------------------------------------------------

    def get_market(self, q: a.SymbolArgs) -> MarketOut:
        symbol = self._symbol(q.symbol)
        slots = self.model.market.get(symbol)
        if not slots:
            raise ApiError(
                404, "no_market_data", f"no market data for {symbol} yet", {"symbol": symbol}
            )
        now = datetime.now(UTC)
        sources = []
        for key in sorted(slots):
            e = slots[key]
            # the event's own fields, camelCased as every REST body's (`quoteVolume24H`, as
            # the ticker fields of the signal answers)
            data = camelize(e.model_dump(mode="json", exclude=_ENVELOPE | {"observed_at", "venue"}))
            sources.append(
                MarketSource(
                    type=key.split("@")[0],
                    source=e.source,
                    venue=e.venue,
                    observed_at=e.observed_at,
                    age_s=round(age_s(e.observed_at, now), 3),
                    data=data,
                )
            )
        fg = self.model.fear_greed
        fear_greed = None
        if fg is not None:
            fear_greed = MarketSource(
                type=fg.type,
                source=fg.source,
                observed_at=fg.observed_at,
                age_s=round(age_s(fg.observed_at, now), 3),
                data={"value": fg.value, "classification": fg.classification},
            )
        return MarketOut(
            symbol=symbol,
            as_of=now,
            price=_latest_price(slots),
            sources=sources,
            fear_greed=fear_greed,
        )

    # MSS, listings, liquidations -------------------------------------------------------------

    def list_mss(self, q: a.MssQuery) -> MssList:
        rows = [
            m
            for m in self.model.mss.values()
            if m.mss >= q.min_score and (q.tier is None or m.tier.lower() == q.tier.lower())
        ]
        rows.sort(key=lambda m: m.mss, reverse=True)
        out = [
            MssOut(
                coin=m.coin,
                name=m.name,
                mss=m.mss,
                tier=m.tier,
                discovery=PhaseOut.model_validate(m.discovery.model_dump()),
                social_momentum=PhaseOut.model_validate(m.social_momentum.model_dump()),
                institutional_validation=PhaseOut.model_validate(
                    m.institutional_validation.model_dump()
                ),
                binance_symbol=m.binance_symbol,
                timestamp=m.observed_at,
            )
            for m in rows[: q.limit]
        ]
        return MssList(count=len(out), results=out)

    def list_listings(self, q: a.ListingsQuery) -> ListingList:
        rows = list(self.model.listings.values())
        if q.since_hours is not None:
            cutoff = datetime.now(UTC) - timedelta(hours=q.since_hours)
            rows = [r for r in rows if r.onboard_at >= cutoff]
        rows.sort(key=lambda r: r.onboard_at, reverse=True)
        out = [
            ListingOut.model_validate({**r.model_dump(), "symbol": r.symbol, "venue": r.venue})
            for r in rows[: q.limit]
        ]
        return ListingList(count=len(out), listings=out)

    def get_liquidations(self, q: a.LiquidationsArgs) -> LiquidationList:
        symbol = self._symbol(q.symbol)
        orders = list(self.model.liquidations.get(symbol, ()))[-q.limit :]
        orders.reverse()  # newest first
        return LiquidationList(
            symbol=symbol,
            count=len(orders),
            long_liquidations_usd=sum(
                o.notional_usd for o in orders if o.liquidated_side == "LONG"
            ),
            short_liquidations_usd=sum(
                o.notional_usd for o in orders if o.liquidated_side == "SHORT"
            ),
            orders=[liquidation_out(o) for o in orders],
        )

    # judge RPC -----------------------------------------------------------------------------

    def _on_reply(self, reply: JudgeReplyV1) -> None:
        fut = self._replies.pop(reply.correlation_id or "", None)
        if fut is not None and not fut.done():
            fut.set_result(reply)

    @staticmethod
    def _judge_request(
        q: a.ValidateArgs, symbol: str, cid: str, context: ScoredSignalFields
    ) -> JudgeRequestV1:
        return JudgeRequestV1(
            event_id=cid,
            source="gateway",
            symbol=symbol,
            observed_at=datetime.now(UTC),
            correlation_id=cid,
            reply_topic=Topic.JUDGE_REPLIES,
            direction=q.direction,
            score=q.score,
            entry_price=q.entry_price,
            stop_loss_price=q.stop_loss_price,
            take_profit_price=q.take_profit_price,
            signal=context,
        )

    async def validate(self, q: a.ValidateArgs) -> SignalOut:
        if self.producer is None:
            raise DependencyUnavailable("no producer")
        symbol = self._symbol(q.symbol)
        cid = str(uuid.uuid4())
        # the judge weighs a signal against the symbol's market context; without one it
        # could only invent it (it used to answer score 50 / confidence 0 / SKIP)
        latest = self.model.signals.get(symbol) or await self._market_context(symbol)
        fields = ScoredSignalFields.model_fields.keys()
        context = ScoredSignalFields.model_validate(latest.model_dump(include=set(fields)))
        try:
            request = self._judge_request(q, symbol, cid, context)
        except ValidationError as exc:  # a symbol or price the bus contract refuses
            details = validation_details(exc.errors())
            names = field_names(details)
            raise ApiError(
                422, "invalid_arguments", f"invalid arguments: {names}", details
            ) from exc
        fut: asyncio.Future[JudgeReplyV1] = asyncio.get_running_loop().create_future()
        self._replies[cid] = fut
        try:
            await self.producer.publish(request, wait=True)
            reply = await asyncio.wait_for(fut, self.judge_timeout_s)
        except TimeoutError as exc:
            raise ApiError(
                504,
                "judge_timeout",
                f"the judge did not answer within {self.judge_timeout_s:g} s",
                {"correlationId": cid},
            ) from exc
        finally:
            self._replies.pop(cid, None)
        if not reply.ok or reply.judged is None:
            raise ApiError(
                422,
                "judge_rejected",
                reply.error or "the judge could not judge this signal",
                {"correlationId": cid},
            )
        return signal_out(reply.judged)

    async def _market_context(self, symbol: str) -> SignalJudgedV1:
        """Return the first scored context of an untracked symbol, tracking it on demand."""
        event = await self._track_and_wait(symbol)
        if event is not None:
            return event
        retry = max(1, math.ceil(self.on_demand_wait_s))
        raise ApiError(
            409,
            "no_market_context",
            f"no market context for {symbol} yet: tracking it was requested; retry in "
            f"{retry} s (GET /signals/{symbol} answers 200 once it is scored)",
            {"symbol": symbol, "retryAfterS": retry},
            {"Retry-After": str(retry)},
        )

    # analytics -----------------------------------------------------------------------------

    async def analytics(self, name: str, q: BaseModel) -> Any:
        if self.sessions is None:
            raise ApiError(503, "database_disabled", "analytics need the database")
        try:
            from perpsignal_common.db import analytics
        except ImportError as exc:
            raise ApiError(
                503, "analytics_unavailable", "analytics are not available in this build"
            ) from exc
        fn = getattr(analytics, name)
        kwargs = q.model_dump()
        if name == "outcomes_history" and kwargs.get("symbol"):
            kwargs["symbol"] = normalize_symbol(kwargs["symbol"])
        try:
            async with session_scope(self.sessions) as session:
                return camelize((await fn(session, **kwargs)).model_dump(mode="json"))
        except DependencyUnavailable as exc:
            raise ApiError(503, "database_unavailable", "the database is unreachable") from exc
        except OSError as exc:
            raise ApiError(503, "database_unavailable", "the database is unreachable") from exc

    async def signal_research(self, q: a.ResearchQuery) -> Any:
        """Factor information and judge lift on tracked outcomes (`research.py`)."""
        if self.sessions is None:
            raise ApiError(503, "database_disabled", "analytics need the database")
        from perpsignal_gateway.research import Research  # numpy: loaded on first use

        if self._research is None:
            self._research = Research(self.sessions)
        try:
            return await self._research.answer(q)
        except (DependencyUnavailable, OSError) as exc:
            raise ApiError(503, "database_unavailable", "the database is unreachable") from exc


def camelize(data: Any) -> Any:
    """Return `data` with every dict key in camelCase (analytics models are snake_case)."""
    if isinstance(data, dict):
        return {to_camel(str(k)): camelize(v) for k, v in data.items()}
    if isinstance(data, list):
        return [camelize(v) for v in data]
    return data


def _latest_price(slots: dict[str, Any]) -> float | None:
    best: tuple[datetime, float] | None = None
    for e in slots.values():
        price = getattr(e, "close", None) or getattr(e, "last_price", None)
        price = price or getattr(e, "mark_price", None)
        if isinstance(price, float) and (best is None or e.observed_at > best[0]):
            best = (e.observed_at, price)
    return None if best is None else best[1]
