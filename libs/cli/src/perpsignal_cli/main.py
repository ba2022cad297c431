"""`perpsignal`: one entry point for the local stack, services and tools (design.md section 6)."""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import platform
import sys
from pathlib import Path

from perpsignal_cli.argtypes import port_number

SERVICES = ("ingestor", "scorer", "judge", "outcomes", "notifier", "gateway")
# commands that talk to the broker or database: they use a running `perpsignal up`'s addresses
# (its data folder's stack.json) when KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL are unset. These
# two are parsed here; `export`, `replay` and `record` look after parsing their own arguments,
# so that their `--help` prints the help only (it printed "using the running stack" first)
FINDS_RUNNING_STACK = ("topics", "migrate")
REPO_ROOT = Path(__file__).resolve().parents[4]


def _cmd_run(args: argparse.Namespace) -> int:
    module = importlib.import_module(f"perpsignal_{args.service}.main")
    module.main()
    return 0


def _cmd_up(args: argparse.Namespace) -> int:
    from perpsignal_cli.stack import ScaleError, parse_scale, run_stack

    if not args.services:  # `--services` alone (a shell variable that was empty)
        print(
            f"perpsignal: --services names none; name one or more of {', '.join(SERVICES)} "
            "(or leave it out for all)",
            file=sys.stderr,
        )
        return 2
    try:
        scale = parse_scale(args.scale)
    except ScaleError as exc:
        print(f"perpsignal: {exc}", file=sys.stderr)
        return 2
    left_out = sorted(set(scale) - set(args.services))
    if left_out:
        print(
            f"perpsignal: --scale names {', '.join(left_out)}, which --services leaves out",
            file=sys.stderr,
        )
        return 2
    return run_stack(
        data_dir=Path(args.data_dir).resolve(),
        only=args.services,
        gateway_port=args.port,
        scale=scale,
    )


def _cmd_topics(args: argparse.Namespace) -> int:
    from perpsignal_common.events.topics import all_topic_specs
    from perpsignal_common.kafka.admin import describe_topics, ensure_topics
    from perpsignal_common.settings import KafkaSettings

    if args.action is None:
        # Creating topics is a side effect: never the default of a bare `perpsignal topics`
        args.topics_parser.print_help(sys.stderr)
        return 2
    kafka = KafkaSettings()
    if args.action == "list":
        specs: list[dict[str, object]] = [
            {
                "topic": kafka.topic(s.name),
                "partitions": s.partitions,
                "retention_ms": s.retention_ms,
                "key": s.key,
                "compacted": s.compacted,
            }
            for s in all_topic_specs()
        ]
        if args.json:
            _print_json(specs)
            return 0
        for s in all_topic_specs():
            print(
                f"{kafka.topic(s.name):45} partitions={s.partitions:<3} "
                f"retention_days={s.retention_ms // 86_400_000:<4} key={s.key}"
            )
        return 0
    import asyncio  # here, not at the top: every command would pay for it (~40 ms)

    from aiokafka.errors import KafkaError

    from perpsignal_cli.brokers import SETTING, kafka_unreachable, quiet_kafka_connect
    from perpsignal_common.errors import DependencyUnavailable

    try:
        with quiet_kafka_connect():
            if args.action == "create":
                created = asyncio.run(ensure_topics(kafka))
            else:
                described = asyncio.run(describe_topics(kafka))
    except (DependencyUnavailable, KafkaError) as exc:
        from perpsignal_cli.stack import no_stack_hint

        hint = no_stack_hint(SETTING)
        print(f"perpsignal topics: {kafka_unreachable(kafka, exc)}{hint}", file=sys.stderr)
        return 1
    except (ValueError, OverflowError) as exc:  # the client parsing "host:abc" or port 99999
        print(
            f"perpsignal topics: KAFKA_BOOTSTRAP_SERVERS={kafka.kafka_bootstrap_servers} "
            f"cannot be used: {type(exc).__name__}: {exc}",
            file=sys.stderr,
        )
        return 1
    if args.action == "create":
        if args.json:
            _print_json({"created": created})
            return 0
        print(f"created {len(created)} topic(s)")
        for name in created:
            print(f"  {name}")
        return 0
    if args.json:
        _print_json([{"topic": n, "partitions": p} for n, p in sorted(described.items())])
        return 0
    for name, parts in sorted(described.items()):
        print(f"{name:45} partitions={parts}")
    return 0


