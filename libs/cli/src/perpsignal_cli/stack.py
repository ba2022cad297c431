"""`perpsignal up`: the whole platform on one machine, every service its own process, supervised.

Kafka and PostgreSQL are embedded unless `KAFKA_BOOTSTRAP_SERVERS` / `DATABASE_URL` are set.

* One stack per data folder: `up.lock` (an flock, released by the kernel however the holder
  dies, so a stale one never blocks) refuses a second `up` with one line naming the first.
  `up`s on different folders take turns, through a per-user lock in the temp folder, from
  choosing the fixed ports to the services having bound them (`hold_port_choice`).
* A service that exits is restarted with exponential backoff (1 s doubling to 30 s, reset
  after a minute of running), except after an invalid configuration (exit 2), which a restart
  cannot fix; a dead embedded broker or PostgreSQL is restarted on its port. Each event is one
  terminal line.
* `--scale scorer=3,judge=2,gateway=2` runs several replicas of a service (`scale_plan`). Each
  replica is supervised alone (its own backoff and terminal lines, named `scorer-2`), has its
  own ops port (and, for gateways, its own HTTP port; the first keeps the usual one) and its
  own log, `logs/scorer-2.log`. Replicas of a service share its consumer group, so Kafka
  splits the partitions between them; topics are created with at least as many partitions
  as the largest replica count, so no replica idles for want of a partition.
* "ready" is printed only once the gateway answers HTTP. From then on the data sources'
  state is polled from the gateway (`SourceWatch`, every few seconds) and each change is one
  terminal line: "source binance is down since 20:01 UTC: <reason>", "... is up again".
* `stack.json` in the data folder holds the running stack's addresses and PIDs, so other
  commands (`replay`, `record`, `topics`, `migrate`, `export`) find it: `use_running_stack()`.
* Ctrl-C (or SIGTERM, or SIGHUP from a closed terminal) stops the services first (they drain
  and commit), then the embedded servers; nothing is left running. Children run in their own
  session with a parent-death signal, so even a SIGKILLed `up` leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import psutil

from perpsignal_common.embedded import (
    EmbeddedKafka,
    EmbeddedPostgres,
    die_with_parent,
    free_port,
)

SERVICES = ("ingestor", "scorer", "judge", "outcomes", "notifier", "gateway")
OPS_PORTS = {"ingestor": 9101, "scorer": 9102, "judge": 9103, "outcomes": 9104, "notifier": 9105}
STACK_FILE = "stack.json"
LOCK_FILE = "up.lock"
BACKOFF_START_S = 1.0
BACKOFF_MAX_S = 30.0
# replicas beyond this are refused: every one is a Python process on this machine
MAX_REPLICAS = 32
HEALTHY_AFTER_S = 60.0  # a service up this long starts its backoff from the beginning again
CONFIG_ERROR_EXIT = 2  # run_service's exit code for an invalid setting: a restart cannot help


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        # as the servers bind: a port whose last listener just exited (TIME_WAIT) is free
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def service_urls(ops_ports: dict[str, int]) -> str:
    """Return GATEWAY_SERVICE_URLS for services whose ops servers listen on local `ops_ports`."""
    return ",".join(f"{name}=http://127.0.0.1:{port}" for name, port in ops_ports.items())


def gateway_settings(env: dict[str, str], port: int, ops_ports: dict[str, int]) -> dict[str, str]:
    """Return what a gateway replica on `port` gets beyond the stack's environment `env`.

    An empty value counts as unset, as in the settings classes: `set -a; . .env.example`
    exports `GATEWAY_HOST=` and `GATEWAY_SERVICE_URLS=`, which must not leave the health
    view without services. The GPT Actions document names this replica's own URL unless
    `GATEWAY_PUBLIC_URL` says otherwise (the gateway's default, port 8000, is another
    program's or stack's when `up` moved to a free port).
    """
    out = {"GATEWAY_PORT": str(port)}
    if not env.get("GATEWAY_HOST"):
        out["GATEWAY_HOST"] = "127.0.0.1"
    if not env.get("GATEWAY_SERVICE_URLS"):
        out["GATEWAY_SERVICE_URLS"] = service_urls(ops_ports)
    if not env.get("GATEWAY_PUBLIC_URL"):
        out["GATEWAY_PUBLIC_URL"] = f"http://127.0.0.1:{port}"
    return out


class ScaleError(ValueError):
    """A `--scale` value that cannot be run; the message says which part and why."""


def parse_scale(text: str) -> dict[str, int]:
    """Parse `scorer=3,judge=2` into {service: replicas}; raise `ScaleError` if invalid."""
    out: dict[str, int] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, sep, count = (p.strip() for p in item.partition("="))
        if not sep or not count.isdigit():
            raise ScaleError(f"--scale: {item!r} is not SERVICE=N (e.g. scorer=3)")
        if name not in SERVICES:
            raise ScaleError(f"--scale: unknown service {name!r} (one of {', '.join(SERVICES)})")
        n = int(count)
        if not 1 <= n <= MAX_REPLICAS:
            raise ScaleError(f"--scale: {name}={n} is outside 1..{MAX_REPLICAS}")
        if name in out:
            raise ScaleError(f"--scale: {name} is given twice")
        out[name] = n
    return out


def replica_names(service: str, count: int) -> list[str]:
    """Return the replica names of `service`: the bare name alone, else `scorer-1`, ..."""
    return [service] if count <= 1 else [f"{service}-{i}" for i in range(1, count + 1)]


def replica_settings(service: str, index: int, count: int, env: dict[str, str]) -> dict[str, str]:
    """Return the settings replica `index` (0-based) of `count` needs beyond the stack's.

    * ingestor: the replicas share this machine's egress IP, so each takes 1/N of the
      Binance weight budget (`INGESTOR_REPLICAS`, unless set); they split the symbol
      universe through their consumer group (the ingestor README's sharding section);
    * notifier: one `getUpdates` poller per bot token (Telegram answers 409 Conflict to a
      second), so bot commands go to the first replica; every replica sends alerts.
    """
    if service == "ingestor" and count > 1 and not env.get("INGESTOR_REPLICAS"):
        return {"INGESTOR_REPLICAS": str(count)}
    if service == "notifier" and index > 0:
        return {"NOTIFIER_POLL_COMMANDS": "false"}
    return {}


def topic_specs_for_scale(largest: int) -> list[Any]:
    """Return the registry's topic specs with at least `largest` partitions each.

    A consumer group hands each partition to one member: a replica beyond a topic's partition
    count would idle. The embedded broker cannot add partitions later (no CreatePartitions),
    so they are created large enough at start-up.
    """
    from dataclasses import replace

    from perpsignal_common.events.topics import all_topic_specs

    return [replace(spec, partitions=max(spec.partitions, largest)) for spec in all_topic_specs()]


def _say(msg: str) -> None:
    print(f"[perpsignal] {msg}", flush=True)


def default_data_dir() -> Path:
    """Return the data folder `up` uses by default (PERPSIGNAL_DATA_DIR, else ./.data)."""
    return Path(os.environ.get("PERPSIGNAL_DATA_DIR", ".data")).resolve()


# the running stack's address file ------------------------------------------------------------


def _pid_alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_running(data_dir: Path | None = None) -> dict[str, Any] | None:
    """Return `stack.json` of the stack running on `data_dir`, or None (absent or stale)."""
    path = (data_dir or default_data_dir()) / STACK_FILE
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict) or not _pid_alive(info.get("pid")):
        return None
    return info


def use_running_stack(data_dir: Path | None = None) -> dict[str, Any] | None:
    """Point this process at the running `perpsignal up` unless a setting says otherwise.

    Fills `KAFKA_BOOTSTRAP_SERVERS` / `DATABASE_URL` from the data folder's `stack.json` when
    they are unset (an explicit setting always wins). Returns the stack's info, or None.
    """
    info = read_running(data_dir)
    if info is None:
        return None
    used = []
    if not os.environ.get("KAFKA_BOOTSTRAP_SERVERS") and info.get("kafka_bootstrap"):
        os.environ["KAFKA_BOOTSTRAP_SERVERS"] = str(info["kafka_bootstrap"])
        used.append(f"kafka {info['kafka_bootstrap']}")
    if not os.environ.get("DATABASE_URL") and info.get("database_url"):
        os.environ["DATABASE_URL"] = str(info["database_url"])
        used.append("its database")
    if used:
        print(
            f"perpsignal: using the running stack (pid {info['pid']}): {', '.join(used)}",
            file=sys.stderr,
        )
    return info


def no_stack_hint(setting: str) -> str:
    """Return what to add to a connection failure when `setting` is unset: then no running
    `perpsignal up` was found either (`use_running_stack` fills it in), so the default
    address was tried, which a first-time user did not choose (e.g. `replay` run from
    another folder than `make up`)."""
    if os.environ.get(setting):
        return ""
    running = read_running()
    if running is not None:  # its address of this setting is not written down: a password
        return (
            f"; {setting} is unset and the running perpsignal up (pid {running.get('pid')}) "
            f"does not write its address down (it holds a password): set {setting}"
        )
    return (
        f"; {setting} is unset and no perpsignal up runs on {default_data_dir()}: "
        f"start one there (make up), or set {setting} or PERPSIGNAL_DATA_DIR"
    )


def _write_json(path: Path, info: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(info, indent=2) + "\n")
    tmp.replace(path)  # readers never see half a file


# one lock per data folder ----------------------------------------------------------------------


class AlreadyRunning(Exception):
    """Another `perpsignal up` holds the data folder."""


def acquire_lock(data_dir: Path) -> IO[str]:
    """Take the data folder's lock or raise `AlreadyRunning` with a one-line reason."""
    data_dir.mkdir(parents=True, exist_ok=True)
    fh = open(data_dir / LOCK_FILE, "a+")  # noqa: SIM115 (held for the stack's lifetime)
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.seek(0)
        holder = fh.read().strip() or "?"
        fh.close()
        info = read_running(data_dir) or {}
        where = f", gateway {info['gateway_url']}" if info.get("gateway_url") else ""
        raise AlreadyRunning(
            f"perpsignal up is already running on {data_dir} (pid {holder}{where}); "
            "stop it (Ctrl-C in its terminal) or pass another --data-dir"
        ) from None
    fh.seek(0)
    fh.truncate()
    fh.write(f"{os.getpid()}\n")
    fh.flush()
    return fh


def data_dir_problem(data_dir: Path, exc: OSError) -> str:
    """Return the one line that says why `data_dir` cannot hold a stack (or the demo)."""
    reason = exc.strerror or str(exc)
    if isinstance(exc, (FileExistsError, NotADirectoryError)):
        reason = "it, or a folder above it, is a file"
    return (
        f"cannot use the data folder {data_dir}: {reason}; "
        "pass another --data-dir (or set PERPSIGNAL_DATA_DIR)"
    )


PORT_LOCK_WAIT_S = 90.0  # longest wait for another `up` to bind its ports
PORTS_BOUND_WAIT_S = 60.0  # longest wait for this stack's services to bind theirs


def hold_port_choice(
    say: Callable[[str], None], stopping: Callable[[], bool] = lambda: False
) -> IO[str] | None:
    """Take this machine's port-choice lock, waiting for another `up` that holds it.

    Held from choosing the fixed ports (gateway 8000, ops 9101-9105) until the services have
    bound them (`wait_bound`), so a second `up` started at the same time sees them taken and
    picks free ones. Returns None (and goes on unlocked) after `PORT_LOCK_WAIT_S`, or at once
    when `stopping()` (Ctrl-C while waiting).
    """
    import tempfile

    path = Path(tempfile.gettempdir()) / f"perpsignal-up-ports-{os.getuid()}.lock"
    fh = open(path, "a+")  # noqa: SIM115 (held until the ports are bound)
    deadline = time.monotonic() + PORT_LOCK_WAIT_S
    told = False
    while True:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fh
        except OSError:
            if not told:
                say("waiting for another perpsignal up to bind its ports...")
                told = True
            if stopping():
                fh.close()
                return None
            if time.monotonic() > deadline:
                fh.close()
                say("another perpsignal up is still choosing ports; going on without waiting")
                return None
            time.sleep(0.1)


def wait_bound(stack: Stack, stopping: Callable[[], bool]) -> None:
    """Wait until every service listens on its port (or has exited, or time is up)."""
    deadline = time.monotonic() + PORTS_BOUND_WAIT_S
    waiting = dict(stack.services)
    while waiting and time.monotonic() < deadline and not stopping():
        for name, svc in list(waiting.items()):
            key = "GATEWAY_PORT" if svc.service == "gateway" else "OPS_PORT"
            port = int(svc.env.get(key) or 0)
            exited = svc.proc is None or svc.proc.poll() is not None
            if exited or not port or not _port_free(port):
                del waiting[name]
        time.sleep(0.1)


# supervision -------------------------------------------------------------------------------------


@dataclass
class Supervised:
    """One service process (a replica), how to start it again, and its restart backoff.

    `name` is the replica's (`scorer-2`, or `scorer` when it runs alone), `service` the
    program it runs (`perpsignal_scorer`); empty means the same as `name`.
    """

    name: str
    env: dict[str, str]
    log_path: Path
    service: str = ""
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restarts: int = 0
    backoff_s: float = BACKOFF_START_S
    restart_at: float | None = None
    gave_up: bool = False

    def __post_init__(self) -> None:
        self.service = self.service or self.name

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", f"perpsignal_{self.service}"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches `up` only; it stops them in order
                preexec_fn=die_with_parent(signal.SIGTERM),  # noqa: PLW1509 (prctl only)
            )
        self.started_at = time.monotonic()
        self.restart_at = None


