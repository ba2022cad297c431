"""Where the tests read recorded market data and vendor bodies from.

The repository ships the whole recorded set as `data/recorded/recorded-data.tar.xz` (0.9 MB,
sources and licences in `data/recorded/README.md`), so a clone alone runs the suite. It is
unpacked once per archive digest into `.data/recorded/<digest>/` (atomic rename, so parallel
xdist workers never see half a folder). `PERPSIGNAL_TEST_DATA` points at another copy laid out
the same way (`market/`, `api/`, `crds/`), e.g. `../shared/data`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ARCHIVE = REPO / "data" / "recorded" / "recorded-data.tar.xz"


def recorded_data_dir() -> Path | None:
    """The folder holding `market/`, `api/` and `crds/`, or None when no copy exists."""
    override = os.environ.get("PERPSIGNAL_TEST_DATA")
    if override:
        path = Path(override)
        return path if path.is_dir() else None
    if not ARCHIVE.is_file():
        return None
    digest = hashlib.sha256(ARCHIVE.read_bytes()).hexdigest()[:16]
    target = REPO / ".data" / "recorded" / digest
    if (target / "data").is_dir():
        return target / "data"
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{digest}-", dir=target.parent))
    try:
        with tarfile.open(ARCHIVE, "r:xz") as tar:
            tar.extractall(staging, filter="data")
        try:
            staging.rename(target)
        except OSError:
            # Another worker unpacked the same archive first; theirs is identical.
            if not (target / "data").is_dir():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target / "data"
