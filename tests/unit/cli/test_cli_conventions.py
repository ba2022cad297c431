"""The `perpsignal` command behaves as scripts and people expect of a CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from perpsignal_cli.main import main
from perpsignal_common.events.topics import all_topic_specs


def _run(
    *argv: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    # The installed entry point's module, in a child: exactly what a shell runs
    return subprocess.run(
        [sys.executable, "-m", "perpsignal_cli", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=env,
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


# the address tried and the setting that chose it, said once
NO_BROKER = "no Kafka broker answered at 127.0.0.1:9 (KAFKA_BOOTSTRAP_SERVERS)"


@pytest.mark.parametrize(
    ("argv", "names"),
    [
        (["migrate"], "database unavailable"),
        (["export", "--out", "{tmp}/history.jsonl"], "database unavailable"),
        (["topics", "create"], NO_BROKER),
        (["topics", "describe"], NO_BROKER),
        (["record", "--out", "{tmp}/tap.jsonl", "--duration", "1"], NO_BROKER),
        (["replay", "{tmp}/events.jsonl"], NO_BROKER),
    ],
)
def test_a_command_without_its_broker_or_database_fails_in_one_line(
    argv: list[str], names: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Each of these printed a 30-60 line traceback (record also an unclosed-consumer error)
    when DATABASE_URL or KAFKA_BOOTSTRAP_SERVERS pointed at nothing. Now: exit 1, one line
    naming what is unreachable, no credential of the URL. The Kafka ones also printed
    aiokafka's `ERROR aiokafka: Unable connect to ...` line and repeated the client's error type
    ("KafkaConnectionError: KafkaConnectionError: ..."): now the one line is all of stderr."""
    import os

    if argv[0] == "replay":  # real events (an empty file is refused before connecting)
        from perpsignal_cli.backtesting.eventfile import write_events
        from perpsignal_cli.backtesting.importers import candle_events, read_candles

        market = request.getfixturevalue("shared_data") / "market"
        series = read_candles(market / "XRP_USDT_USDT-1h-futures.csv").slice(0, 2)
        write_events(tmp_path / "events.jsonl", candle_events(series, "XRPUSDT"))
    env = {
        **os.environ,
        "DATABASE_URL": "postgresql://u:s3cret@127.0.0.1:9/none",
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9",
        "PERPSIGNAL_DATA_DIR": str(tmp_path),
    }
    proc = _run(*(a.format(tmp=tmp_path) for a in argv), env=env, timeout=90)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr and "Unclosed" not in proc.stderr, proc.stderr
    assert "s3cret" not in proc.stderr + proc.stdout
    ours = [ln for ln in proc.stderr.splitlines() if ln.startswith(f"perpsignal {argv[0]}: ")]
    assert len(ours) == 1 and names in ours[0], proc.stderr
    assert proc.stderr.strip().splitlines() == ours, proc.stderr
    assert "Error: KafkaConnectionError" not in ours[0]


def _run_with(
    argv: list[str], tmp_path: Path, name: str, value: str | None
) -> subprocess.CompletedProcess[str]:
    """Run `perpsignal argv` ({tmp} = tmp_path, its data folder) with `name` set to `value`,
    or unset when None."""
    import os

    env = {**os.environ, "PERPSIGNAL_DATA_DIR": str(tmp_path)}
    env.pop(name, None)
    if value is not None:
        env[name] = value
    return _run(*(a.format(tmp=tmp_path) for a in argv), env=env)


@pytest.mark.parametrize(
    ("argv", "env_port", "rc", "said"),
    [
        (["up", "--port", "99999"], None, 2, "a port is 0-65535, got 99999"),
        (["demo", "--port", "-1"], None, 2, "a port is 0-65535, got -1"),
        (["up"], "abc", 2, "not a port number: 'abc'"),
        (["schemas", "--out", "{tmp}/file/x"], None, 1, "cannot write to {tmp}/file/x"),
    ],
)
def test_a_bad_port_or_output_folder_is_one_line_before_anything_starts(
    argv: list[str], env_port: str | None, rc: int, said: str, tmp_path: Path
) -> None:
    """`demo --port 99999` started the broker and the database, then died on an OverflowError;
    GATEWAY_PORT=abc was a traceback while the parser was built; `schemas --out` into a file
    was a traceback."""
    (tmp_path / "file").write_text("")
    proc = _run_with(argv, tmp_path, "GATEWAY_PORT", env_port)
    assert proc.returncode == rc, proc.stderr
    assert "Traceback" not in proc.stderr and "starting" not in proc.stderr, proc.stderr
    assert said.format(tmp=tmp_path) in proc.stderr, proc.stderr


@pytest.mark.parametrize(
    ("argv", "env_speed", "said"),
    [
        (["demo", "--speed", "nan"], None, "must be a finite number > 0, got 'nan'"),
        (["demo", "--speed", "inf"], None, "must be a finite number > 0, got 'inf'"),
        (["demo"], "abc", "not a number: 'abc'"),
        (["replay", "{tmp}/events.jsonl", "--speed", "nan"], None, "finite number > 0"),
    ],
)
def test_a_speed_that_is_no_finite_positive_number_is_one_line(
    argv: list[str], env_speed: str | None, said: str, tmp_path: Path
) -> None:
    """`--speed nan` passed the `<= 0` check: the demo announced "nan minutes" and replayed
    unpaced; PERPSIGNAL_DEMO_SPEED=abc was a traceback while the parser was built."""
    (tmp_path / "events.jsonl").write_text("")
    proc = _run_with(argv, tmp_path, "PERPSIGNAL_DEMO_SPEED", env_speed)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "unpacking" not in proc.stderr, proc.stderr
    assert said in proc.stderr, proc.stderr


def test_schemas_check_flags_a_schema_no_longer_generated(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # an event type renamed or removed left its old schema published, and --check passed
    with pytest.raises(SystemExit) as written:
        main(["schemas", "--out", str(tmp_path)])
    assert written.value.code == 0
    with pytest.raises(SystemExit) as fresh:
        main(["schemas", "--out", str(tmp_path), "--check"])
    assert fresh.value.code == 0
    old = tmp_path / "events" / "market.candle_v0.json"
    old.write_text((tmp_path / "events" / "market.candle.json").read_text())
    capsys.readouterr()
    with pytest.raises(SystemExit) as checked:
        main(["schemas", "--out", str(tmp_path), "--check"])
    assert checked.value.code == 1
    assert capsys.readouterr().out == f"no longer generated: {old} (delete it)\n"


SUBCOMMANDS = (
    *("version", "up", "run", "topics", "schemas", "migrate", "bench", "backtest"),
    *("calibrate", "demo", "replay", "record", "export", "docs"),
)


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_help_prints_the_help_only_even_with_a_stack_running(command: str, tmp_path: Path) -> None:
    """`perpsignal export --help` (and replay's, record's) printed "perpsignal: using the running
    stack (pid ...)" before the help when a `perpsignal up` ran: --help has no side effect and
    prints nothing but the help."""
    import os

    from perpsignal_cli.stack import STACK_FILE

    running = {"pid": os.getpid(), "kafka_bootstrap": "127.0.0.1:9", "database_url": "x"}
    (tmp_path / STACK_FILE).write_text(json.dumps(running))
    env = {**os.environ, "PERPSIGNAL_DATA_DIR": str(tmp_path)}
    for name in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL"):
        env.pop(name, None)
    proc = _run(command, "--help", env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"usage: perpsignal {command}"), proc.stdout[:200]
    assert proc.stderr == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == [STACK_FILE]  # nothing written
