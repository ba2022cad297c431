"""Render a kustomize overlay to plain manifests: `kubectl kustomize` when present, else Python.

Why a Python renderer: CI has no cluster and may have no kubectl, yet the overlays must be
rendered and validated there. It implements exactly the kustomize features this repository
uses (resources, namespace, images, strategic-merge and JSON 6902 patches with targets);
anything else raises, so a new feature cannot be silently mis-rendered.
`tests/deploy` checks it matches `kubectl kustomize` wherever kubectl exists.

    uv run python deploy/scripts/k8s_render.py dev [--out FILE] [--engine python|kubectl|auto]
"""

from __future__ import annotations

import argparse
import copy
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
OVERLAYS = ("dev", "prod")

Doc = dict[str, Any]
SUPPORTED = {"apiVersion", "kind", "resources", "namespace", "images", "patches"}
# Kinds that live outside namespaces (kustomize leaves them untouched)
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}
# Lists that strategic merge patches merge by key rather than replace
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
}


class RenderError(ValueError):
    """The kustomization uses something this renderer does not implement."""


def load_docs(path: Path) -> list[Doc]:
    """Return the non-empty YAML documents of a file."""
    with path.open() as f:
        return [d for d in yaml.safe_load_all(f) if d]


def build(folder: Path) -> list[Doc]:
    """Return the resources of the kustomization in `folder`, transformed."""
    kfile = folder / "kustomization.yaml"
    spec = load_docs(kfile)[0]
    unknown = set(spec) - SUPPORTED
    if unknown:
        raise RenderError(f"{kfile}: unsupported fields {sorted(unknown)}")
    docs: list[Doc] = []
    for entry in spec.get("resources", []):
        target = (folder / entry).resolve()
        docs.extend(build(target) if target.is_dir() else load_docs(target))
    for patch in spec.get("patches", []):
        apply_patch(docs, patch, folder)
    for image in spec.get("images", []):
        set_image(docs, image)
    if "namespace" in spec:
        for d in docs:
            if d["kind"] not in CLUSTER_SCOPED:
                d.setdefault("metadata", {})["namespace"] = spec["namespace"]
    return docs


def _matches(doc: Doc, target: dict[str, Any]) -> bool:
    unknown = set(target) - {"kind", "name", "group", "version"}
    if unknown:
        raise RenderError(f"unsupported patch target fields {sorted(unknown)}")
    group, _, version = doc["apiVersion"].rpartition("/")
    return (
        target.get("kind", doc["kind"]) == doc["kind"]
        and target.get("name", doc["metadata"]["name"]) == doc["metadata"]["name"]
        and target.get("group", group) == group
        and target.get("version", version) == version
    )


def apply_patch(docs: list[Doc], patch: dict[str, Any], folder: Path) -> None:
    """Apply one `patches` entry (file or inline; SMP or JSON 6902) to the matching docs."""
    if "path" in patch:
        bodies = load_docs(folder / patch["path"])
    else:
        bodies = [yaml.safe_load(patch["patch"])]
    target = patch.get("target")
    for body in bodies:
        if isinstance(body, list):
            if target is None:
                raise RenderError("a JSON 6902 patch needs a target")
            hits = [d for d in docs if _matches(d, target)]
            for d in hits:
                json6902(d, body)
        else:
            sel = target or {"kind": body["kind"], "name": body["metadata"]["name"]}
            hits = [d for d in docs if _matches(d, sel)]
            for i, d in enumerate(docs):
                if d in hits:
                    docs[i] = strategic_merge(d, body)
        if not hits:
            raise RenderError(f"patch {patch} matched no resource")


def _pointer(path: str) -> list[str]:
    return [p.replace("~1", "/").replace("~0", "~") for p in path.lstrip("/").split("/")]


