"""The LLM judge: official `openai` SDK, structured output, clamping, budget, cache.

Every failure becomes a *fallback reason* (a closed set, also a metric label) instead of an
exception, so a bad answer or a slow provider can never crash or stall a partition:

| reason            | when                                                          |
|-------------------|---------------------------------------------------------------|
| timeout           | no answer within AI_JUDGE_TIMEOUT (slot wait, retries incl.)  |
| rate_limited      | HTTP 429 after the retries, or inside its Retry-After window  |
| server_error      | HTTP 5xx after the retries (or inside a 503's Retry-After)    |
| api_error         | any other HTTP error (400, 401, 404, ...), a 400 refusing a   |
|                   | parameter the judge cannot do without (messages, schema)      |
| connection_error  | the endpoint cannot be reached                                |
| refusal           | the model refused (`message.refusal`) or was content-filtered |
| invalid_output    | not JSON, or JSON that does not fit the schema (a value of    |
|                   | the wrong type too, a position_multiplier outside 0-1.5), or  |
|                   | a body that is no chat completion, over 1 MiB or compressed   |
| inconsistent_output | the answer names another pair or quotes an entry, stop or |
|                   | target level the signal does not have (`inconsistency`), or   |
|                   | takes a signal the rules SKIP or WAIT (a caller plan whose    |
|                   | stop/target is on the wrong side too), or takes it at no size |
|                   | (CONFIRM at multiplier 0, a take in risk mode AVOID; judge.py) |
| truncated         | the answer hit the output-token limit                         |
| budget_exhausted  | calls-per-minute or tokens-per-minute budget spent            |
| busy              | no concurrency slot freed within the timeout                  |

A `position_multiplier` outside the contract's 0-1.5 (1e9, -3) is a broken answer and refused;
within it, judge.py sizes it to the verdict. Lists are cut to 4 items, text to plain capped
strings.

Request parameters follow the model (`request_params`): OpenAI's reasoning models (o1, o3,
o4-mini, the gpt-5 family) refuse `temperature` other than 1 and `max_tokens`, and count their
hidden reasoning in `max_completion_tokens`; they get no temperature, `reasoning_effort` low
(a verdict within the timeout) and `reasoning_tokens` more output. A model this does not know
that answers 400 `unsupported_parameter`/`unsupported_value` naming a parameter is asked again
at once without it (`max_tokens` and `max_completion_tokens` swap), within the same timeout,
and never sent it again: one refused parameter cost every verdict its LLM answer.

Retries (429, 408, 409, 5xx, connection errors; at most `max_retries`) are made here, not by
the SDK: a wait the provider asks for (`Retry-After`, `retry-after-ms`) is taken only when the
retry still fits in the timeout. A longer one ends the call at once (`rate_limited` /
`server_error`), and no request goes out until it has passed (at most `MAX_COOLDOWN_S`):
every verdict meanwhile is the rules' with that reason. The SDK slept the wait instead (up to
60 s) and ran into the timeout, then asked again with the next signal.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import re
import time
import unicodedata
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from cachetools import LRUCache
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from perpsignal_common.events.signals import RiskMode, Verdict, VerdictLayer
from perpsignal_common.retry import retry_after_s as retry_after
from perpsignal_domain.judging import prompt
from perpsignal_judge.metrics import FALLBACKS, LLM_CACHE, LLM_LATENCY, LLM_TOKENS

if TYPE_CHECKING:
    import openai

log = logging.getLogger(__name__)

FallbackReason = Literal[
    "timeout",
    "rate_limited",
    "server_error",
    "api_error",
    "connection_error",
    "refusal",
    "invalid_output",
    "inconsistent_output",
    "truncated",
    "budget_exhausted",
    "busy",
]
MAX_ITEMS = 4


def _contract_bound(name: str) -> float:
    """Return a bound (`ge`, `le`) of the verdict layer's `position_multiplier` (the contract)."""
    meta = VerdictLayer.model_fields["position_multiplier"].metadata
    return float(next(getattr(m, name) for m in meta if getattr(m, name, None) is not None))


