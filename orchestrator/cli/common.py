"""Helpers shared by the sub-commands: config loading, error output."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated

import typer

from orchestrator.config.loader import LoadedConfig, load_config
from orchestrator.errors import one_line

EXIT_USAGE = 2  # bad config, data or arguments: the operator must fix something
DEFAULT_CONFIG = Path("config/default.yaml")


def print_problems(lines: Iterable[str]) -> None:
    for line in lines:
        print(one_line(line), file=sys.stderr)


def config_path(option: Path | None) -> Path:
    """``-c`` if given, else ``$ORCHESTRATOR_CONFIG``, else ``config/default.yaml``."""
    if option is not None:
        return option
    from_env = os.environ.get("ORCHESTRATOR_CONFIG")
    return Path(from_env) if from_env else DEFAULT_CONFIG


def load(option: Path | None) -> LoadedConfig:
    return load_config(config_path(option))


ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="YAML profile (default: $ORCHESTRATOR_CONFIG or config/default.yaml)"),
]
