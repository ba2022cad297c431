"""The validators `make validate` runs, each shown to pass on the repository and to fail."""

from __future__ import annotations

import copy
import shutil
import subprocess

import pytest

from tests.deploy.conftest import DEPLOY, load_script


async def test_gateway_openapi_documents_pass_openapi_spec_validator() -> None:
    check = load_script("check_openapi")
    documents = await check.fetch_documents()
    assert set(documents) == {"/openapi.json", "/openapi-gpt.json"}
    assert check.problems(documents) == []
    broken = copy.deepcopy(documents["/openapi-gpt.json"])
    path = next(iter(broken["paths"].values()))
    next(iter(path.values()))["responses"] = "none"  # must be an object
    assert check.problems({"/openapi-gpt.json": broken})


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_alert_rules_pass_promtool(tmp_path: pytest.TempPathFactory) -> None:
    rules = DEPLOY / "compose" / "prometheus" / "alerts.yml"
    ok = subprocess.run(
        ["promtool", "check", "rules", str(rules)], capture_output=True, text=True, check=False
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    bad = tmp_path / "bad.yml"  # type: ignore[operator]
    bad.write_text(rules.read_text().replace("> 5000", "> > 5000", 1))
    failed = subprocess.run(
        ["promtool", "check", "rules", str(bad)], capture_output=True, text=True, check=False
    )
    assert failed.returncode != 0
