"""Fixtures for the offline deployment checks: the deploy scripts as modules, parsed files."""

from __future__ import annotations

import importlib.util
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


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[dict[str, Any]]]:
    """Each overlay rendered by the pinned kustomize, exactly what `kubectl apply -k` sends."""
    validate = load_script("validate_k8s")
    return {o: validate.render(o) for o in validate.OVERLAYS}
