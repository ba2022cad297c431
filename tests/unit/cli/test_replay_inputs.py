"""`perpsignal replay` answers a file it cannot replay, or a broker it cannot reach, in one
line that names the problem (and the setting), never a traceback or a silent success."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from perpsignal_cli.backtesting.eventfile import write_events
from perpsignal_cli.backtesting.importers import candle_events, read_candles
from perpsignal_cli.replay import main

NO_BROKER = "127.0.0.1:9"  # nothing listens: a refusal made before connecting needs none


@pytest.fixture(autouse=True)
def _no_stack(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PERPSIGNAL_DATA_DIR", str(tmp_path / "no-stack"))
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", NO_BROKER)


@pytest.fixture
def event_file(shared_data: Path, tmp_path: Path) -> Path:
    series = read_candles(shared_data / "market" / "XRP_USDT_USDT-1h-futures.csv").slice(0, 3)
    path = tmp_path / "events.jsonl"
    write_events(path, candle_events(series, "XRPUSDT"))
    return path


def _refused(argv: list[str], capsys: pytest.CaptureFixture[str], rc: int = 1) -> str:
    assert main(argv) == rc
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    return err


@pytest.mark.parametrize("content", [b"", b"\n\n  \n"])
def test_an_empty_file_is_refused_not_replayed_as_zero_events(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes
) -> None:
    # the old code connected and printed "replayed 0 events", exit 0: a script could not tell
    # an empty recording from a good one
    empty = tmp_path / "tap.jsonl"
    empty.write_bytes(content)
    err = _refused([str(empty)], capsys)
    assert "holds no events; nothing to replay" in err


@pytest.mark.skipif(not Path("/proc/self/mem").is_file(), reason="needs Linux /proc")
def test_a_file_that_cannot_be_read_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    # a regular file whose read fails with an I/O error even as root (where a chmod 000 file
    # would still be readable): the old code printed the OSError's traceback
    err = _refused(["/proc/self/mem"], capsys)
    assert "/proc/self/mem: cannot be read (Input/output error)" in err


def test_a_directory_is_named_as_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = _refused([str(tmp_path)], capsys, rc=2)
    assert "is a directory, not a file" in err


@pytest.mark.parametrize("address", ["localhost:abc", "127.0.0.1:99999"])
def test_a_malformed_bootstrap_address_names_the_setting(
    monkeypatch: pytest.MonkeyPatch,
    event_file: Path,
    capsys: pytest.CaptureFixture[str],
    address: str,
) -> None:
    # "localhost:abc" said only "invalid literal for int() with base 10: 'abc'"; an
    # out-of-range port was an OverflowError traceback. The Kafka client settings refuse it
    # now, before anything connects: a bad setting, exit 2, as the services do
    from perpsignal_cli.main import main as perpsignal

    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", address)
    with pytest.raises(SystemExit) as exited:
        perpsignal(["replay", str(event_file)])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"perpsignal replay: KAFKA_BOOTSTRAP_SERVERS: '{address}' has no valid")


def test_an_unreachable_broker_names_the_setting(
    event_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = _refused([str(event_file)], capsys)
    assert f"no Kafka broker answered at {NO_BROKER} (KAFKA_BOOTSTRAP_SERVERS)" in err


def test_a_topic_filter_that_selects_nothing_is_refused(
    event_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # market events only: the old code connected, sent nothing and exited 0
    err = _refused([str(event_file), "--topic", "perpsignal.signals.v1"], capsys)
    assert "none of its 3 events is on perpsignal.signals.v1; nothing to replay" in err


# a long check (a large file): each line made slow, the first announced on stdout
SLOW_CHECK = textwrap.dedent(
    """
    import sys, time
    from perpsignal_cli import replay
    from perpsignal_cli.main import main

    real = replay._checked

    def slow(line):
        if line.number == 1:
            print("checking", flush=True)
        time.sleep(0.02)
        return real(line)

    replay._checked = slow
    main(["replay", sys.argv[1]])
    """
)


def test_ctrl_c_during_the_check_of_a_large_file_stops_at_once(
    event_file: Path, tmp_path: Path
) -> None:
    """The old check ran inside the event loop, whose Ctrl-C handler only sets a flag: a
    1 GB file was checked to the end (~50 s) before Ctrl-C took effect."""
    big = tmp_path / "big.jsonl"
    big.write_bytes(event_file.read_bytes() * 200)  # 600 lines, 12 s at 20 ms a line
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": NO_BROKER,
        "PERPSIGNAL_DATA_DIR": str(tmp_path / "no-stack"),
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", SLOW_CHECK, str(big)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "checking\n"
        proc.send_signal(signal.SIGINT)
        started = time.monotonic()
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert time.monotonic() - started < 6, err
    assert proc.returncode == 130, err
    assert err == "perpsignal replay: interrupted\n"


def test_a_file_rewritten_between_check_and_send_stops_and_says_what_was_sent(
    event_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The file is read twice (checked, then sent, to keep memory flat): a line that no longer
    passes on the second read stops the replay, saying how many events went out."""
    from perpsignal_cli.replay import check, ready_lines

    checked = check(event_file)
    good = event_file.read_bytes().splitlines(keepends=True)
    event_file.write_bytes(good[0] + b"not an event\n" + b"".join(good[2:]))
    lines = ready_lines(event_file, checked)
    assert next(lines)[0].number == 1  # the first line still passes
    with pytest.raises(ValueError, match="changed while it was replayed: line 2: not JSON"):
        next(lines)
