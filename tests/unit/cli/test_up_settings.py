"""`perpsignal up` with an outside broker it cannot use names the setting in its one line."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from perpsignal_cli.main import main as cli_main


def test_a_malformed_kafka_address_names_kafka_bootstrap_servers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # a reachable database is not this test's subject: the migrations step is passed over
    monkeypatch.setattr("perpsignal_common.db.migrate.upgrade", lambda _url: None)
    monkeypatch.setenv("DATABASE_URL", "postgresql://app@127.0.0.1:9/app")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "localhost:abc")  # no port number
    stop_signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    handlers = {sig: signal.getsignal(sig) for sig in stop_signals}
    try:
        with pytest.raises(SystemExit) as exit_:
            cli_main(["up", "--port", "0", "--data-dir", str(tmp_path)])
    finally:  # `up` takes Ctrl-C, SIGTERM and SIGHUP over; give them back to pytest
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    assert exit_.value.code == 1
    text = capsys.readouterr().out
    failed = [line for line in text.splitlines() if "failed" in line]
    # the old line said only "invalid literal for int() with base 10: 'abc'"
    assert len(failed) == 1, text
    assert failed[0].startswith("[perpsignal] creating topics on localhost:abc failed: ")
    assert failed[0].endswith("(check KAFKA_BOOTSTRAP_SERVERS)")


def test_a_taken_gateway_port_is_named_with_the_one_used_instead() -> None:
    import socket

    from perpsignal_cli.stack import choose_gateway_port

    said: list[str] = []
    with socket.socket() as holder:  # another program on the port asked for
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        port = choose_gateway_port(taken, said.append)
    # the old code moved to a free port without a word: only the ready line's URL differed
    assert port != taken
    assert said == [f"port {taken} is taken by another program; the gateway uses {port} instead"]
    free = choose_gateway_port(port, said.append)  # free now: kept, nothing said
    assert (free, len(said)) == (port, 1)
    assert choose_gateway_port(0, said.append) > 0 and len(said) == 1  # 0 asks for any port


def test_ctrl_c_while_the_database_initialises_is_a_stop_not_a_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Ctrl-C reaches the terminal's whole group: initdb exits 1 and removes its half-made
    folder. The old `up` then printed "starting the embedded PostgreSQL failed:
    DependencyUnavailable: initdb ... exited with 1" and exit 1, as if the database were
    broken."""
    import os

    from perpsignal_cli import stack
    from perpsignal_common.errors import DependencyUnavailable

    class InterruptedInitdb:
        def __init__(self, data_dir: Path) -> None:
            self.data_dir = data_dir

        def start(self) -> InterruptedInitdb:
            os.kill(os.getpid(), signal.SIGINT)  # the terminal's Ctrl-C, seen by `up` too
            raise DependencyUnavailable(
                f"initdb of {self.data_dir} exited with 1: initdb: removing contents of data "
                f'directory "{self.data_dir}"'
            )

    monkeypatch.setattr(stack, "EmbeddedPostgres", InterruptedInitdb)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9")  # an outside one: not started
    monkeypatch.delenv("DATABASE_URL", raising=False)
    stop_signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    handlers = {sig: signal.getsignal(sig) for sig in stop_signals}
    try:
        rc = stack.run_stack(data_dir=tmp_path, only=["scorer"], gateway_port=0)
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    out = capsys.readouterr().out
    assert rc == 0
    assert "failed" not in out, out
    assert "[perpsignal] interrupted while starting the embedded PostgreSQL\n" in out
    assert out.endswith("[perpsignal] stopped\n")


def test_up_with_an_empty_services_list_is_refused_before_starting_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # `--services $SERVICES` with the variable empty: the old up started the broker and the
    # database, migrated, created topics and printed "ready" for a stack of no service
    def started(**_: object) -> int:
        raise AssertionError("up started a stack of no service")

    monkeypatch.setattr("perpsignal_cli.stack.run_stack", started)
    with pytest.raises(SystemExit) as exit_:
        cli_main(["up", "--services", "--port", "0", "--data-dir", str(tmp_path / "d")])
    captured = capsys.readouterr()
    assert exit_.value.code == 2
    assert captured.err.startswith("perpsignal: --services names none; name one or more of")
    assert captured.out == ""
    assert not (tmp_path / "d").exists()
