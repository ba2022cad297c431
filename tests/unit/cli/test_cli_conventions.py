"""The `perpsignal` command behaves as scripts and people expect of a CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata

import pytest

from perpsignal_cli.main import main
from perpsignal_common.events.topics import all_topic_specs


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    # The installed entry point's module, in a child: exactly what a shell runs
    return subprocess.run(
        [sys.executable, "-m", "perpsignal_cli", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_version_flag_prints_the_package_metadata_version() -> None:
    proc = _run("--version")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"perpsignal {metadata.version('perpsignal')}"


def test_version_json_lists_every_package() -> None:
    proc = _run("version", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["version"] == metadata.version("perpsignal")
    assert doc["packages"]["perpsignal-notifier"] == metadata.version("perpsignal-notifier")


def test_topics_without_an_action_prints_help_and_touches_no_broker(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A broker that does not exist: the old default (`create`) would try to reach it
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9")

    async def refuse(*_: object) -> list[str]:
        raise AssertionError("a bare `perpsignal topics` must not create topics")

    monkeypatch.setattr("perpsignal_common.kafka.admin.ensure_topics", refuse)
    with pytest.raises(SystemExit) as exit_info:
        main(["topics"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "usage: perpsignal topics" in err and "{list,create,describe}" in err


def test_topics_list_json_is_the_registry(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["topics", "list", "--json"])
    assert exit_info.value.code == 0
    listed = json.loads(capsys.readouterr().out)
    assert [t["partitions"] for t in listed] == [s.partitions for s in all_topic_specs()]
    assert all(t["topic"].endswith(s.name) for t, s in zip(listed, all_topic_specs(), strict=True))