MIN_MULTIPLIER = _contract_bound("ge")  # 0
MAX_MULTIPLIER = _contract_bound("le")  # 1.5
MAX_SUMMARY = 300
DEFAULT_BASE_URL = "https://api.openai.com/v1"  # OPENAI_BASE_URL unset
MAX_RESPONSE_BYTES = 1 << 20  # an answer is about 1 KB (400 tokens): 1 MiB holds any honest one
MAX_COOLDOWN_S = 300.0  # the longest provider-requested pause honoured (a garbage header)
# OpenAI's reasoning models by name, a provider prefix ("openai/o3-mini") aside
_REASONING_MODEL = re.compile(r"(?i)^(?:o\d|gpt-5)")
# a parameter the model refused, when the error body gives no `param` (OpenAI's does)
_UNSUPPORTED = re.compile(r"^Unsupported (?:parameter|value): '(\w{1,40})'")
# what to send instead of a refused parameter; those in neither table are never dropped
_SWAP = {"max_tokens": "max_completion_tokens", "max_completion_tokens": "max_tokens"}
_DROPPABLE = frozenset({"temperature", "reasoning_effort"})


class LlmVerdict(BaseModel):
    """The structured answer the model must give (sent to the API as a strict schema)."""

    model_config = ConfigDict(extra="ignore")

    verdict: Verdict
    risk_mode: RiskMode
    position_multiplier: float
    summary: str
    agreements: list[str]
    conflicts: list[str]

    # A validator may raise only ValueError here: pydantic passes a TypeError through as is,
    # past the SDK and the judge's handler, so `null` or `{}` for a number failed the signal.

    @field_validator("position_multiplier", mode="before")
    @classmethod
    def _check_multiplier(cls, v: Any) -> float:
        if isinstance(v, bool) or not isinstance(v, int | float | str):
            raise ValueError(f"position_multiplier is {type(v).__name__}, not a number")
        try:
            x = float(v)
        except OverflowError:  # an integer of 400 digits: not a ValueError, it crashed the call
            raise ValueError("position_multiplier is a number too large for a float") from None
        # the schema's range, told the model in the prompt and the contract's bounds: 1e9,
        # Infinity or -3 is a broken answer (clamped, 1e9 was published as a 1.5x take)
        if not MIN_MULTIPLIER <= x <= MAX_MULTIPLIER:  # NaN too
            raise ValueError(f"position_multiplier is {x:.6g}, not in 0-1.5")
        return x

    @field_validator("summary", mode="before")
    @classmethod
    def _clean_summary(cls, v: Any) -> str:
        if not isinstance(v, str):  # str(None) would be published as the summary "None"
            raise ValueError(f"summary is {type(v).__name__}, not a string")
        text = prompt.clean(v, MAX_SUMMARY)
        if not text:  # the rules' summary in its place names the rules' verdict, not this one
            raise ValueError("summary is empty")
        return text

    @field_validator("agreements", "conflicts", mode="before")
    @classmethod
    def _clean_list(cls, v: Any) -> list[str]:
        if not isinstance(v, list):
            raise ValueError("expected a list")
        if not all(isinstance(x, str) for x in v):
            raise ValueError("expected a list of strings")
        return [text for text in map(prompt.clean, v) if text][:MAX_ITEMS]


@dataclass(frozen=True)
class LlmOutcome:
    """An LLM verdict, or the reason there is none."""

    verdict: LlmVerdict | None
    reason: FallbackReason | None = None
    cached: bool = False
    detail: str | None = None


def is_reasoning_model(model: str) -> bool:
    """Return True for OpenAI's reasoning models (o1, o3, o4-mini, gpt-5, gpt-5.1, ...)."""
    return bool(_REASONING_MODEL.match(model.rsplit("/", 1)[-1]))


def request_params(model: str, max_output_tokens: int, reasoning_tokens: int) -> dict[str, Any]:
    """Return the sampling and length parameters `model` takes.

    A reasoning model refuses any temperature but 1 (so none is sent) and spends output tokens
    on reasoning the answer never shows: with only the answer's 400 it stopped mid-thought
    (`truncated`). Low effort keeps its verdict within AI_JUDGE_TIMEOUT.
    """
    if is_reasoning_model(model):
        return {
            "max_completion_tokens": max_output_tokens + reasoning_tokens,
            "reasoning_effort": "low",
        }
    return {"max_completion_tokens": max_output_tokens, "temperature": 0}


