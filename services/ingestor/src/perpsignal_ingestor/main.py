"""Entry point: `python -m perpsignal_ingestor` / `perpsignal run ingestor`."""

from __future__ import annotations

from perpsignal_common.runtime import run_service
from perpsignal_common.settings import ServiceSettings
from perpsignal_ingestor.service import IngestorService
from perpsignal_ingestor.settings import IngestorSettings


def build() -> tuple[IngestorService, ServiceSettings]:
    """Read settings once and wire the service."""
    settings = IngestorSettings()
    return IngestorService(settings), settings


def main() -> None:
    """Run the ingestor until SIGTERM."""
    run_service(build)


if __name__ == "__main__":
    main()
