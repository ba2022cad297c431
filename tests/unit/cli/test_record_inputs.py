"""`perpsignal record` refuses what it cannot record before it connects, in one line each."""

from __future__ import annotations

from pathlib import Path

import pytest

from perpsignal_cli.record import main

# nothing listens here: a check made before connecting answers without it
NO_BROKER = "127.0.0.1:9"


@pytest.fixture(autouse=True)
def _no_broker(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", NO_BROKER)
    monkeypatch.setenv("PERPSIGNAL_DATA_DIR", str(tmp_path / "no-stack"))


def test_a_misspelt_topic_is_refused_not_waited_for_and_dropped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # `signal.v1` for `signals.v1`: the old code waited 10 s for it, then recorded the other
    # topic alone without a word (or, on its own, said "none of the topics exist")
    out = tmp_path / "r.jsonl"
    rc = main(["--out", str(out), "--topic", "perpsignal.market.v1", "--topic", "signal.v1"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "unknown topic(s) ['signal.v1']" in err
    assert "perpsignal.signals.v1" in err  # the names it could have meant are listed
    assert not out.exists()


@pytest.mark.parametrize(
    ("where", "says"),
    [("missing/r.jsonl", "does not exist"), ("folder", "is a directory")],
)
def test_an_output_that_cannot_be_written_is_refused_before_connecting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str, says: str
) -> None:
    (tmp_path / "folder").mkdir()
    rc = main(["--out", str(tmp_path / where), "--duration", "1"])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("perpsignal record: --out") and says in err
    assert "Traceback" not in err and "kafka" not in err  # the broker was never asked


@pytest.mark.parametrize(
    "flags", [["--max", "0"], ["--max", "-1"], ["--duration", "nan"], ["--idle", "-5"]]
)
def test_stop_conditions_that_never_or_always_hold_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--out", str(tmp_path / "r.jsonl"), *flags])
    assert exit_info.value.code == 2
    assert flags[0] in capsys.readouterr().err


def test_a_malformed_bootstrap_address_names_the_setting(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "localhost:abc")
    rc = main(["--out", str(tmp_path / "r.jsonl"), "--duration", "1"])
    err = capsys.readouterr().err
    assert rc == 1
    assert "Kafka at localhost:abc (KAFKA_BOOTSTRAP_SERVERS) cannot be used: ValueError" in err