def refused_param(exc: openai.APIStatusError) -> str | None:
    """Return the request parameter a 400 says the model does not support, or None.

    OpenAI's shape: `{"error": {"message": "Unsupported parameter: 'max_tokens' is not
    supported with this model. Use 'max_completion_tokens' instead.", "type":
    "invalid_request_error", "param": "max_tokens", "code": "unsupported_parameter"}}`
    (`unsupported_value` for a temperature other than 1). Some compatible servers leave out
    `param` or `code`; their message still names it.
    """
    if exc.status_code != 400:
        return None
    message = exc.body.get("message") if isinstance(exc.body, dict) else None
    said = _UNSUPPORTED.match(message) if isinstance(message, str) else None
    if exc.code in ("unsupported_parameter", "unsupported_value") and isinstance(exc.param, str):
        return exc.param
    return said.group(1) if said else None


class Budget:
    """Calls-per-minute and tokens-per-minute budget over a sliding 60 s window.

    Non-blocking on purpose: when the budget is spent the judge answers with the rules at
    once rather than queueing (a queue would delay every later signal). Tokens are charged
    as an estimate up front and corrected with the API's `usage` afterwards. (aiolimiter's
    leaky bucket blocks and cannot take a charge after the fact, hence this small class.)
    """

    def __init__(
        self,
        calls_per_minute: int,
        tokens_per_minute: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.calls_per_minute = calls_per_minute
        self.tokens_per_minute = tokens_per_minute
        self._clock = clock
        self._calls: deque[float] = deque()
        self._tokens: deque[list[float]] = deque()  # [time, tokens], mutable for settle()

    def _trim(self, now: float) -> None:
        while self._calls and now - self._calls[0] >= 60:
            self._calls.popleft()
        while self._tokens and now - self._tokens[0][0] >= 60:
            self._tokens.popleft()

    def tokens_used(self) -> float:
        """Return the tokens charged in the current window."""
        self._trim(self._clock())
        return sum(t for _, t in self._tokens)

    def try_acquire(self, estimated_tokens: int) -> list[float] | None:
        """Charge one call and `estimated_tokens`; return a handle, or None when spent."""
        now = self._clock()
        self._trim(now)
        if len(self._calls) >= self.calls_per_minute:
            return None
        if (
            self.tokens_per_minute
            and self.tokens_used() + estimated_tokens > self.tokens_per_minute
        ):
            return None
        self._calls.append(now)
        entry = [now, float(estimated_tokens)]
        self._tokens.append(entry)
        return entry

    @staticmethod
    def settle(handle: list[float], actual_tokens: int | None) -> None:
        """Replace the estimate with the tokens the API reported."""
        if actual_tokens is not None:
            handle[1] = float(actual_tokens)


class LlmJudge:
    """Ask the model for a verdict with bounded concurrency, a budget and a cache."""

    def __init__(
        self,
        client: openai.AsyncOpenAI,
        *,
        model: str,
        timeout_s: float,
        concurrency: int,
        budget: Budget,
        cache_size: int = 4096,
        max_output_tokens: int = 400,
        max_retries: int = 0,
        reasoning_tokens: int = 4000,
    ) -> None:
        self.client = client
        self.model = model
        self.timeout_s = timeout_s
        self.budget = budget
        self.max_output_tokens = max_output_tokens
        self.max_retries = max_retries
        self.reasoning_tokens = reasoning_tokens
        # what this model is sent besides messages and schema; a parameter it refuses is
        # taken out (or swapped) for good, and remembered in `_refused`
        self.params = request_params(model, max_output_tokens, reasoning_tokens)
        self._refused: set[str] = set()
        # no request before this (monotonic) time: the provider asked us to wait; the reason
        # every verdict meanwhile falls back with
        self._cooldown: tuple[float, FallbackReason] | None = None
        self._sem = asyncio.Semaphore(concurrency)
        # least recently used verdicts go first (cachetools; reads refresh an entry)
        self._cache: LRUCache[str, LlmVerdict] | None = (
            LRUCache(maxsize=cache_size) if cache_size > 0 else None
        )
        self._inflight: dict[str, asyncio.Future[LlmOutcome]] = {}
        self.calls = 0

    async def close(self) -> None:
        """Close the SDK's HTTP client."""
        await self.client.close()

    async def verdict(self, inputs: dict[str, Any]) -> LlmOutcome:
        """Return the model's verdict for `inputs`, from the cache when seen before."""
        key = prompt.cache_key(inputs, self.model)
        hit = self._cache.get(key) if self._cache is not None else None
        if hit is not None:
            LLM_CACHE.labels("hit").inc()
            return LlmOutcome(hit, cached=True)
        pending = self._inflight.get(key)
        if pending is not None:  # a duplicate while the first call runs: share its answer
            LLM_CACHE.labels("hit").inc()
            shared = await asyncio.shield(pending)
            return LlmOutcome(shared.verdict, shared.reason, cached=True, detail=shared.detail)
        LLM_CACHE.labels("miss").inc()
        fut: asyncio.Future[LlmOutcome] = asyncio.get_running_loop().create_future()
        self._inflight[key] = fut
        try:
            outcome = await self._call(inputs)
            if outcome.verdict is not None and self._cache is not None:
                self._cache[key] = outcome.verdict
            fut.set_result(outcome)
            return outcome
        except BaseException as exc:
            fut.set_result(LlmOutcome(None, "api_error", detail=repr(exc)))
            raise
        finally:
            self._inflight.pop(key, None)

    async def _call(self, inputs: dict[str, Any]) -> LlmOutcome:
        if self._cooldown is not None:
            until, reason = self._cooldown
            if time.monotonic() < until:
                return self._fail(reason, "the provider asked to wait (Retry-After)")
            self._cooldown = None
        msgs = prompt.messages(inputs)
        # one deadline for the verdict, the wait for a slot included: a slot freed late left
        # the call a whole timeout more (a verdict in up to twice AI_JUDGE_TIMEOUT)
        deadline = asyncio.get_running_loop().time() + self.timeout_s
        try:
            async with asyncio.timeout_at(deadline):
                await self._sem.acquire()
        except TimeoutError:
            return self._fail("busy", "no free LLM slot")
        try:
            limit = self.params.get("max_completion_tokens", self.params.get("max_tokens"))
            estimate = sum(len(m["content"]) for m in msgs) // 3 + int(limit or 0)
            handle = self.budget.try_acquire(estimate)
            if handle is None:
                return self._fail("budget_exhausted", "LLM budget spent for this minute")
            self.calls += 1
            started = time.perf_counter()
            outcome, tokens = await self._request(msgs, deadline)
            LLM_LATENCY.labels(outcome.reason or "ok").observe(time.perf_counter() - started)
            self.budget.settle(handle, tokens)
            return outcome
        finally:
            self._sem.release()

    async def _request(
        self, msgs: list[dict[str, str]], deadline: float
    ) -> tuple[LlmOutcome, int | None]:
        import openai  # imported lazily: it costs seconds and the rule path never needs it

        loop = asyncio.get_running_loop()
        attempt = 0
        while True:
            params = dict(self.params)
            try:
                async with asyncio.timeout_at(deadline):
                    completion = await self.client.chat.completions.parse(
                        model=self.model,
                        messages=msgs,  # type: ignore[arg-type]
                        response_format=LlmVerdict,
                        **params,
                    )
                break
            except (TimeoutError, openai.APITimeoutError):
                return self._fail("timeout", f"no answer within {self.timeout_s:g}s"), None
            except (openai.APIStatusError, openai.APIConnectionError) as exc:
                if isinstance(exc, openai.BadRequestError) and self._adapt(
                    refused_param(exc), params
                ):
                    continue  # at once, within the deadline: each parameter goes only once
                reason, detail, wait = _classify(exc)
                retryable = isinstance(exc, openai.APIConnectionError) or _retryable(exc)
                if wait is not None and (not retryable or loop.time() + wait >= deadline):
                    # a wait we cannot take: stay away from the provider as long as asked
                    self._cooldown = (time.monotonic() + min(wait, MAX_COOLDOWN_S), reason)
                if retryable and attempt < self.max_retries:
                    delay = wait if wait is not None else min(8.0, 0.5 * 2.0**attempt)
                    if loop.time() + delay < deadline:
                        attempt += 1
                        await asyncio.sleep(delay)
                        continue
                return self._fail(reason, detail), None
            except openai.LengthFinishReasonError:
                return self._fail("truncated", "answer hit the output-token limit"), None
            except openai.ContentFilterFinishReasonError:
                return self._fail("refusal", "content filter"), None
            except (ValidationError, ValueError, openai.APIResponseValidationError) as exc:
                return self._fail("invalid_output", _invalid(exc)), None
            except ResponseTooLarge as exc:
                return self._fail("invalid_output", str(exc)), None
            except (TypeError, AttributeError, KeyError, IndexError, RecursionError) as exc:
                # the SDK builds the response without validating it and then walks it: a
                # body that is no chat completion (`[]`, `null`, `{"error": ...}` with 200,
                # `"choices": null`, a `null` message) fails there with these, and one nested
                # deeper than the stdlib's JSON decoder recurses (200 KB of `[`) with the last
                return self._fail("invalid_output", f"not a chat completion ({exc!r:.150})"), None
        tokens = _count_usage(getattr(completion, "usage", None))
        choices = getattr(completion, "choices", None)
        if not choices or not isinstance(choices, list):
            return self._fail("invalid_output", "no choices"), tokens
        message = getattr(choices[0], "message", None)
        if message is None:
            return self._fail("invalid_output", "no message"), tokens
        if message.refusal:
            return self._fail("refusal", prompt.clean(message.refusal, 200)), tokens
        if not isinstance(message.parsed, LlmVerdict):
            return self._fail("invalid_output", "empty answer"), tokens
        return LlmOutcome(message.parsed), tokens

    def _adapt(self, param: str | None, sent: dict[str, Any]) -> bool:
        """Stop sending `param`, which the model refused in `sent`; False when that cannot help.

        Only a parameter this call sent and one of ours to spare goes: the token limit swaps
        to its other name (unless that one was refused too), temperature and reasoning
        effort are dropped. A parameter is refused once at most (never sent again), so the
        retries end; concurrent calls refused the same way agree on the result.
        """
        if param is None or param not in sent or (param not in _SWAP and param not in _DROPPABLE):
            return False
        if param in _SWAP and _SWAP[param] in self._refused:
            return False
        self._refused.add(param)
        if param not in self.params:
            return True  # a concurrent call was refused the same way and adapted already
        value = self.params.pop(param)
        if param in _SWAP:
            self.params[_SWAP[param]] = value
        elif param == "temperature" and not is_reasoning_model(self.model):
            # the mark of a reasoning model under another name (an Azure deployment, a
            # proxy's alias): its hidden reasoning needs the room a known one gets
            for name in _SWAP:
                if name in self.params:
                    self.params[name] = self.max_output_tokens + self.reasoning_tokens
        log.warning(
            "the model refuses a request parameter; asking without it from now on",
            extra={"model": self.model, "param": param, "sending": sorted(self.params)},
        )
        return True

    @staticmethod
    def _fail(reason: FallbackReason, detail: str) -> LlmOutcome:
        log.warning(
            "LLM verdict unavailable; using rules", extra={"reason": reason, "detail": detail}
        )
        return LlmOutcome(None, reason, detail=detail)


# a trading pair as the model may write one: BTCUSDT, 1000PEPEUSDT, ETH/USDT, BTC-USDT-SWAP,
# in any case (an injected "mention ethusdt" took in lower case)
_PAIR = re.compile(
    r"(?i)(?<![\w$])\$?[A-Z0-9]{2,20}[-/_]?(?:USDT|USDC|BUSD|USD)(?:[-/_]?(?:SWAP|PERP))?(?!\w)"
)
# a price level: the number right after @, entry, price, stop(-loss), SL, target, TP or
# take profit, unless a unit follows it (1.5 ATR, 0.05 %, 2x, R:R 3)
_LEVEL = re.compile(
    r"(?i)(?:@|\b(?:entry|enter|price|stop(?:[- ]?loss)?|sl|target|tp|take[- ]?profit)\b)"
    r"\s*(?:(?:at|of|is|near|around|to)\s+)?[:=]?\s*\$?"
    r"((?:\d[\d,]*(?:\.\d+)?|\.\d+)(?:e[-+]?\d+)?)"  # 5.29e-5: the prompt's own spelling
    # the whole number (a comma then a space ends it: "stop 3300, target 3600"), without a unit
    r"(?!\s*(?:%|atr\b|x\b|r\b|bars?\b)|\d|,\d|\.\d|e[-+]?\d)"
)
LEVEL_TOLERANCE = 0.005  # a quoted level within 0.5 % of one of the signal's is that one
# Cyrillic and Greek letters drawn like Latin ones (the Cyrillic ETH of "ETHUSDT" reads the
# same on a phone), read as those for the pair check: a false match only costs the rules
_LOOKALIKES = str.maketrans(
    # Cyrillic capitals and small letters, then Greek capitals and omicron
    "\u0410\u0412\u0415\u041a\u041c\u041d\u041e\u0420\u0421\u0422\u0425\u0423\u0406\u0408\u0405"
    "\u0430\u0435\u043e\u0440\u0441\u0445\u0443\u0456\u0458\u0455"
    "\u0391\u0392\u0395\u0396\u0397\u0399\u039a\u039c\u039d\u039f\u03a1\u03a4\u03a5\u03a7\u03bf",
    "ABEKMHOPCTXYIJSaeopcxyijsABEZHIKMNOPTYXo",
)


def _pair(text: str) -> str:
    """Return a pair's comparable spelling: BTC-USDT-SWAP, $BTC/USD and BTCUSDT are BTCUSDT."""
    s = re.sub(r"[-/_$]", "", text.upper()).removesuffix("SWAP").removesuffix("PERP")
    return s + "T" if s.endswith("USD") and not s.endswith("BUSD") else s


def inconsistency(v: LlmVerdict, symbol: str, levels: tuple[float | None, ...]) -> str | None:
    """Return why the answer is not about this signal, or None when it is.

    The model's words reach the user (summary, agreements, conflicts). A pair other than
    `symbol`, or an entry/stop/target level more than 0.5 % from every one of `levels`
    (price, stop, target), means the model answered about something else: an injected
    instruction took, or it mixed signals up. Such an answer is not used.
    """
    own = _pair(symbol)
    known = [x for x in levels if x is not None and x > 0]
    for said in (v.summary, *v.agreements, *v.conflicts):
        # as a reader sees it: fullwidth or mathematical letters (U+FF25...) and Cyrillic
        # or Greek look-alikes are Latin to the eye, and slipped past the patterns
        text = unicodedata.normalize("NFKC", said).translate(_LOOKALIKES)
        for m in _PAIR.finditer(text):
            if _pair(m.group(0)) != own:
                return f"names {m.group(0)}, not {symbol}"
        for m in _LEVEL.finditer(text):
            quoted = float(m.group(1).replace(",", ""))
            if not any(abs(quoted - x) <= LEVEL_TOLERANCE * x for x in known):
                return f"quotes {m.group(0).strip()!r}, not a level of the signal"
    return None


def _invalid(exc: Exception) -> str:
    """Say what was wrong with an answer: its first errors' fields and messages (pydantic's
    first line alone, "1 validation error for LlmVerdict", told fenced JSON, a wrong verdict
    and a null from one another no better than the count). No input value is quoted."""
    if isinstance(exc, ValidationError):
        errors = exc.errors(include_url=False, include_input=False)
        said = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'answer'}: {e['msg']}" for e in errors[:3]
        )
        more = f" (+{len(errors) - 3} more)" if len(errors) > 3 else ""
        return f"{said[:300]}{more}"
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__


