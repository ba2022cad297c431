"""Entry point: `python -m perpsignal_outcomes` or `perpsignal run outcomes`."""

from __future__ import annotations

from perpsignal_common.runtime import run_service
from perpsignal_outcomes.service import OutcomesService
from perpsignal_outcomes.settings import OutcomesSettings


def build() -> tuple[OutcomesService, OutcomesSettings]:
    """Read settings once and wire the service."""
    settings = OutcomesSettings()
    return OutcomesService(settings), settings


def main() -> None:
    """Run the outcomes service until SIGTERM."""
    run_service(build)
