"""Entry point: `python -m perpsignal_notifier` / `perpsignal run notifier`."""

from __future__ import annotations

import logging
import sys

from perpsignal_common.errors import ConfigError
from perpsignal_common.runtime import Service, run_service
from perpsignal_common.settings import ServiceSettings
from perpsignal_notifier.service import NotifierService
from perpsignal_notifier.settings import NotifierSettings


def build() -> tuple[Service, ServiceSettings]:
    """Read settings once and wire the service."""
    settings = NotifierSettings()
    return NotifierService(settings), settings


log = logging.getLogger(__name__)


def main() -> None:
    """Run the notifier until SIGTERM; a token Telegram refuses at start-up exits 2."""
    try:
        run_service(build)
    except ConfigError as exc:  # found during start-up (getMe), after the settings were read
        log.error("invalid configuration", extra={"error": str(exc)})
        sys.exit(2)