def _token_count(value: object) -> int | None:
    return value if type(value) is int and value >= 0 else None


def _count_usage(usage: object) -> int | None:
    """Count the tokens `usage` reports; return its total, or None when it gives none.

    The SDK does not validate the body: a provider's `usage` may be anything, and a counter
    refuses a negative amount (ValueError) or None (TypeError). Such numbers are not counted.
    """
    prompt_tokens = _token_count(getattr(usage, "prompt_tokens", None))
    completion_tokens = _token_count(getattr(usage, "completion_tokens", None))
    if prompt_tokens is not None:
        LLM_TOKENS.labels("prompt").inc(prompt_tokens)
    if completion_tokens is not None:
        LLM_TOKENS.labels("completion").inc(completion_tokens)
    return _token_count(getattr(usage, "total_tokens", None))


def _status(exc: openai.APIStatusError) -> str:
    return f"HTTP {exc.status_code}"


def _classify(
    exc: openai.APIStatusError | openai.APIConnectionError,
) -> tuple[FallbackReason, str, float | None]:
    """Return the fallback reason, its detail and the wait the response asks for."""
    import openai

    if isinstance(exc, openai.APIConnectionError):
        return "connection_error", type(exc).__name__, None
    wait = retry_after_s(exc.response.headers)
    if isinstance(exc, openai.RateLimitError):
        return "rate_limited", _status(exc), wait
    if isinstance(exc, openai.InternalServerError):
        return "server_error", _status(exc), wait
    return "api_error", _status(exc), wait


