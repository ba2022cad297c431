"""The model's words reach PostgreSQL (the outcomes history) and Telegram: the judge publishes
them clean, and what it publishes is what the contract takes.

A NUL in the summary would make PostgreSQL refuse the judged signal (the contract refuses it
at decode); a lone surrogate (JSON lets a server write `\\ud800`) cannot be encoded at all;
control, zero-width, bidi and tag characters hide or reorder text on a phone. The answers come
from a fake OpenAI server, in the API's own shape.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from perpsignal_common.events.registry import decode, encode
from perpsignal_common.events.signals import SignalJudgedV1, SignalScoredV1
from perpsignal_judge.judge import Judge
from perpsignal_judge.settings import JudgeSettings
from tests.unit.judge.builders import load_candles, signal
from tests.unit.judge.fake_openai import FakeOpenAI, completion, serve, verdict_json

BULL = {
    "momentum": 80.0,
    "funding": 70.0,
    "liquidations": 65.0,
    "oi_trend": 60.0,
    "long_short": 55.0,
}
HOSTILE = "\x00\x01\x1b\x7f\x85\u200b\u200d\u202e\u2066\u2028\ufeff\U000e0041\ufff9"


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    yield from serve()


@pytest.fixture
def sig(shared_data: Path) -> SignalScoredV1:
    return signal(factors=BULL, confidence=65, candles=load_candles(shared_data))


async def judged_with(fake: FakeOpenAI, sig: SignalScoredV1, answer: str) -> SignalJudgedV1:
    fake.responder = lambda _: completion(answer)
    judge = Judge(
        JudgeSettings(
            enable_ai_judge=True,
            openai_api_key="sk-test",
            openai_base_url=fake.base_url,
            ai_judge_timeout=5.0,
            judge_llm_max_retries=0,
        )
    )
    try:
        judged: SignalJudgedV1 = await judge.judge(sig)
        return judged
    finally:
        await judge.close()


def visible(text: str) -> bool:
    return not any(ch in text for ch in HOSTILE) and "\n" not in text and "\t" not in text


async def test_an_answer_full_of_control_characters_is_published_clean(
    fake: FakeOpenAI, sig: SignalScoredV1
) -> None:
    answer = verdict_json(
        summary=f"Momentum{HOSTILE} supports\n\tthe long;{HOSTILE} take half size.",
        agreements=[f"momentum{HOSTILE} up", HOSTILE],
        conflicts=[f"funding\x00 stretched{HOSTILE}"],
    )
    judged = await judged_with(fake, sig, answer)
    layer = judged.ai_verdict_layer
    assert (layer.judge, layer.verdict) == ("llm", "DOWNSIZE")  # the answer was used
    assert layer.ai_summary == "Momentum supports the long; take half size."
    checks = (*layer.layer_checks.agreements, *layer.layer_checks.conflicts)
    assert "momentum up" in checks and "funding stretched" in checks
    assert all(visible(text) for text in (layer.ai_summary, *checks))
    assert "" not in checks  # an item of hostile characters only is dropped
    # what the judge publishes, every consumer decodes as it was (the contract refuses NUL)
    again = decode(encode(judged))
    assert isinstance(again, SignalJudgedV1) and again == judged
    assert json.loads(encode(judged))["ai_verdict_layer"]["ai_summary"] == layer.ai_summary


async def test_an_answer_with_a_lone_surrogate_is_the_rules_verdict_and_still_published(
    fake: FakeOpenAI, sig: SignalScoredV1
) -> None:
    """No UTF-8 encoder writes a lone surrogate: such an answer is a broken one (the rules'
    verdict, reason invalid_output), and the judged signal is still published and read."""
    judged = await judged_with(fake, sig, verdict_json(summary="half size \ud800 now"))
    layer = judged.ai_verdict_layer
    assert (layer.judge, layer.fallback_reason) == ("rules", "invalid_output")
    assert decode(encode(judged)) == judged
