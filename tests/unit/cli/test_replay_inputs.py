"""`perpsignal replay` answers a file it cannot replay, or a broker it cannot reach, in one
line that names the problem (and the setting), never a traceback or a silent success."""

from __future__ import annotations

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
    # out-of-range port was an OverflowError traceback
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", address)
    err = _refused([str(event_file)], capsys)
    assert f"(KAFKA_BOOTSTRAP_SERVERS={address})" in err


def test_an_unreachable_broker_names_the_setting(
    event_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = _refused([str(event_file)], capsys)
    assert "cannot connect" in err and f"(KAFKA_BOOTSTRAP_SERVERS={NO_BROKER})" in err


def test_a_topic_filter_that_selects_nothing_is_refused(
    event_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # market events only: the old code connected, sent nothing and exited 0
    err = _refused([str(event_file), "--topic", "perpsignal.signals.v1"], capsys)
    assert "none of its 3 events is on perpsignal.signals.v1; nothing to replay" in err
