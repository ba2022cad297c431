"""The README's `make up` / `make demo` run the stack without the check tools' npm install."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.helpers import REPO

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")

LOCK = "deploy/tools/asyncapi/package-lock.json"


def _dry_run(target: str) -> str:
    """Return the commands `make TARGET` would run with the npm lock file newer than its install."""
    # -W: as on a fresh clone, where node_modules is missing; -n: print, run nothing
    done = subprocess.run(
        ["make", "-n", "-W", LOCK, target], cwd=REPO, capture_output=True, text=True, check=True
    )
    return done.stdout


@pytest.mark.parametrize(("target", "runs"), [("up", "perpsignal up"), ("demo", "perpsignal demo")])
def test_up_and_demo_install_the_python_packages_only(target: str, runs: str) -> None:
    # an unreachable npm registry made every `make up` on a fresh clone retry for over a minute
    commands = _dry_run(target)
    assert "uv sync" in commands and runs in commands
    assert "npm" not in commands


def test_install_still_installs_the_asyncapi_parser_for_the_checks() -> None:
    assert "npm ci" in _dry_run("install")
