"""Entry point: `python -m perpsignal_judge` or `perpsignal run judge`."""

from __future__ import annotations

import json
import sys

from perpsignal_common.errors import ConfigError
from perpsignal_common.runtime import run_service
from perpsignal_domain.judging.judge import judge_config_to_json
from perpsignal_judge.judge import judge_config
from perpsignal_judge.service import JudgeService
from perpsignal_judge.settings import JudgeSettings


def build() -> tuple[JudgeService, JudgeSettings]:
    """Read settings once and wire the service."""
    settings = JudgeSettings()
    return JudgeService(settings), settings


def main() -> None:
    """Run the judge until SIGTERM; `--print-config`: print the domain config its settings
    give, as JSON, and exit (how `perpsignal backtest` runs what this service would)."""
    if sys.argv[1:] == ["--print-config"]:
        try:
            settings = JudgeSettings()
            data = judge_config_to_json(judge_config(settings))
        except (ConfigError, ValueError) as exc:  # pydantic's ValidationError included
            sys.stderr.write(f"invalid configuration: {exc}\n")
            sys.exit(2)
        sys.stdout.write(json.dumps(data) + "\n")
        return
    run_service(build)


if __name__ == "__main__":
    main()
