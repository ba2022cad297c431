"""Entry point: `python -m perpsignal_scorer` / `perpsignal run scorer`."""

from __future__ import annotations

import json
import sys

from perpsignal_common.errors import ConfigError
from perpsignal_common.runtime import run_service
from perpsignal_domain.scoring.config import config_to_json
from perpsignal_scorer.service import ScorerService
from perpsignal_scorer.settings import ScorerSettings


def build() -> tuple[ScorerService, ScorerSettings]:
    """Read settings once and wire the service."""
    settings = ScorerSettings()
    return ScorerService(settings), settings


def main() -> None:
    """Run the scorer until SIGTERM; `--print-config`: print the domain config its settings
    give, as JSON, and exit (how `perpsignal backtest` runs what this service would)."""
    if sys.argv[1:] == ["--print-config"]:
        try:
            settings = ScorerSettings()
            data = config_to_json(settings.engine_config())
        except (ConfigError, ValueError) as exc:  # pydantic's ValidationError included
            sys.stderr.write(f"invalid configuration: {exc}\n")
            sys.exit(2)
        sys.stdout.write(json.dumps(data) + "\n")
        return
    run_service(build)
