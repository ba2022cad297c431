"""Entry point: `python -m perpsignal_scorer` / `perpsignal run scorer`."""

from __future__ import annotations

from perpsignal_common.runtime import run_service
from perpsignal_scorer.service import ScorerService
from perpsignal_scorer.settings import ScorerSettings


def build() -> tuple[ScorerService, ScorerSettings]:
    """Read settings once and wire the service."""
    settings = ScorerSettings()
    return ScorerService(settings), settings


def main() -> None:
    """Run the scorer until SIGTERM."""
    run_service(build)
