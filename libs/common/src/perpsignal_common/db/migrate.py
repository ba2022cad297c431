"""Run Alembic migrations programmatically (used by `perpsignal migrate`, `up` and tests).

One Alembic history with a branch per owning service; `upgrade heads` applies them all.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
VERSIONS_DIR = MIGRATIONS_DIR / "versions"


def alembic_config(url: str) -> Config:
    """Return an Alembic config for `url` with every owner's version folder."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    locations = sorted(
        str(p) for p in VERSIONS_DIR.iterdir() if p.is_dir() and not p.name.startswith("__")
    )
    cfg.set_main_option("version_locations", " ".join(locations))
    cfg.set_main_option("path_separator", "space")
    cfg.attributes["database_url"] = url
    return cfg


def upgrade(url: str, target: str = "heads") -> None:
    """Apply migrations up to `target` (default: every branch head)."""
    command.upgrade(alembic_config(url), target)


def downgrade(url: str, target: str = "base") -> None:
    """Revert migrations down to `target`."""
    command.downgrade(alembic_config(url), target)