def json6902(doc: Doc, ops: list[dict[str, Any]]) -> None:
    """Apply JSON 6902 `add`, `replace` and `remove` operations in place."""
    for op in ops:
        *parents, last = _pointer(op["path"])
        node: Any = doc
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        if isinstance(node, list):
            index = len(node) if last == "-" else int(last)
            if op["op"] == "add":
                node.insert(index, copy.deepcopy(op["value"]))
            elif op["op"] == "replace":
                node[index] = copy.deepcopy(op["value"])
            elif op["op"] == "remove":
                del node[index]
            else:
                raise RenderError(f"unsupported op {op['op']}")
        elif op["op"] in ("add", "replace"):
            if op["op"] == "replace" and last not in node:
                raise RenderError(f"replace of missing path {op['path']}")
            node[last] = copy.deepcopy(op["value"])
        elif op["op"] == "remove":
            del node[last]
        else:
            raise RenderError(f"unsupported op {op['op']}")


def strategic_merge(base: Any, patch: Any, key: str | None = None) -> Any:
    """Merge `patch` into `base`: maps recursively, keyed lists by key, other lists replaced."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for k, v in patch.items():
            out[k] = strategic_merge(base[k], v, k) if k in base else copy.deepcopy(v)
        return out
    if isinstance(base, list) and isinstance(patch, list) and key in MERGE_KEYS:
        mk = MERGE_KEYS[key]
        out_list = [copy.deepcopy(i) for i in base]
        for item in patch:
            idx = next((i for i, b in enumerate(out_list) if b.get(mk) == item.get(mk)), None)
            if idx is None:
                out_list.append(copy.deepcopy(item))
            else:
                out_list[idx] = strategic_merge(out_list[idx], item)
        return out_list
    return copy.deepcopy(patch)


def set_image(docs: list[Doc], image: dict[str, str]) -> None:
    """Apply one `images` entry to every container whose image name matches."""
    for d in docs:
        pod = d.get("spec", {}).get("template", {}).get("spec", {})
        for c in pod.get("containers", []) + pod.get("initContainers", []):
            name, _, tag = c["image"].partition(":")
            if name == image["name"]:
                c["image"] = f"{image.get('newName', name)}:{image.get('newTag', tag)}"


def render_python(overlay: str) -> list[Doc]:
    """Render an overlay with the Python renderer."""
    return build(K8S / "overlays" / overlay)


def render_kubectl(overlay: str) -> list[Doc]:
    """Render an overlay with `kubectl kustomize` (raises when kubectl is absent)."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        raise FileNotFoundError("kubectl is not on PATH")
    out = subprocess.run(
        [kubectl, "kustomize", str(K8S / "overlays" / overlay)],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def render(overlay: str, engine: str = "auto") -> list[Doc]:
    """Render with `engine` (auto = kubectl when on PATH, else Python)."""
    if engine == "kubectl" or (engine == "auto" and shutil.which("kubectl")):
        return render_kubectl(overlay)
    return render_python(overlay)


def main(argv: list[str] | None = None) -> int:
    """Render one overlay (or every overlay into deploy/k8s/rendered/ with --all)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overlay", nargs="?", choices=OVERLAYS)
    parser.add_argument("--all", action="store_true", help="render every overlay to --dir")
    parser.add_argument("--dir", default=str(K8S / "rendered"))
    parser.add_argument("--out", default="-", help="file to write (default stdout)")
    parser.add_argument("--engine", choices=("auto", "python", "kubectl"), default="auto")
    args = parser.parse_args(argv)
    if not args.all and not args.overlay:
        parser.error("name an overlay or pass --all")
    jobs = (
        [(o, Path(args.dir) / f"{o}.yaml") for o in OVERLAYS]
        if args.all
        else [(args.overlay, None if args.out == "-" else Path(args.out))]
    )
    for overlay, dest in jobs:
        text = yaml.safe_dump_all(render(overlay, args.engine), sort_keys=False, width=100)
        if dest is None:
            sys.stdout.write(text)
        else:
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text(text)
            sys.stderr.write(f"rendered {overlay} -> {dest}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
