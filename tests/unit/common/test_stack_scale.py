"""`perpsignal up --scale`: parsing, per-replica supervision and what stack.json lists."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from perpsignal_cli.main import main as cli_main
from perpsignal_cli.stack import (
    ScaleError,
    Stack,
    Supervised,
    parse_scale,
    replica_names,
    replica_settings,
    topic_specs_for_scale,
)
from perpsignal_common.events.topics import DEFAULT_PARTITIONS, Topic


def test_scale_parses_replica_counts_and_names_each_replica() -> None:
    assert parse_scale("scorer=3, judge=2,gateway=2,") == {"scorer": 3, "judge": 2, "gateway": 2}
    assert parse_scale("") == {}
    assert replica_names("scorer", 3) == ["scorer-1", "scorer-2", "scorer-3"]
    assert replica_names("judge", 1) == ["judge"]  # alone: the usual name, log and port


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("scorer", "is not SERVICE=N"),
        ("scorer=x", "is not SERVICE=N"),
        ("scorr=2", "unknown service 'scorr'"),
        ("judge=0", "outside 1..32"),
        ("judge=2,judge=3", "judge is given twice"),
    ],
)
def test_a_bad_scale_is_refused_with_the_reason(text: str, says: str) -> None:
    with pytest.raises(ScaleError, match=says):
        parse_scale(text)


def test_up_refuses_a_bad_scale_before_starting_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli_main(["up", "--data-dir", str(tmp_path), "--scale", "scorer=two"])
    assert exit_.value.code == 2
    assert "'scorer=two' is not SERVICE=N" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        cli_main(["up", "--data-dir", str(tmp_path), "--services", "judge", "--scale", "scorer=2"])
    assert exit_.value.code == 2
    assert "--scale names scorer, which --services leaves out" in capsys.readouterr().err
    assert not (tmp_path / "stack.json").exists()


def test_replicas_share_the_binance_budget_and_one_polls_bot_commands() -> None:
    assert replica_settings("ingestor", 1, 3, {}) == {"INGESTOR_REPLICAS": "3"}
    assert replica_settings("ingestor", 0, 1, {}) == {}
    assert replica_settings("ingestor", 0, 3, {"INGESTOR_REPLICAS": "4"}) == {}  # set: kept
    assert replica_settings("notifier", 0, 2, {}) == {}
    assert replica_settings("notifier", 1, 2, {}) == {"NOTIFIER_POLL_COMMANDS": "false"}


def test_topics_get_at_least_as_many_partitions_as_the_largest_scale() -> None:
    specs = {s.name: s.partitions for s in topic_specs_for_scale(5)}
    assert specs[Topic.MARKET] == DEFAULT_PARTITIONS  # 12 already covers 5 replicas
    assert specs[Topic.LISTINGS] == 5  # 3 would leave two of five notifiers idle
    assert specs[Topic.JUDGE_REQUESTS + ".dlq"] == 5
    assert {s.name: s.partitions for s in topic_specs_for_scale(20)}[Topic.MARKET] == 20


def _exiting(tmp_path: Path, name: str, service: str, code: int) -> Supervised:
    script = tmp_path / "svc.sh"
    script.write_text(f"#!/bin/sh\nexit {code}\n")
    script.chmod(0o755)
    env = dict(os.environ) | {"OPS_PORT": "0"}
    svc = Supervised(name, env, tmp_path / f"{name}.log", service=service)
    svc.start()
    assert svc.proc is not None
    svc.proc.wait(10)
    return svc


def test_each_replica_is_restarted_alone_and_listed_in_stack_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "svc.sh"))  # written by _exiting
    stack = Stack(tmp_path)
    for i in (1, 2):
        stack.services[f"scorer-{i}"] = _exiting(tmp_path, f"scorer-{i}", "scorer", 1)
    stack.supervise_once(tmp_path)
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        f"[perpsignal] scorer-{i} exited with code 1; restarting in 1s "
        f"(see {tmp_path}/scorer-{i}.log)"
        for i in (1, 2)
    ]
    stack.services["scorer-2"].restart_at = 0  # only the second replica's backoff has passed
    stack.supervise_once(tmp_path)
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and out[0].startswith("[perpsignal] scorer-2 restarted (pid ")
    info = json.loads((tmp_path / "stack.json").read_text())
    replicas = info["replicas"]["scorer"]
    assert [r["name"] for r in replicas] == ["scorer-1", "scorer-2"]
    assert replicas[1]["pid"] == stack.services["scorer-2"].proc.pid  # type: ignore[union-attr]
    assert [r["restarts"] for r in replicas] == [0, 1]
    assert info["services"]["scorer"] == replicas[0]["pid"]  # the first replica, as before
