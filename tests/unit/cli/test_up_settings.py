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