class Stack:
    """The processes of one local stack, stopped in reverse order."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.kafka: EmbeddedKafka | None = None
        self.pg: EmbeddedPostgres | None = None
        self.services: dict[str, Supervised] = {}
        self.info: dict[str, Any] = {}

    @property
    def procs(self) -> dict[str, subprocess.Popen[bytes]]:
        """Return the current process of every started service."""
        return {n: s.proc for n, s in self.services.items() if s.proc is not None}

    def publish(self) -> None:
        """Write the addresses and PIDs of the running stack to `stack.json`."""
        procs = self.procs
        # `services`: one PID per service (its first replica), as before replicas existed
        self.info["services"] = {}
        replicas: dict[str, list[dict[str, Any]]] = {}
        for name, svc in self.services.items():
            pid = procs[name].pid if name in procs else None
            if pid is not None:
                self.info["services"].setdefault(svc.service, pid)
            entry: dict[str, Any] = {"name": name, "pid": pid, "restarts": svc.restarts}
            if svc.service == "gateway":
                entry["port"] = int(svc.env.get("GATEWAY_PORT") or 0)
                entry["url"] = f"http://127.0.0.1:{entry['port']}"
            else:
                entry["ops_port"] = int(svc.env.get("OPS_PORT") or 0)
            entry["log"] = str(svc.log_path)
            replicas.setdefault(svc.service, []).append(entry)
        self.info["replicas"] = replicas
        gateways = [r["url"] for r in replicas.get("gateway", [])]
        if gateways:
            self.info["gateway_urls"] = gateways
            self.info["gateway_url"] = gateways[0]
        self.info["kafka_pid"] = self.kafka.pid if self.kafka else None
        self.info["postgres_pid"] = self.pg.pid if self.pg else None
        _write_json(self.data_dir / STACK_FILE, self.info)

    def gateway_answers(self, url: str) -> bool:
        """Return whether this stack's gateway at `url` listens and answers `/healthz`.

        An answer alone is not enough: until the gateway binds its port, another program
        that took the port (a server of another stack, a service's ops server) answers
        `/healthz` as well, and the stack would be announced with its gateway elsewhere.
        """
        port = int(url.rsplit(":", 1)[1])
        for svc in self.services.values():
            if svc.service == "gateway" and int(svc.env.get("GATEWAY_PORT") or 0) == port:
                if svc.proc is None or svc.proc.poll() is not None:
                    return False
                # None: the system hides the process's sockets; its answer is all we can see
                if listens(svc.proc.pid, port) is False:
                    return False
                return _answers(f"{url}/healthz")
        return False

    def supervise_once(self, logs: Path) -> None:
        """Restart whatever died: embedded servers at once, services after their backoff."""
        now = time.monotonic()
        changed = False
        if self.kafka is not None and self.kafka.pid is not None and not self.kafka.running():
            _say("the embedded Kafka broker died; restarting it on the same port (empty)")
            self.kafka.stop()
            self.kafka.start()
            _say(f"the embedded Kafka broker is back on {self.kafka.bootstrap}")
            changed = True
        if self.pg is not None and self.pg.pid is not None and not self.pg.running():
            _say("the embedded PostgreSQL died; restarting it on the same port")
            try:
                self.pg.restart()
                _say("the embedded PostgreSQL is back (crash recovery done)")
            except Exception as exc:  # retried on the next pass
                _say(f"the embedded PostgreSQL did not restart: {exc}; retrying")
            changed = True
        for svc in self.services.values():
            proc = svc.proc
            if proc is None or proc.poll() is None:
                if proc is not None and now - svc.started_at > HEALTHY_AFTER_S:
                    svc.backoff_s = BACKOFF_START_S
                continue
            if svc.gave_up:
                continue
            if proc.returncode == CONFIG_ERROR_EXIT:
                svc.gave_up = True  # restarting cannot fix a setting
                _say(
                    f"{svc.name} exited with code {proc.returncode} (invalid configuration); "
                    f"not restarting it (see {logs / (svc.name + '.log')})"
                )
                continue
            if svc.restart_at is None:
                svc.restart_at = now + svc.backoff_s
                _say(
                    f"{svc.name} exited with code {proc.returncode}; restarting in "
                    f"{svc.backoff_s:g}s (see {logs / (svc.name + '.log')})"
                )
                svc.backoff_s = min(BACKOFF_MAX_S, svc.backoff_s * 2)
            elif now >= svc.restart_at:
                self._move_if_taken(svc)
                svc.start()
                svc.restarts += 1
                assert svc.proc is not None
                _say(f"{svc.name} restarted (pid {svc.proc.pid}, restart {svc.restarts})")
                changed = True
        if changed:
            self.publish()

    def _move_if_taken(self, svc: Supervised) -> None:
        """Give `svc` a free port when another program took its own while it was down."""
        key = "GATEWAY_PORT" if svc.service == "gateway" else "OPS_PORT"
        port = int(svc.env.get(key) or 0)
        if not port or _port_free(port):
            return
        new = free_port()
        svc.env[key] = str(new)
        if svc.service == "gateway":
            url = f"http://127.0.0.1:{new}"
            _say(f"{svc.name} port {port} was taken by another program; now {url}")
        else:
            self.info.setdefault("ops_ports", {})[svc.name] = new
            _say(
                f"{svc.name}'s ops port {port} was taken by another program; now {new} "
                "(the gateway's health view of it is stale until the next up)"
            )

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
        with contextlib.suppress(FileNotFoundError):
            (self.data_dir / STACK_FILE).unlink()


SOURCE_POLL_S = 5.0


class SourceWatch:
    """Print one terminal line per change of a data source's state, as the gateway reports it.

    Reads `GET /health/services` (its `sources`: the degraded or down ones, with reason and
    since when) with the first of `GATEWAY_API_KEYS` when keys are set; a gateway that does not
    answer is skipped (the supervisor already reports dead processes).
    """

    def __init__(self, gateway_url: str, api_key: str | None = None) -> None:
        self.url = gateway_url.rstrip("/") + "/health/services"
        self.api_key = api_key
        self.failing: dict[str, str] = {}  # name -> state
        self.next_at = 0.0

    def poll(self, now: float, say: Any = None) -> list[str]:
        """Poll when due; print and return the lines for what changed."""
        if now < self.next_at:
            return []
        self.next_at = now + SOURCE_POLL_S
        request = urllib.request.Request(self.url)
        if self.api_key:
            request.add_header("X-API-Key", self.api_key)
        try:
            with urllib.request.urlopen(request, timeout=3) as resp:
                sources = json.loads(resp.read()).get("sources") or []
        except urllib.error.HTTPError as exc:
            if exc.code not in (401, 403):
                return []
            sources = self._from_readyz()  # no usable key: the public summary, no reasons
            if sources is None:
                return []
        except (OSError, ValueError):
            return []
        return self.update(sources, say or _say)

    def _from_readyz(self) -> list[dict[str, Any]] | None:
        url = self.url.removesuffix("/health/services") + "/readyz"
        try:
            with urllib.request.urlopen(url, timeout=3) as resp:
                lines = json.loads(resp.read()).get("degradedSources") or []
        except urllib.error.HTTPError as exc:  # 503 while catching up: same body shape
            try:
                lines = json.loads(exc.read()).get("degradedSources") or []
            except ValueError:
                return None
        except (OSError, ValueError):
            return None
        out = []
        for line in lines:  # "binance down since 2026-12-06T20:01:02+00:00"
            name, state, _, since = [*str(line).split(" "), "", "", "", ""][:4]
            out.append({"name": name, "state": state, "since": since, "reason": None})
        return out

    def update(self, sources: list[dict[str, Any]], say: Any) -> list[str]:
        """Compare the failing sources with the last poll; say each change once."""
        lines: list[str] = []
        now_failing = {}
        for src in sources:
            name, state = str(src.get("name")), str(src.get("state"))
            now_failing[name] = state
            if self.failing.get(name) != state:
                since = str(src.get("since") or "")[11:16]
                lines.append(
                    f"source {name} is {state} since {since} UTC: {src.get('reason') or '?'}"
                )
        lines += [f"source {name} is up again" for name in self.failing if name not in now_failing]
        self.failing = now_failing
        for line in lines:
            say(line)
        return lines


def _first_api_key() -> str | None:
    keys = [k.strip() for k in os.environ.get("GATEWAY_API_KEYS", "").split(",") if k.strip()]
    return keys[0] if keys else None


def listens(pid: int, port: int) -> bool | None:
    """Return whether process `pid` has a TCP socket listening on `port`; None when the
    system will not say (psutil's AccessDenied: a hardened /proc, a macOS or Windows policy),
    which left `up` waiting for ever, never announcing a stack that was up."""
    try:
        conns = psutil.Process(pid).net_connections(kind="tcp")
    except (psutil.AccessDenied, NotImplementedError):
        return None
    except (psutil.Error, OSError):
        return False
    return any(c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port for c in conns)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return bool(200 <= resp.status < 500)
    except urllib.error.HTTPError as exc:
        return exc.code < 500
    except (OSError, ValueError):
        return False


def choose_gateway_port(requested: int, say: Callable[[str], None]) -> int:
    """Return `requested` if it is free, else a free port, saying why (0: any free port).

    The "ready" lines print the gateway URL either way; the line says why it is not the port
    asked for (`--port`, GATEWAY_PORT, the default 8000), which another program holds.
    """
    if requested and _port_free(requested):
        return requested
    port = free_port()
    if requested:
        say(f"port {requested} is taken by another program; the gateway uses {port} instead")
    return port


def run_stack(
    *,
    data_dir: Path,
    only: list[str],
    gateway_port: int,
    on_ready: Callable[[dict[str, Any]], None] | None = None,
    on_tick: Callable[[], None] | None = None,
    on_stop: Callable[[], None] | None = None,
    scale: dict[str, int] | None = None,
    lock: IO[str] | None = None,
) -> int:
    """Start everything, print where it is, supervise until Ctrl-C, stop everything.

    `lock` is the data folder's lock when the caller took it already (`acquire_lock`: the
    demo, before it wipes the folder's database); it is released when the stack stops.

    `scale` maps a service to its replica count (`parse_scale`); unnamed services run one.

    `perpsignal demo` drives its replay through the hooks: `on_ready(info)` once the gateway
    answers (info as in `stack.json`), `on_tick()` on every supervision pass, and `on_stop()`
    before the services are stopped (Ctrl-C, SIGTERM, or a failure).
    """
    try:
        lock = lock or acquire_lock(data_dir)
    except AlreadyRunning as exc:
        print(f"perpsignal: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # a file, a read-only place, a missing mount: one line, no traceback
        print(f"perpsignal: {data_dir_problem(data_dir, exc)}", file=sys.stderr)
        return 1
    stale = data_dir / STACK_FILE
    if stale.exists():
        _say("a previous stack on this folder did not stop cleanly; starting afresh")
        stale.unlink()

    stop_requested = False

    def request_stop(signum: int, _frame: object) -> None:
        nonlocal stop_requested
        stop_requested = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    # a closed terminal (SIGHUP) stops the stack in order too, and removes stack.json
    signal.signal(signal.SIGHUP, request_stop)

    # the embedded PostgreSQL's platformdirs warns about a missing XDG_RUNTIME_DIR (containers,
    # CI): harmless, and not something a user starting the stack can act on
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
    logs = data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    stack = Stack(data_dir)
    env = dict(os.environ)
    port_lock: IO[str] | None = None
    step = "starting the embedded Kafka broker"  # what a start-up failure names; "" once up
    setting = ""  # the user's setting a failure of `step` points at, if any
    try:
        bootstrap = env.get("KAFKA_BOOTSTRAP_SERVERS")
        if not bootstrap:
            _say("starting the embedded Kafka broker (Tansu, memory storage)...")
            stack.kafka = EmbeddedKafka(log_path=logs / "kafka.log").start()
            bootstrap = stack.kafka.bootstrap
            env["KAFKA_BOOTSTRAP_SERVERS"] = bootstrap
        db_url = env.get("DATABASE_URL")
        if not db_url:
            step = "starting the embedded PostgreSQL"
            _say(f"starting the embedded PostgreSQL (data in {data_dir / 'postgres'})...")
            stack.pg = EmbeddedPostgres(data_dir / "postgres").start()
            db_url = stack.pg.url()
            env["DATABASE_URL"] = db_url
            if not stack.pg.durable:
                _say("  EMBEDDED_POSTGRES_DURABLE=false: a crash may lose recent writes")

        step = f"applying database migrations to {_redact(db_url)}"
        setting = "" if stack.pg is not None else "DATABASE_URL"
        _say("applying database migrations...")
        from perpsignal_common.db.migrate import upgrade

        upgrade(db_url.replace("postgresql://", "postgresql+asyncpg://", 1))

        replicas = {name: (scale or {}).get(name, 1) for name in only}
        largest = max(replicas.values(), default=1)
        step = f"creating topics on {bootstrap}"
        setting = "" if stack.kafka is not None else "KAFKA_BOOTSTRAP_SERVERS"
        _say("creating topics...")
        from perpsignal_common.kafka.admin import ensure_topics
        from perpsignal_common.settings import KafkaSettings

        kafka = KafkaSettings(kafka_bootstrap_servers=bootstrap)
        asyncio.run(ensure_topics(kafka, topic_specs_for_scale(largest)))
        if largest > 1:
            _warn_short_topics(kafka, replicas)

        # `--port 0` asks for any free ports: the ops ports too, so several stacks (tests running
        # side by side) never race for the fixed defaults
        any_port = gateway_port == 0
        step, setting = "starting the services", ""
        if not any_port:
            # two `up`s started at once would both find 8000 and 9101-9105 free, and the loser's
            # terminal would print the winner's gateway as its own: one chooses and binds first
            port_lock = hold_port_choice(_say, lambda: stop_requested)
        gateway_port = choose_gateway_port(gateway_port, _say)
        gateway_url = f"http://127.0.0.1:{gateway_port}"
        gateway_ports = [gateway_port]
        for i in range(1, replicas.get("gateway", 0)):
            nxt = gateway_port + i  # 8001, 8002, ... when free: addresses one can guess
            taken = any_port or not 0 < nxt < 65536 or nxt in gateway_ports
            gateway_ports.append(free_port() if taken or not _port_free(nxt) else nxt)
        # ops ports chosen before anything starts, so the gateway's health view knows them all;
        # a service's first replica keeps the usual port, the others get free ones
        ops_ports: dict[str, int] = {}
        for name in only:
            if name == "gateway":
                continue
            for i, replica in enumerate(replica_names(name, replicas[name])):
                usual = OPS_PORTS[name] if i == 0 and not any_port else 0
                ops_ports[replica] = usual if usual and _port_free(usual) else free_port()
        for name in only:
            for i, replica in enumerate(replica_names(name, replicas[name])):
                child_env = dict(env)
                if name == "gateway":
                    child_env.update(gateway_settings(env, gateway_ports[i], ops_ports))
                else:
                    child_env["OPS_PORT"] = str(ops_ports[replica])
                child_env.update(replica_settings(name, i, replicas[name], env))
                svc = Supervised(replica, child_env, logs / f"{replica}.log", service=name)
                svc.start()
                stack.services[replica] = svc
        stack.info = {
            "pid": os.getpid(),
            "data_dir": str(data_dir),
            "gateway_url": gateway_url if "gateway" in only else None,
            "kafka_bootstrap": bootstrap,
            # only a URL without a password is written down (the embedded one has none)
            "database_url": None if _redact(db_url) != db_url else db_url,
            "ops_ports": ops_ports,
            "scale": replicas,
            "logs": str(logs),
        }
        stack.publish()
        _say(f"services starting (logs: {logs}/<service>.log)...")
        step = ""
        if port_lock is not None:
            wait_bound(stack, lambda: stop_requested)
            port_lock.close()
            port_lock = None
        ready = False
        watch = SourceWatch(gateway_url, _first_api_key()) if "gateway" in only else None
        while not stop_requested:
            stack.supervise_once(logs)
            if not ready and stack.info.get("gateway_url"):
                gateway_url = str(stack.info["gateway_url"])  # moved if its port was taken
                watch = SourceWatch(gateway_url, _first_api_key())
            if ready and watch is not None:
                watch.poll(time.monotonic())
            if not ready and ("gateway" not in only or stack.gateway_answers(gateway_url)):
                ready = True
                _say("stack is up: ready")
                if "gateway" in only:
                    _say(f"  gateway:   {gateway_url}  (docs: /docs, health: /healthz)")
                    for extra in stack.info.get("gateway_urls", [])[1:]:
                        _say(f"  gateway:   {extra}  (another replica)")
                scaled = {n: c for n, c in replicas.items() if c > 1}
                if scaled:
                    _say(
                        "  replicas:  "
                        + ", ".join(f"{n}={c}" for n, c in scaled.items())
                        + " (each one's pid and ports: stack.json)"
                    )
                _say(f"  kafka:     {bootstrap}")
                _say(f"  database:  {_redact(db_url)}")
                _say(f"  logs:      {logs}/<service>.log")
                _say(f"  addresses: {data_dir / STACK_FILE} (replay, record, topics use it)")
                _say("press Ctrl-C to stop")
                if on_ready is not None:
                    on_ready(dict(stack.info))
            if ready and on_tick is not None:
                on_tick()
            time.sleep(0.2)
        _say("stopping...")
        return 0
    except Exception as exc:
        if not step:
            raise
        if stop_requested:
            # Ctrl-C reaches the whole terminal group: initdb, run by the embedded PostgreSQL
            # in it, exits 1 and removes its half-made folder. That failure is the user's stop,
            # not a broken database to report (the next `up` initialises the folder again)
            _say(f"interrupted while {step}")
            return 0
        # one line that says what failed, not a traceback (no password: `_scrub`)
        check = f" (check {setting})" if setting else ""  # the address came from it
        _say(f"{step} failed: {_scrub(f'{type(exc).__name__}: {exc}', env)}{check}")
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if on_stop is not None:
            with contextlib.suppress(Exception):
                on_stop()
        with contextlib.suppress(Exception):
            stack.stop()
        if port_lock is not None:
            port_lock.close()
        lock.close()
        _say("stopped")


# the topic whose partitions bound each scalable consumer's parallelism (its group's main input)
SCALE_TOPICS = {
    "ingestor": "perpsignal.commands.v1",  # its assignment shards the symbol universe
    "scorer": "perpsignal.market.v1",
    "judge": "perpsignal.signals.v1",
    "outcomes": "perpsignal.signals.judged.v1",
    "notifier": "perpsignal.signals.judged.v1",
}


def _warn_short_topics(kafka: Any, replicas: dict[str, int]) -> None:
    """Say when an existing topic has fewer partitions than a service has replicas.

    Topics created by this `up` are large enough; an outside broker's older topics may not be
    (the extra replicas then idle as hot standbys until one dies).
    """
    from perpsignal_common.kafka.admin import describe_topics

    try:
        described = asyncio.run(describe_topics(kafka))
    except Exception:  # best effort: the services report a broker that does not answer
        return
    for name, count in replicas.items():
        topic = SCALE_TOPICS.get(name)
        parts = described.get(kafka.topic(topic)) if topic else None
        if parts is not None and parts < count:
            _say(
                f"{name}={count} but {kafka.topic(topic)} has {parts} partitions: "
                f"{count - parts} replica(s) will idle until another dies"
            )


def _scrub(text: str, env: dict[str, str]) -> str:
    """Return `text` without the passwords of DATABASE_URL or KAFKA_SASL_PASSWORD."""
    url = env.get("DATABASE_URL", "")
    secrets = [env.get("KAFKA_SASL_PASSWORD", "")]
    if url != _redact(url):
        secrets.append(url.split("//", 1)[1].split("@", 1)[0].split(":", 1)[1])
    for secret in filter(None, secrets):
        text = text.replace(secret, "***")
    return text


def _redact(url: str) -> str:
    # never print a password
    if "@" in url and ":" in url.split("@", 1)[0].split("//", 1)[-1]:
        scheme, rest = url.split("//", 1)
        creds, host = rest.split("@", 1)
        return f"{scheme}//{creds.split(':', 1)[0]}:***@{host}"
    return url
