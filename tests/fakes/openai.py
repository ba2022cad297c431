"""A local OpenAI-compatible server for end-to-end runs, answering with the recorded envelope.

It reuses the judge's unit-test server (`tests/unit/judge/fake_openai.py`): same threading
HTTP server, same request log, and the same 400s for parameters a model does not take (a
reasoning model sent `max_tokens` or a temperature other than 1). What it adds is the body:
the recorded structured-output response in `../shared/data/api/openai/` (id, model, usage,
fingerprint as OpenAI sent them), with only `choices[0].message.content` replaced by a
verdict in the judge's schema, so the real OpenAI SDK inside the judge process parses a
response shaped exactly like production's.

    with RecordedOpenAI(shared_data) as fake:
        env = {"OPENAI_BASE_URL": fake.base_url, "OPENAI_API_KEY": "sk-test", ...}
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.unit.judge.fake_openai import FakeOpenAI, Reply

RECORDED = "api/openai/chat_completions_structured_output_recorded.json"

DEFAULT_VERDICT: dict[str, Any] = {
    "verdict": "CONFIRM",
    "risk_mode": "NORMAL",
    "position_multiplier": 1.0,
    "summary": "Trend, positioning and structure agree; take the planned size.",
    "agreements": ["momentum and structure agree"],
    "conflicts": [],
}


AGREEING_SUMMARY = "e2e model: the rule judge's reading holds; its verdict and size stand."


def agreeing_verdict(request: dict[str, Any]) -> dict[str, Any]:
    """A model that reads the prompt's data block and answers the rule judge's own verdict.

    The judge refuses an LLM that takes (CONFIRM/DOWNSIZE) a signal its rules SKIP or WAIT,
    so an always-CONFIRM fake would only ever be overruled; this one is always published,
    which shows the LLM path end to end (its summary is `AGREEING_SUMMARY`).
    """
    user = request["messages"][-1]["content"]
    data = json.loads(user.removeprefix("<data>").removesuffix("</data>"))
    rules = data["rule_judge"]
    return {
        "verdict": rules["verdict"],
        "risk_mode": rules["risk_mode"],
        "position_multiplier": rules["position_multiplier"],
        "summary": AGREEING_SUMMARY,
        "agreements": [],
        "conflicts": [],
    }


class RecordedOpenAI(FakeOpenAI):
    """`FakeOpenAI` whose default answer is the recorded envelope carrying `verdict(request)`."""

    def __init__(
        self,
        data_dir: Path,
        verdict: Callable[[dict[str, Any]], dict[str, Any]] = lambda _req: DEFAULT_VERDICT,
    ) -> None:
        super().__init__()
        self.envelope: dict[str, Any] = json.loads((data_dir / RECORDED).read_text())
        self.verdict = verdict
        self.responder = self._answer

    def _answer(self, request: dict[str, Any]) -> Reply:
        body = json.loads(json.dumps(self.envelope))
        body["model"] = request.get("model", body["model"])
        body["choices"][0]["message"]["content"] = json.dumps(self.verdict(request))
        return Reply(body=json.dumps(body).encode())