def _retryable(exc: openai.APIStatusError) -> bool:
    """The statuses worth a retry (the SDK's own list): 408, 409, 429 and 5xx."""
    code = exc.status_code
    return code in (408, 409, 429) or code >= 500


def retry_after_s(headers: Any) -> float | None:
    """Return the wait `retry-after-ms` (OpenAI's) or `Retry-After` (seconds or an HTTP date)
    asks for; None without one or for a value that is no finite number."""
    raw = headers.get("retry-after-ms")
    if raw is not None:
        try:
            ms = float(raw)
        except ValueError:
            ms = math.nan
        if math.isfinite(ms):
            return max(0.0, ms / 1000.0)
    return retry_after(headers)


class ResponseTooLarge(Exception):
    """The provider's response is bigger than any answer (MAX_RESPONSE_BYTES) or compressed."""


@functools.cache
def _capped_body() -> type:
    """Return the body stream that stops past MAX_RESPONSE_BYTES (an httpx2 byte stream,
    imported on first use: the openai SDK's HTTP client is httpx2); made once, not per call."""
    import httpx2

    class CappedBody(httpx2.AsyncByteStream):
        def __init__(self, stream: Any, status: int) -> None:
            self._stream = stream
            self._status = status

        async def __aiter__(self) -> AsyncIterator[bytes]:
            seen = 0
            async for chunk in self._stream:
                seen += len(chunk)
                if seen > MAX_RESPONSE_BYTES:
                    raise ResponseTooLarge(
                        f"HTTP {self._status} response over {MAX_RESPONSE_BYTES} bytes"
                    )
                yield chunk

        async def aclose(self) -> None:
            await self._stream.aclose()

    return CappedBody


