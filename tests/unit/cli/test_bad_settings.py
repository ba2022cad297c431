"""A bad setting ends a `perpsignal` command in one line naming it, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from perpsignal_cli.main import main

PASSWORD = "S3cret-pw"


@pytest.fixture(autouse=True)
def _no_stack(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # no running `perpsignal up` fills in the addresses
    monkeypatch.setenv("PERPSIGNAL_DATA_DIR", str(tmp_path / "no-stack"))
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9")


def _fails(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err  # one line, not a traceback
    return err


@pytest.mark.parametrize("argv", [["export"], ["migrate"]])
@pytest.mark.parametrize(
    ("url", "says"),
    [
        (f"mysql://bob:{PASSWORD}@127.0.0.1/db", "scheme 'mysql' is not PostgreSQL"),
        (f"postgresql://bob:{PASSWORD}@127.0.0.1/db?sslmode=bogus", "sslmode='bogus'"),
    ],
)
def test_a_malformed_database_url_is_named_without_its_password(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    url: str,
    says: str,
) -> None:
    monkeypatch.setenv("DATABASE_URL", url)
    err = _fails(argv, capsys)
    assert err.startswith(f"perpsignal {argv[0]}: DATABASE_URL")
    assert says in err
    assert PASSWORD not in err


@pytest.mark.parametrize(
    ("argv", "name"),
    [
        (["topics", "describe"], "KAFKA_FETCH_MAX_WAIT_MS"),
        (["migrate"], "DATABASE_POOL_SIZE"),
    ],
)
def test_a_setting_of_the_wrong_type_is_named(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], argv: list[str], name: str
) -> None:
    monkeypatch.setenv(name, "abc")
    err = _fails(argv, capsys)
    assert err.startswith(f"perpsignal {argv[0]}: {name}: Input should be a valid integer")
    assert "abc" not in err  # the value is not echoed: another setting's may be a secret


def test_ctrl_c_in_a_long_command_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Ctrl-C half-way through a calibration, or while the demo builds its events, printed a
    # KeyboardInterrupt traceback
    def interrupted(_argv: list[str]) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr("perpsignal_cli.calibrate.main", interrupted)
    with pytest.raises(SystemExit) as exit_info:
        try:
            main(["calibrate", "--symbol", "XRPUSDT", "--candles", "x.csv"])
        except KeyboardInterrupt:  # caught here: a regression fails this test, not the session
            pytest.fail("Ctrl-C escaped `perpsignal` as a KeyboardInterrupt traceback")
    assert exit_info.value.code == 130
    assert capsys.readouterr().err == "perpsignal calibrate: interrupted\n"


@pytest.mark.parametrize("action", ["create", "describe"])
@pytest.mark.parametrize(
    ("address", "says"),
    [("localhost:abc", "invalid literal for int()"), ("127.0.0.1:99999", "port must be 0-65535")],
)
def test_topics_with_a_malformed_kafka_address_names_the_setting(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    action: str,
    address: str,
    says: str,
) -> None:
    # the old code printed the client's ValueError / OverflowError traceback
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", address)
    with pytest.raises(SystemExit) as exit_info:
        main(["topics", action])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith(f"perpsignal topics: KAFKA_BOOTSTRAP_SERVERS={address} cannot be used")
    assert says in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("argv", [["export"], ["migrate"]])
def test_a_database_port_out_of_range_is_one_line_without_the_password(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    # the socket refused the port with an OverflowError traceback; the URL's parse refuses
    # it now, as a bad setting (exit 2)
    monkeypatch.setenv("DATABASE_URL", f"postgresql://bob:{PASSWORD}@127.0.0.1:99999/db")
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err == (f"perpsignal {argv[0]}: DATABASE_URL: port 99999 is not a TCP port (1-65535)\n")
