"""``orchestrator check-config`` and ``orchestrator config-schema``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from orchestrator.cli.common import EXIT_USAGE, print_problems
from orchestrator.config.loader import load_config
from orchestrator.config.models import OrchestratorConfig
from orchestrator.errors import ConfigError


def _key_of(problem: str, label: str) -> str:
    return problem.removeprefix(f"{label}: ").split(": ", 1)[0]


def _within(key: str, reported: str) -> bool:
    return key == reported or key.startswith((reported + ".", reported + "["))


def register(app: typer.Typer) -> None:
    @app.command("check-config")
    def check_config(file: Annotated[Path, typer.Argument(help="YAML profile to check")]) -> None:
        """Validate a profile, its environment overrides and every module it names."""
        from orchestrator.engine.plan import module_problems, plan_run

        try:
            plan = plan_run(load_config(file))
        except ConfigError as exc:
            problems = list(exc.problems)
            if exc.raw is not None:
                # The schema failed before modules were checked: check them too,
                # so one run lists everything to fix (a key already reported once
                # is not reported again, e.g. a secret that is also an unknown parameter).
                reported = {_key_of(p, str(file)) for p in problems}
                problems.extend(
                    p
                    for p in module_problems(exc.raw, str(file))
                    if not any(_within(_key_of(p, str(file)), key) for key in reported)
                )
            print_problems(problems)
            sys.exit(EXIT_USAGE)
        modules = sorted({m.name for bucket in plan.buckets for m in bucket.modules})
        symbols = [s for bucket in plan.buckets for s in bucket.symbols]
        print(f"{file}: ok ({len(plan.buckets)} bucket(s), {len(symbols)} symbol(s), modules: {', '.join(modules)})")

    @app.command("config-schema")
    def config_schema() -> None:
        """Print the JSON schema of the configuration file."""
        print(json.dumps(OrchestratorConfig.model_json_schema(), indent=2))
