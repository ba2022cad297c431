"""The LLM verdict cache keeps the most recently *used* prompts, not the first inserted."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from perpsignal_judge.llm import Budget, LlmJudge
from tests.unit.judge.fake_openai import FakeOpenAI, serve


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    yield from serve()


async def test_a_reused_verdict_survives_eviction_and_the_least_recent_goes(
    fake: FakeOpenAI,
) -> None:
    client = openai.AsyncOpenAI(api_key="sk-test", base_url=fake.base_url, max_retries=0)
    judge = LlmJudge(
        client,
        model="gpt-4o-mini",
        timeout_s=2.0,
        concurrency=1,
        budget=Budget(calls_per_minute=100, tokens_per_minute=1_000_000),
        cache_size=2,
    )
    try:
        a, b, c = ({"symbol": s, "score": 70} for s in ("AAA", "BBB", "CCC"))
        for inputs in (a, b):
            assert not (await judge.verdict(inputs)).cached
        assert (await judge.verdict(a)).cached  # a is now the most recently used
        assert not (await judge.verdict(c)).cached  # full: evicts b, not a
        assert (await judge.verdict(a)).cached
        assert not (await judge.verdict(b)).cached
        assert len(fake.requests) == 4  # a, b, c, b again
    finally:
        await judge.close()
