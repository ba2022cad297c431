"""The domain core compiled with mypyc, used only while it matches the source.

The per-bar path (factors, SMC, the rule judge, volatility, outcome evaluation) is plain
typed Python spread over many small functions: profiling finds no single hot loop for a
vectorised helper, but mypyc, which compiles this same annotated source to C extension
modules, runs it about 1.5x faster. The live scorer, the judge and the backtest therefore
keep running one engine; only how it is executed changes.

`make install-python` runs `build()` (`make native`), which compiles a
copy of this package into `<venv>/perpsignal-native/` together with a digest of the source
it was built from. At import, `activate` points this package's `__path__` at that copy only
when the digest equals the current source's, so an edited file never runs as stale machine
code: until the next build everything runs as pure Python. `PERPSIGNAL_NATIVE=0` forces
pure Python; without a C compiler the build says why and the package stays pure Python.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

NAME = __name__.rpartition(".")[0] or "perpsignal_domain"
# the source package: the top-level __init__ is never compiled, so it always lives there
PACKAGE = Path(sys.modules[NAME].__file__ or __file__).resolve().parent
GROUP = "perpsignal_native"  # the shared library mypyc builds: `perpsignal_native__mypyc`
# compiled: the per-bar path. Not compiled: research (report statistics, run once per
# report) and this module.
COMPILED = ("scoring", "judging", "outcomes", "trusted.py")
STAMP = "stamp.json"

# why the package runs as it does, for `perpsignal backtest` and the benchmarks to print
status = "pure Python (not activated)"


def native_root() -> Path:
    """Where the compiled copy lives: inside the environment, so a new venv (or another
    Python) never loads extensions built for a different interpreter."""
    return Path(sys.prefix) / "perpsignal-native"


def _sources(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in {".py", ".pyi"})


def source_digest(root: Path = PACKAGE) -> str:
    """A digest of every source file of the package and of the interpreter ABI: any change
    means the compiled copy is stale. (The extensions carry mypyc's runtime inside them,
    so a newer mypy needs no rebuild; `build` rebuilds with it anyway.)"""
    h = hashlib.sha256()
    h.update(sys.implementation.cache_tag.encode())
    for path in _sources(root):
        if "__pycache__" in path.parts:
            continue
        h.update(path.relative_to(root).as_posix().encode() + b"\0")
        h.update(path.read_bytes() + b"\0")
    return h.hexdigest()


def _mypy_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mypy")
    except PackageNotFoundError:
        return "none"


def activate(package_path: list[str]) -> str:
    """Serve this package's modules from the compiled copy when it is fresh; return why
    or why not (also kept in `status`)."""
    global status
    if os.environ.get("PERPSIGNAL_NATIVE", "1").strip().lower() in {"0", "false", "no", "off"}:
        status = "pure Python (PERPSIGNAL_NATIVE=0)"
        return status
    root = native_root()
    try:
        stamp = json.loads((root / STAMP).read_text())
    except (OSError, ValueError):
        status = "pure Python (no compiled build: `make install-python` makes one)"
        return status
    if not isinstance(stamp, dict) or stamp.get("digest") != source_digest():
        status = "pure Python (the compiled build is older than the source: `make install-python`)"
        return status
    package_path.insert(0, str(root / NAME))
    if str(root) not in sys.path:
        sys.path.append(str(root))  # the mypyc group library is a top-level module
    status = f"compiled with mypyc {stamp.get('mypy', '?')}"
    return status


_SETUP = """
import sys
from setuptools import setup
from mypyc.build import mypycify
paths = sys.argv[1:]
setup(
    name="perpsignal-native",
    ext_modules=mypycify(paths, opt_level="3", group_name=%(group)r),
    script_args=["build_ext", "--inplace", "--parallel", str(%(jobs)d)],
)
"""


def needs_build() -> bool:
    """Return True when `build` would compile (no build, or one from other source or mypy)."""
    try:
        stamp = json.loads((native_root() / STAMP).read_text())
        return bool(stamp.get("digest") != source_digest() or stamp.get("mypy") != _mypy_version())
    except (OSError, ValueError, AttributeError):
        return True


def build(force: bool = False) -> str:
    """Compile a copy of the package into `native_root()` and say what happened. Without a
    C compiler (or when mypyc refuses the code) the package runs as pure Python: slower,
    same results, so that is reported, not raised."""
    import shutil
    import subprocess
    import tempfile
    import time

    root = native_root()
    if not force and not needs_build():
        return f"{NAME}: compiled build is up to date ({root})"
    mypy = _mypy_version()
    started = time.monotonic()
    stage = root.with_name(root.name + ".new")
    try:  # before a minute of compiling: can the build be written where it belongs?
        shutil.rmtree(stage, ignore_errors=True)
        stage.mkdir(parents=True)
    except OSError as exc:  # e.g. a system-wide install whose prefix is not writable
        return f"{NAME}: the compiled build cannot be written ({exc}); runs as pure Python"
    work = Path(tempfile.mkdtemp(prefix="perpsignal-native-"))
    try:
        copy = work / NAME
        shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__", "*.so"))
        digest = source_digest(copy)  # of what is compiled, whatever is edited meanwhile
        paths = [f"{NAME}/{p}" for p in COMPILED]
        setup = _SETUP % {"group": GROUP, "jobs": os.cpu_count() or 1}
        done = subprocess.run(
            [sys.executable, "-c", setup, *paths],
            cwd=work,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-15:])
            shutil.rmtree(stage, ignore_errors=True)
            return f"{NAME}: mypyc build failed; the domain runs as pure Python.\n{tail}"
        shutil.move(str(copy), stage / NAME)
        for lib in work.glob(f"{GROUP}__mypyc*"):
            shutil.move(str(lib), stage / lib.name)
        stamp = {"digest": digest, "mypy": mypy, "compiled": list(COMPILED)}
        (stage / STAMP).write_text(json.dumps(stamp))
        # swap in whole: a reader sees the old build or the new one, never half of each
        old = root.with_name(root.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        if root.exists():
            root.rename(old)
        stage.rename(root)
        shutil.rmtree(old, ignore_errors=True)
    except OSError as exc:
        return f"{NAME}: the compiled build could not be written ({exc}); runs as pure Python"
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return f"{NAME}: compiled with mypyc in {time.monotonic() - started:.0f}s ({root})"
