"""Entry point: `python -m perpsignal_notifier` / `perpsignal run notifier`."""

from __future__ import annotations

from perpsignal_common.runtime import Service, run_service
from perpsignal_common.settings import ServiceSettings
from perpsignal_notifier.service import NotifierService
from perpsignal_notifier.settings import NotifierSettings


def build() -> tuple[Service, ServiceSettings]:
    """Read settings once and wire the service."""
    settings = NotifierSettings()
    return NotifierService(settings), settings


def main() -> None:
    """Run the notifier until SIGTERM."""
    run_service(build)
