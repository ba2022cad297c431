"""What the judge sends each model: reasoning models refuse `temperature` and `max_tokens`.

Against the local OpenAI-compatible server, which refuses them for o1/o3/o4-mini/gpt-5 with
OpenAI's own 400 (`unsupported_parameter` / `unsupported_value`), through the official SDK.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from perpsignal_common.events.signals import SignalScoredV1
from perpsignal_judge.judge import Judge
from perpsignal_judge.settings import JudgeSettings
from tests.unit.judge.builders import load_candles, signal
from tests.unit.judge.fake_openai import FakeOpenAI, Reply, serve

BULL = dict.fromkeys(("momentum", "smart_money", "oi_trend", "liquidations"), 70.0)


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    yield from serve()


@pytest.fixture
def candles(shared_data: Path) -> Any:
    return load_candles(shared_data)


def make_judge(fake: FakeOpenAI, model: str, **overrides: Any) -> Judge:
    values: dict[str, Any] = {
        "enable_ai_judge": True,
        "openai_api_key": "sk-test",
        "openai_base_url": fake.base_url,
        "openai_model": model,
        "ai_judge_timeout": 5.0,
        "judge_llm_max_retries": 0,
        **overrides,
    }
    return Judge(JudgeSettings(**values))


def sig(candles: Any, symbol: str = "XRPUSDT") -> SignalScoredV1:
    return signal(symbol=symbol, factors=BULL, confidence=65, candles=candles)


@pytest.mark.parametrize(
    "model", ["o1", "o3-mini", "o4-mini", "gpt-5", "gpt-5-mini", "gpt-5.1", "openai/o3"]
)
async def test_a_reasoning_model_gives_the_verdict_at_the_first_request(
    fake: FakeOpenAI, candles: Any, model: str
) -> None:
    """With OPENAI_MODEL on a reasoning model every call was refused (temperature 0) and
    every verdict was the rules' (`api_error`). Now the request carries what the model
    takes, with room for its hidden reasoning, and the verdict is the model's."""
    judge = make_judge(fake, model)
    layer = (await judge.judge(sig(candles))).ai_verdict_layer
    assert (layer.judge, layer.fallback_reason, layer.model) == ("llm", None, model)
    assert layer.verdict == "DOWNSIZE"  # the fake model's answer, not the rules' CONFIRM
    (req,) = fake.requests
    assert "temperature" not in req and "max_tokens" not in req
    assert req["max_completion_tokens"] == 400 + 4000
    assert req["reasoning_effort"] == "low"
    await judge.close()


async def test_a_chat_model_still_gets_temperature_0_and_the_answer_cap(
    fake: FakeOpenAI, candles: Any
) -> None:
    judge = make_judge(fake, "gpt-4o-mini", judge_llm_max_output_tokens=300)
    assert (await judge.judge(sig(candles))).ai_verdict_layer.judge == "llm"
    (req,) = fake.requests
    assert (req["temperature"], req["max_completion_tokens"]) == (0, 300)
    assert "reasoning_effort" not in req
    await judge.close()


@pytest.mark.parametrize("kind", ["value", "parameter"])
async def test_an_unknown_model_refusing_temperature_is_asked_again_without_it_for_good(
    fake: FakeOpenAI, candles: Any, caplog: pytest.LogCaptureFixture, kind: Any
) -> None:
    """A deployment name the judge cannot recognise (an Azure deployment of o4-mini) refuses
    temperature 0: the judge asks again at once without it (and with a reasoning model's
    room), then never sends it again, instead of falling back on every signal."""
    fake.refuses = {"temperature": kind}
    judge = make_judge(fake, "risk-judge-prod")
    with caplog.at_level(logging.WARNING, logger="perpsignal_judge.llm"):
        first = (await judge.judge(sig(candles))).ai_verdict_layer
    assert (first.judge, first.fallback_reason) == ("llm", None)
    assert [("temperature" in r, r["max_completion_tokens"]) for r in fake.requests] == [
        (True, 400),
        (False, 4400),
    ]
    (line,) = [r for r in caplog.records if getattr(r, "param", None) == "temperature"]
    assert "refuses" in line.getMessage()
    second = (await judge.judge(sig(candles, "SOLUSDT"))).ai_verdict_layer
    assert second.judge == "llm"
    assert len(fake.requests) == 3 and "temperature" not in fake.requests[2]
    await judge.close()


async def test_a_server_refusing_max_completion_tokens_gets_max_tokens(
    fake: FakeOpenAI, candles: Any
) -> None:
    """An older OpenAI-compatible server that knows only `max_tokens`: the cap is kept, under
    the name it takes."""
    fake.refuses = {"max_completion_tokens": "parameter"}
    judge = make_judge(fake, "local-llama")
    assert (await judge.judge(sig(candles))).ai_verdict_layer.judge == "llm"
    assert fake.requests[-1]["max_tokens"] == 400
    assert "max_completion_tokens" not in fake.requests[-1]
    assert fake.requests[-1]["temperature"] == 0
    await judge.close()


@pytest.mark.parametrize(
    "refuses",
    [
        {"response_format": "parameter"},  # the schema: no verdict without it
        {"max_completion_tokens": "parameter", "max_tokens": "parameter"},
    ],
    ids=["schema", "both-token-limits"],
)
async def test_a_refused_parameter_the_judge_needs_is_an_api_error_without_a_loop(
    fake: FakeOpenAI, candles: Any, refuses: Any
) -> None:
    fake.refuses = refuses
    judge = make_judge(fake, "gpt-4o-mini")
    layer = (await judge.judge(sig(candles))).ai_verdict_layer
    assert (layer.judge, layer.fallback_reason) == ("rules", "api_error")
    asked = len(fake.requests)
    assert asked <= 2
    # the next signal asks once: nothing is left to try
    layer = (await judge.judge(sig(candles, "SOLUSDT"))).ai_verdict_layer
    assert (layer.judge, layer.fallback_reason) == ("rules", "api_error")
    assert len(fake.requests) == asked + 1
    await judge.close()


async def test_the_retry_without_a_refused_parameter_stays_within_the_timeout(
    fake: FakeOpenAI, candles: Any
) -> None:
    """AI_JUDGE_TIMEOUT bounds the verdict, the second request included."""
    fake.refuses = {"temperature": "value"}
    refusal = fake.refusal
    fake.refusal = lambda req: (r := refusal(req)) and dataclasses.replace(r, delay_s=0.4)
    slow = fake.responder
    fake.responder = lambda req: dataclasses.replace(slow(req), delay_s=2.0)
    judge = make_judge(fake, "risk-judge-prod", ai_judge_timeout=0.7)
    started = time.monotonic()
    layer = (await judge.judge(sig(candles))).ai_verdict_layer
    assert time.monotonic() - started < 1.5
    assert (layer.judge, layer.fallback_reason) == ("rules", "timeout")
    assert len(fake.requests) == 2
    await judge.close()


async def test_another_400_is_still_an_api_error(fake: FakeOpenAI, candles: Any) -> None:
    """Only a refused parameter is retried: a 400 for anything else stays one request."""
    body = (
        b'{"error": {"message": "Invalid schema for response_format", '
        b'"type": "invalid_request_error", "param": "response_format", "code": null}}'
    )
    fake.responder = lambda _: Reply(status=400, body=body)
    judge = make_judge(fake, "gpt-4o-mini")
    layer = (await judge.judge(sig(candles))).ai_verdict_layer
    assert (layer.judge, layer.fallback_reason) == ("rules", "api_error")
    assert len(fake.requests) == 1
    await judge.close()
