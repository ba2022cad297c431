"""`perpsignal up`: the whole platform on one machine, every service its own process.

Kafka and PostgreSQL are embedded unless `KAFKA_BOOTSTRAP_SERVERS` / `DATABASE_URL` are set.
Ctrl-C (or SIGTERM) stops the services first (they drain and commit), then the embedded
servers; nothing is left running.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from perpsignal_common.embedded import EmbeddedKafka, EmbeddedPostgres, free_port

SERVICES = ("ingestor", "scorer", "judge", "outcomes", "notifier", "gateway")
OPS_PORTS = {"ingestor": 9101, "scorer": 9102, "judge": 9103, "outcomes": 9104, "notifier": 9105}


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def service_urls(ops_ports: dict[str, int]) -> str:
    """Return GATEWAY_SERVICE_URLS for services whose ops servers listen on local `ops_ports`."""
    return ",".join(f"{name}=http://127.0.0.1:{port}" for name, port in ops_ports.items())


def _say(msg: str) -> None:
    print(f"[perpsignal] {msg}", flush=True)


class Stack:
    """The processes of one local stack, stopped in reverse order."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.kafka: EmbeddedKafka | None = None
        self.pg: EmbeddedPostgres | None = None
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 25
        for name, proc in self.procs.items():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _say(f"{name} did not stop in time; killing it")
                proc.kill()
                proc.wait(5)
        if self.kafka:
            self.kafka.stop()
        if self.pg:
            self.pg.stop()


def run_stack(*, data_dir: Path, only: list[str], gateway_port: int) -> int:
    """Start everything, print where it is, wait for Ctrl-C, stop everything."""
    stop_requested = False

    def request_stop(signum: int, _frame: object) -> None:
        nonlocal stop_requested
        stop_requested = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)

    logs = data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    stack = Stack(data_dir)
    env = dict(os.environ)
    try:
        bootstrap = env.get("KAFKA_BOOTSTRAP_SERVERS")
        if not bootstrap:
            _say("starting the embedded Kafka broker (Tansu, memory storage)...")
            stack.kafka = EmbeddedKafka(log_path=logs / "kafka.log").start()
            bootstrap = stack.kafka.bootstrap
            env["KAFKA_BOOTSTRAP_SERVERS"] = bootstrap
        db_url = env.get("DATABASE_URL")
        if not db_url:
            _say(f"starting the embedded PostgreSQL (data in {data_dir / 'postgres'})...")
            stack.pg = EmbeddedPostgres(data_dir / "postgres").start()
            db_url = stack.pg.url()
            env["DATABASE_URL"] = db_url

        _say("applying database migrations...")
        from perpsignal_common.db.migrate import upgrade

        upgrade(db_url.replace("postgresql://", "postgresql+asyncpg://", 1))

        _say("creating topics...")
        from perpsignal_common.kafka.admin import ensure_topics
        from perpsignal_common.settings import KafkaSettings

        asyncio.run(ensure_topics(KafkaSettings(kafka_bootstrap_servers=bootstrap)))

        if gateway_port == 0 or not _port_free(gateway_port):
            gateway_port = free_port()
        # ops ports chosen before anything starts, so the gateway's health view knows them all
        ops_ports = {
            name: OPS_PORTS[name] if _port_free(OPS_PORTS[name]) else free_port()
            for name in only
            if name != "gateway"
        }
        for name in only:
            child_env = dict(env)
            if name == "gateway":
                child_env["GATEWAY_PORT"] = str(gateway_port)
                child_env.setdefault("GATEWAY_HOST", "127.0.0.1")
                child_env.setdefault("GATEWAY_SERVICE_URLS", service_urls(ops_ports))
            else:
                child_env["OPS_PORT"] = str(ops_ports[name])
            log = open(logs / f"{name}.log", "ab")  # noqa: SIM115
            stack.procs[name] = subprocess.Popen(
                [sys.executable, "-m", f"perpsignal_{name}"],
                env=child_env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        _say("stack is up")
        _say(f"  gateway:   http://127.0.0.1:{gateway_port}  (docs: /docs, health: /healthz)")
        _say(f"  kafka:     {bootstrap}")
        _say(f"  database:  {_redact(db_url)}")
        _say(f"  logs:      {logs}/<service>.log")
        _say("press Ctrl-C to stop")
        reported: set[str] = set()
        while not stop_requested:
            for name, proc in stack.procs.items():
                if proc.poll() is not None and name not in reported:
                    reported.add(name)
                    _say(f"{name} exited with code {proc.returncode}; see {logs}/{name}.log")
            time.sleep(0.2)
        _say("stopping...")
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        with contextlib.suppress(Exception):
            stack.stop()
        _say("stopped")


def _redact(url: str) -> str:
    # never print a password
    if "@" in url and ":" in url.split("@", 1)[0].split("//", 1)[-1]:
        scheme, rest = url.split("//", 1)
        creds, host = rest.split("@", 1)
        return f"{scheme}//{creds.split(':', 1)[0]}:***@{host}"
    return url
