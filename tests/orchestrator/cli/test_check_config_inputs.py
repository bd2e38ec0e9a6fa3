"""Adversarial inputs through the real console entry point: ``check-config``
and ``run`` print one line per problem, naming the file and the key path, and
exit 2; never a traceback."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

RunBatch = Callable[..., list[subprocess.CompletedProcess[str]]]
GOOD = "symbols: [BTC/USDT]\nmodules:\n  ma_crossover: {params: {fast: 5, slow: 20}}\n"

# A module whose parameter validator has a bug: it raises KeyError, which
# pydantic does not turn into a validation error.
CRASHING_VALIDATOR = '''\
"""A module whose parameter check raises something other than ValueError."""

from pydantic import model_validator

from orchestrator import AnalysisModule, Bar, EventKind, ModuleContext, ModuleOutput, ModuleParams


class Params(ModuleParams):
    n: int = 1

    @model_validator(mode="after")
    def _check(self) -> "Params":
        if self.n > 5:
            raise KeyError("n")
        return self


class Crashy(AnalysisModule[Params]):
    name = "crashy"
    version = "1.0.0"
    consumes = frozenset({EventKind.BAR})
    Params = Params

    def on_bar(self, bar: Bar, ctx: ModuleContext) -> ModuleOutput | None:
        return None


MODULE = Crashy
'''


def test_bad_files_and_overrides_are_one_line_each(
    write_config: Callable[..., Path], write_module: Callable[..., Path], run_cli_batch: RunBatch, tmp_path: Path
) -> None:
    crashy = write_module("crashy", CRASHING_VALIDATOR)
    (tmp_path / "latin1.yaml").write_bytes(b"symbols: [A]\ninstance: caf\xe9\n")
    cases: dict[str, tuple[str, list[str], dict[str, str]]] = {
        "python-tag": ("symbols: !!python/object/apply:os.system ['echo owned']\n", ["line 1, column 10: tag "], {}),
        "recursive-alias": ("a: &a [*a]\nsymbols: [A]\n", ["line 1, column 8: alias *a is inside"], {}),
        "deep": ("symbols: [A]\nx: " + "[" * 3000 + "]" * 3000 + "\n", ["line 2, column 67: nested more"], {}),
        "list-key": ("symbols: [A]\nmodules: {[a]: {}}\n", ["line 2, column 11: a key must be a plain value"], {}),
        "int-module-name": ("symbols: [A]\nmodules: {1: {}}\n", ["modules.1: key must be a string"], {}),
        "null-module": ("symbols: [A]\nmodules:\n  ma_crossover:\n", ["modules.ma_crossover: must be a mapping"], {}),
        "control-character": ("symbols: [A]\ninstance: \x07\n", ["line 2, column 11: character 0x0007"], {}),
        "line-break-in-key": (GOOD + '"a\\nb": 1\n', ['"a\\nb": unknown key'], {}),
        "secret-parameter": (
            "symbols: [A]\nmodules:\n  ma_crossover: {params: {token: x}}\n",
            ["modules.ma_crossover.params.token: secrets come from the environment only"],
            {},
        ),
        "crashing-validator": (
            f"symbols: [A]\nmodules:\n  crashy: {{path: {crashy}, params: {{n: 9}}}}\n",
            [f"modules.crashy.params: the module's parameter check raised KeyError: 'n' ({crashy}:14)"],
            {},
        ),
        "crashing-validator-with-schema-errors": (
            f"symbols: [A]\nrisk: {{allocation: lots}}\nmodules:\n  crashy: {{path: {crashy}, params: {{n: 9}}}}\n",
            ["risk.allocation: must be a number", "modules.crashy.params: the module's parameter check raised"],
            {},
        ),
        "empty-bucket-modules": (
            "buckets: {b: {symbols: [A], modules: []}}\nmodules: {ma_crossover: {}}\n",
            ["buckets.b.modules: must have at least 1 item(s)"],
            {},
        ),
        "bucket-path": (
            "buckets: {'..': {symbols: [A]}}\nmodules: {ma_crossover: {}}\n",
            ['buckets."..": name must match the pattern'],
            {},
        ),
        "misspelt-limit": (
            GOOD + "risk: {max_position_notional_by_symbol: {BTC/USD: 10}}\n",
            ["risk.max_position_notional_by_symbol.BTC/USD: 'BTC/USD' is not a traded symbol"],
            {},
        ),
        "empty-variable-segment": (
            GOOD,
            ["ORCHESTRATOR__RISK____ALLOCATION: not a key path"],
            {"ORCHESTRATOR__RISK____ALLOCATION": "0.3"},
        ),
        "refused-variable-value": (
            GOOD,
            ["risk: its value is refused: line 1, column 1: tag !!python/name:os.system is not allowed"],
            {"ORCHESTRATOR__RISK": "!!python/name:os.system"},
        ),
    }
    paths = {name: write_config(case[0], name=f"{name}.yaml") for name, case in cases.items()}
    commands: list[Any] = [(("check-config", paths[name]), case[2]) for name, case in cases.items()]
    commands += [("check-config", tmp_path), ("check-config", tmp_path / "latin1.yaml")]
    *results, directory, latin1 = run_cli_batch(commands)
    for (name, (_, expected, _)), done in zip(cases.items(), results, strict=True):
        path = paths[name]
        assert (done.returncode, done.stdout) == (2, ""), (name, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr, name
        lines = done.stderr.splitlines()
        assert len(lines) == len(expected), (name, lines)
        for line, start in zip(lines, expected, strict=True):
            assert line.startswith(f"{path}: {start}"), (name, line)
    assert (directory.returncode, directory.stderr) == (2, f"{tmp_path}: is a directory, not a configuration file\n")
    assert (latin1.returncode, latin1.stderr) == (
        2,
        f"{tmp_path / 'latin1.yaml'}: line 2, column 14: not UTF-8 text (byte 0xe9)\n",
    )


def test_run_reports_an_unusable_state_dir_or_journal_as_a_problem(
    write_config: Callable[..., Path], run_cli_batch: RunBatch, tmp_path: Path
) -> None:
    in_the_way = tmp_path / "a-file"
    in_the_way.write_text("not a directory\n")
    head = "log: {level: info, format: json}\nfeed: {simulated: {speed: 0}}\n" + GOOD
    cases = {
        "state-is-a-file": (
            f"state_dir: {in_the_way}\n",
            f"state_dir: a file is in the way of the directory: '{in_the_way}'",
        ),
        "state-under-a-file": (
            f"state_dir: {in_the_way / 'state'}\n",
            f"state_dir: a part of the path is a file, not a directory: '{in_the_way / 'state'}'",
        ),
        "journal-not-a-database": (
            f"state_dir: {tmp_path / 'state'}\njournal: {{path: {in_the_way}}}\n",
            f"journal.path: {in_the_way}: cannot open the journal: file is not a database",
        ),
        "nul-in-state-dir": ('state_dir: "st\\0ate"\n', "state_dir: contains a NUL character"),
    }
    paths = {name: write_config(head + text, name=f"{name}.yaml") for name, (text, _) in cases.items()}
    results = run_cli_batch([("run", "-c", paths[name]) for name in cases], cwd=tmp_path)
    for (name, (_, expected)), done in zip(cases.items(), results, strict=True):
        assert done.returncode == 2, (name, done.stderr[-2000:])
        assert "Traceback" not in done.stderr, name
        last = done.stderr.splitlines()[-1]
        if last.startswith("{"):  # after the logger is set up: one JSON line
            event = json.loads(last)
            assert event["event"] == "startup_failed", (name, event)
            assert event["problems"] == [f"{paths[name]}: {expected}"], name
        else:  # a configuration problem: before any logging
            assert last == f"{paths[name]}: {expected}", name