def _print_json(value: object) -> None:
    """Write one JSON document to stdout (the `--json` output scripts parse)."""
    print(json.dumps(value, indent=2, sort_keys=True, default=str))


def _version() -> str:
    """Return the installed `perpsignal` distribution's version (its package metadata)."""
    from importlib import metadata

    try:
        return metadata.version("perpsignal")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def _cmd_version(args: argparse.Namespace) -> int:
    if not args.json:
        print(f"perpsignal {_version()}")
        return 0
    from importlib import metadata

    packages: dict[str, str | None] = {}
    for dist in ("perpsignal", "perpsignal-common", *(f"perpsignal-{s}" for s in SERVICES)):
        try:
            packages[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            packages[dist] = None
    _print_json({"version": _version(), "python": platform.python_version(), "packages": packages})
    return 0


def _cmd_schemas(args: argparse.Namespace) -> int:
    from perpsignal_common.events.export import render_all, write_all

    out = Path(args.out)
    if args.check:
        rendered = render_all()
        stale = [
            rel
            for rel, content in rendered.items()
            if not (out / rel).exists() or (out / rel).read_text() != content
        ]
        for rel in stale:
            print(f"out of date: {out / rel}")
        # a schema no longer generated (an event type renamed or removed) was still published
        # from the folder and passed the check
        stray = sorted(
            p for p in out.rglob("*.json") if p.relative_to(out).as_posix() not in rendered
        )
        for path in stray:
            print(f"no longer generated: {path} (delete it)")
        return 1 if stale or stray else 0
    try:
        written = write_all(out)
    except OSError as exc:
        print(f"perpsignal schemas: cannot write to {out}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    print(f"wrote {len(written)} files to {out}")
    return 0


def _cmd_migrate(args: argparse.Namespace) -> int:
    from alembic.util import CommandError

    from perpsignal_common.db.engine import is_connection_error
    from perpsignal_common.db.migrate import downgrade, upgrade
    from perpsignal_common.settings import DatabaseSettings

    url = DatabaseSettings().async_url()
    try:
        if args.down:
            downgrade(url, args.down)
        else:
            upgrade(url)
    except CommandError as exc:  # e.g. an unknown --down revision
        print(f"perpsignal migrate: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        if not is_connection_error(exc):
            raise
        # the type only: a driver's text may quote the host and user of DATABASE_URL
        from perpsignal_cli.stack import no_stack_hint

        hint = no_stack_hint("DATABASE_URL")
        print(
            f"perpsignal migrate: database unavailable: {type(exc).__name__} (DATABASE_URL){hint}",
            file=sys.stderr,
        )
        return 1
    print("migrations applied")
    return 0


def _delegate(module: str, func: str = "main"):  # type: ignore[no-untyped-def]
    def run(args: argparse.Namespace) -> int:
        mod = importlib.import_module(module)
        rc = getattr(mod, func)(args.rest)
        return int(rc or 0)

    return run


class _VersionAction(argparse.Action):
    """`--version`: reads the package metadata when asked, not on every command (~20 ms)."""

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> None:
        print(f"perpsignal {_version()}")  # stdout, as argparse's own version action
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of every sub-command."""
    p = argparse.ArgumentParser(prog="perpsignal", description=__doc__)
    p.add_argument("--version", action=_VersionAction, nargs=0, help="print the version")
    sub = p.add_subparsers(dest="command", required=True)

    version = sub.add_parser("version", help="print the installed version")
    version.add_argument("--json", action="store_true", help="also every package, as JSON")
    version.set_defaults(func=_cmd_version)

    up = sub.add_parser(
        "up",
        help="run the whole stack locally (embedded Kafka and PostgreSQL "
        "unless KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL are set)",
    )
    up.add_argument(
        "--data-dir",
        default=os.environ.get("PERPSIGNAL_DATA_DIR", ".data"),
        help="where the embedded PostgreSQL keeps its data and services log",
    )
    up.add_argument(
        "--port",
        type=port_number,
        default=os.environ.get("GATEWAY_PORT", "8000"),
        help="gateway port (a free one if taken; 0 = free ports for it and every ops server)",
    )
    up.add_argument("--services", nargs="*", choices=SERVICES, default=list(SERVICES))
    up.add_argument(
        "--scale",
        default="",
        metavar="SERVICE=N,...",
        help="replicas per service, e.g. scorer=3,judge=2,gateway=2 (each supervised alone, "
        "with its own ops port; gateways get their own HTTP ports; replicas of a service "
        "share its consumer group, so Kafka splits the partitions between them)",
    )
    up.set_defaults(func=_cmd_up)

    run = sub.add_parser("run", help="run one service in the foreground, as a container does")
    run.add_argument("service", choices=SERVICES)
    run.set_defaults(func=_cmd_run)

    topics = sub.add_parser(
        "topics",
        help="list, create or describe the platform topics",
        description="list: the registry's topics; create: create the missing ones on the "
        "broker (idempotent); describe: the partitions of those that exist on the broker",
    )
    topics.add_argument("action", choices=("list", "create", "describe"), nargs="?")
    topics.add_argument("--json", action="store_true", help="print JSON for scripts")
    topics.set_defaults(func=_cmd_topics, topics_parser=topics)

    schemas = sub.add_parser("schemas", help="export JSON Schema of every event + AsyncAPI")
    schemas.add_argument("--out", default=str(REPO_ROOT / "schemas"))
    schemas.add_argument("--check", action="store_true", help="exit 1 if files are stale")
    schemas.set_defaults(func=_cmd_schemas)

    migrate = sub.add_parser("migrate", help="apply database migrations (DATABASE_URL)")
    migrate.add_argument("--down", default=None, help="downgrade to this revision instead")
    migrate.set_defaults(func=_cmd_migrate)

    for name, module, helptext in (
        ("bench", "perpsignal_cli.bench", "run every benchmark in bench/ and print one table"),
        ("backtest", "perpsignal_cli.backtest", "run history through scorer, judge, outcomes"),
        ("calibrate", "perpsignal_cli.calibrate", "walk-forward fit of weights and thresholds"),
        ("demo", "perpsignal_cli.demo", "the whole stack replaying bundled real data, offline"),
        ("replay", "perpsignal_cli.replay", "publish a JSON-lines event file onto the topics"),
        ("record", "perpsignal_cli.record", "tap topics into a JSON-lines event file"),
        ("export", "perpsignal_cli.export", "export signal history as JSON lines"),
        ("docs", "perpsignal_cli.docs", "regenerate .env.example and the README tables"),
    ):
        sp = sub.add_parser(name, help=helptext, add_help=False)
        sp.add_argument("rest", nargs=argparse.REMAINDER)
        sp.set_defaults(func=_delegate(module))
    return p


def main(argv: list[str] | None = None) -> None:
    """Parse arguments and run the sub-command."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if hasattr(args, "rest"):
        args.rest = [*extra, *args.rest]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.command in FINDS_RUNNING_STACK:
        from perpsignal_cli.stack import use_running_stack

        use_running_stack()
    try:
        rc = args.func(args)
    except ModuleNotFoundError as exc:
        print(f"perpsignal: {exc}", file=sys.stderr)
        rc = 2
    except KeyboardInterrupt:  # Ctrl-C where a command has no handler of its own: no traceback
        print(f"perpsignal {args.command}: interrupted", file=sys.stderr)
        rc = 130
    except Exception as exc:
        problem = setting_problem(exc)
        if problem is None:
            raise
        print(f"perpsignal {args.command}: {problem}", file=sys.stderr)
        rc = 2  # as a service started with a bad setting (run_service)
    sys.exit(rc)


def setting_problem(exc: BaseException) -> str | None:
    """Return one line naming the bad setting `exc` is about, or None if it is not one.

    A malformed DATABASE_URL (`ConfigError`, password-free by design) or a setting of the
    wrong type (pydantic's `ValidationError` of a `*Settings` class) used to end `export`,
    `migrate` or `topics` in a traceback. The value is not repeated: it may be a secret.
    """
    from pydantic import ValidationError

    from perpsignal_common.errors import ConfigError

    if isinstance(exc, ConfigError):
        return str(exc)
    if isinstance(exc, ValidationError) and exc.title.endswith("Settings"):
        return "; ".join(
            f"{'.'.join(str(p) for p in err['loc']).upper() or exc.title}: {err['msg']}"
            for err in exc.errors(include_input=False, include_url=False)
        )
    return None


if __name__ == "__main__":
    main()


__all__ = ["build_parser", "main", "setting_problem"]