async def _cap_body(response: Any) -> None:
    """Response hook: refuse a compressed body (identity was asked for: a few KB of gzip can
    unpack to gigabytes) and cap the rest at MAX_RESPONSE_BYTES."""
    status = response.status_code
    encoding = response.headers.get("content-encoding", "").strip().lower()
    if encoding not in ("", "identity"):
        raise ResponseTooLarge(
            f"HTTP {status} response in content-encoding {encoding[:40]!r}, identity was asked for"
        )
    response.stream = _capped_body()(response.stream, status)


def build_client(api_key: str, base_url: str | None, timeout_s: float) -> openai.AsyncOpenAI:
    """Return the SDK client with the per-request timeout (no SDK retries: see LlmJudge).

    The SDK reads a response whole, however big: a broken or hostile endpoint streaming
    gigabytes (or a gzip bomb) within the timeout took the judge's memory. Its HTTP client
    here asks for an uncompressed answer and stops reading past MAX_RESPONSE_BYTES.
    """
    import openai

    # retries are LlmJudge's (Retry-After within the timeout), never the SDK's. The URL is
    # always given: without one the SDK reads OPENAI_BASE_URL itself, as is ("" included)
    http_client = openai.DefaultAsyncHttpxClient(
        headers={"accept-encoding": "identity"}, event_hooks={"response": [_cap_body]}
    )
    return openai.AsyncOpenAI(
        api_key=api_key,
        base_url=base_url or DEFAULT_BASE_URL,
        timeout=timeout_s,
        max_retries=0,
        http_client=http_client,
    )


def count_fallback(reason: str) -> None:
    """Count one rule verdict used instead of the LLM."""
    FALLBACKS.labels(reason).inc()
