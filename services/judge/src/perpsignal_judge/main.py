"""Entry point: `python -m perpsignal_judge` or `perpsignal run judge`."""

from __future__ import annotations

from perpsignal_common.runtime import run_service
from perpsignal_judge.service import JudgeService
from perpsignal_judge.settings import JudgeSettings


def build() -> tuple[JudgeService, JudgeSettings]:
    """Read settings once and wire the service."""
    settings = JudgeSettings()
    return JudgeService(settings), settings


def main() -> None:
    """Run the judge until SIGTERM."""
    run_service(build)


if __name__ == "__main__":
    main()
