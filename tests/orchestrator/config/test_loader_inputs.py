"""Adversarial configuration files: each bad input is one line naming the file
and the key path, and nothing but ``ConfigError`` ever leaves the loader."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.config import loader
from orchestrator.config.loader import load_config, validate_config
from orchestrator.errors import ConfigError

MINIMAL = "symbols: [BTC/USDT]\nmodules:\n  ma_crossover: {}\n"
BUCKETS = (
    "buckets:\n  majors: {symbols: [BTC/USDT, ETH/USDT]}\n  alts: {symbols: [SOL/USDT]}\nmodules: {ma_crossover: {}}\n"
)


def problems_of(path: Path, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path, env=env or {})
    problems = caught.value.problems
    assert problems
    for line in problems:
        assert line.splitlines() == [line]
        assert line.startswith(f"{path}: ")
    return [line.removeprefix(f"{path}: ") for line in problems]


# --------------------------------------------------------------- the file itself


def test_a_directory_is_not_a_config_file(tmp_path: Path) -> None:
    assert problems_of(tmp_path) == ["is a directory, not a configuration file"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_file(write_config: Callable[..., Path]) -> None:
    path = write_config(MINIMAL)
    path.chmod(0)
    try:
        assert problems_of(path) == ["cannot read: permission denied"]
    finally:
        path.chmod(0o644)


def test_text_that_is_not_utf8_names_the_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("symbols: [BTC/USDT]\ninstance: caf\xe9\n".encode("latin-1"))
    assert problems_of(path) == ["line 2, column 14: not UTF-8 text (byte 0xe9)"]
    path.write_bytes(MINIMAL.encode("utf-16"))
    assert problems_of(path) == ["the file is UTF-16 text: save it as UTF-8"]


def test_a_file_far_too_large_to_be_a_config_is_not_read_whole(
    write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(loader, "MAX_FILE_BYTES", 1024 * 1024)
    path = write_config(MINIMAL + "#" * (1024 * 1024) + "\n")
    assert problems_of(path) == ["larger than 1 MiB: not a configuration file"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("symbols: !!python/object/apply:os.system ['echo owned']\n", "line 1, column 10: tag !!python/object/"),
        ("a: &a [*a]\nsymbols: [A]\n", "line 1, column 8: alias *a is inside the node it refers to"),
        ("symbols: [A]\nx: " + "[" * 500 + "]" * 500 + "\n", "line 2, column 67: nested more than 64 levels deep"),
        ("? [a]\n: 1\n", "line 1, column 3: a key must be a plain value, not a list"),
        ("symbols: [A]\n---\nsymbols: [B]\n", "line 2, column 1: a second document ('---') in one file"),
        ("symbols: [A]\ninstance: \x1b\n", "line 2, column 11: character 0x001b is not allowed in YAML"),
    ],
)
def test_yaml_problems_are_one_line_naming_the_file(
    write_config: Callable[..., Path], text: str, expected: str
) -> None:
    (problem,) = problems_of(write_config(text))
    assert problem.startswith(expected), problem


def test_anchors_and_merge_keys_make_a_valid_config(write_config: Callable[..., Path]) -> None:
    path = write_config(
        "symbols: [BTC/USDT]\nmodules:\n"
        "  ma_crossover: &base {weight: 2.0, params: {fast: 5, slow: 20}}\n"
        "  slow_cross:\n    <<: *base\n    module: ma_crossover\n    weight: 0.5\n"
    )
    modules = load_config(path, env={}).config.modules
    assert modules["slow_cross"].params == {"fast": 5, "slow": 20}
    assert (modules["slow_cross"].weight, modules["ma_crossover"].weight) == (0.5, 2.0)


# --------------------------------------------------------------- the schema's words


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("symbols: [A]\nmodules:\n", "modules: must be a mapping, not empty (null): write {} for the defaults"),
        ("symbols: [A]\nmodules:\n  ma_crossover:\n", "modules.ma_crossover: must be a mapping, not empty (null)"),
        (MINIMAL + "risk: ~\n", "risk: must be a mapping, not empty (null)"),
        (MINIMAL + "feed:\n  simulated:\n", "feed.simulated: must be a mapping, not empty (null)"),
        ("symbols:\n  - A\nbuckets: ~\nmodules: {ma_crossover: {}}\n", None),  # null buckets: not given
        (MINIMAL + "mqtt: null\n", None),  # documented: no MQTT
        (MINIMAL + "risk: [allocation]\n", "risk: must be a mapping"),
        (MINIMAL + "risk: lots\n", "risk: must be a mapping"),
        ("symbols: {BTC/USDT: 1}\nmodules: {ma_crossover: {}}\n", "symbols: must be a list"),
        ("symbols: ['']\nmodules: {ma_crossover: {}}\n", "symbols[0]: must have at least 1 character(s)"),
        (MINIMAL + "1: x\n", "1: key must be a string (put it in quotes)"),
        (MINIMAL + "~: x\n", "null: key must be a string (put it in quotes)"),
        ("symbols: [A]\nmodules: {7: {}}\n", "modules.7: key must be a string (put it in quotes)"),
        (
            "symbols: [A]\nmodules: {ma_crossover: {params: {true: 1}}}\n",
            "modules.ma_crossover.params.true: key must be a string",
        ),
        (MINIMAL + '"line\\nbreak": 1\n', '"line\\nbreak": unknown key'),
        (MINIMAL + '"risk.allocation": 1\n', '"risk.allocation": unknown key'),
        (MINIMAL + 'state_dir: "a\\0b"\n', "state_dir: contains a NUL character"),
        (
            'symbols: [A]\nmodules: {x: {path: "m\\0.py"}}\n',
            "modules.x.path: contains a NUL character",
        ),
        (
            MINIMAL.replace("{}", "{module: ../../tmp/evil}"),
            "modules.ma_crossover.module: must be a module name, not a path",
        ),
        (
            MINIMAL + "execution: {venues: {x: {kind: fax}}}\n",
            "execution.venues.x.kind: must be one of 'paper' or 'ccxt'",
        ),
        (MINIMAL + "execution: {venues: {x: {}}}\n", "execution.venues.x.kind: required key is missing"),
    ],
)
def test_wrong_shapes_say_what_is_wrong_where(
    write_config: Callable[..., Path], text: str, expected: str | None
) -> None:
    path = write_config(text)
    if expected is None:
        load_config(path, env={})
        return
    (problem,) = problems_of(path)
    assert problem.startswith(expected), problem


@pytest.mark.parametrize("name", ["..", "a/b", "", "two words", "x\ny", "ünïcode"])
def test_bucket_names_cannot_become_paths_or_topics(write_config: Callable[..., Path], name: str) -> None:
    # A bucket's module state lives in <state_dir>/modules/<bucket>/: ".." would escape it.
    document = {"buckets": {name: {"symbols": ["A"]}}, "modules": {"ma_crossover": {}}}
    (problem,) = problems_of(write_config(document))
    assert problem.endswith(": name must match the pattern ^[A-Za-z0-9_-]+$"), problem
    assert problem.startswith("buckets.")


@pytest.mark.parametrize(
    ("modules", "expected"),
    [
        ("[]", "buckets.majors.modules: must have at least 1 item(s)"),
        ("[ma_crossover, ma_crossover]", "buckets.majors.modules: 'ma_crossover' listed more than once"),
    ],
)
def test_a_bucket_module_list_that_would_run_nothing(
    write_config: Callable[..., Path], modules: str, expected: str
) -> None:
    # Both used to pass the check and start a bucket with no module at all.
    path = write_config(f"buckets:\n  majors: {{symbols: [A], modules: {modules}}}\nmodules: {{ma_crossover: {{}}}}\n")
    assert problems_of(path) == [expected]


# --------------------------------------------------------------- names that refer to nothing


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        (
            "risk: {max_position_notional_by_symbol: {BTC/USD: 100}}",
            "risk.max_position_notional_by_symbol.BTC/USD: 'BTC/USD' is not a traded symbol"
            " (symbols: BTC/USDT, ETH/USDT, SOL/USDT)",
        ),
        (
            "risk: {max_bucket_notional: {minors: 100}}",
            "risk.max_bucket_notional.minors: 'minors' is not a bucket (buckets: majors, alts)",
        ),
        ("execution: {routes: {DOGE/USDT: paper}}", "execution.routes.DOGE/USDT: 'DOGE/USDT' is not a traded symbol"),
        ("execution: {bucket_routes: {default: paper}}", "execution.bucket_routes.default: 'default' is not a bucket"),
    ],
)
def test_per_symbol_and_per_bucket_entries_must_name_real_ones(
    write_config: Callable[..., Path], section: str, expected: str
) -> None:
    # A misspelt symbol's limit or route would silently not apply.
    (problem,) = problems_of(write_config(BUCKETS + section + "\n"))
    assert problem.startswith(expected), problem


def test_entries_naming_real_symbols_and_buckets_pass(write_config: Callable[..., Path]) -> None:
    path = write_config(
        BUCKETS + "risk:\n  max_position_notional_by_symbol: {SOL/USDT: 100}\n  max_bucket_notional: {alts: 500}\n"
        "execution: {routes: {ETH/USDT: paper}, bucket_routes: {alts: paper}}\n"
    )
    assert load_config(path, env={}).config.risk.max_bucket_notional == {"alts": 500}
    single = write_config(MINIMAL + "risk: {max_bucket_notional: {default: 500}}\n", name="single.yaml")
    assert load_config(single, env={}).config.risk.max_bucket_notional == {"default": 500}


def test_references_can_be_left_unchecked_for_adopted_symbols() -> None:
    raw = {"symbols": ["SAMPLE"], "modules": {}, "execution": {"routes": {"BTC/USDT": "paper"}}}
    with pytest.raises(ConfigError):
        validate_config(raw, label="x.yaml")
    assert validate_config(raw, label="x.yaml", check_references=False).symbols == ["SAMPLE"]


# --------------------------------------------------------------- environment overrides


@pytest.mark.parametrize("variable", ["ORCHESTRATOR____X", "ORCHESTRATOR__RISK____ALLOCATION", "ORCHESTRATOR__"])
def test_an_override_with_an_empty_name_is_reported_not_ignored(
    write_config: Callable[..., Path], variable: str
) -> None:
    path = write_config(MINIMAL)
    assert problems_of(path, {variable: "0.3"}) == [f"{variable}: not a key path: name a key between every two '__'"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("{allocation: 0.1, allocation: 0.2}", "line 1, column 19: duplicate key 'allocation' (first on line 1)"),
        ("!!python/object/apply:os.system ['echo owned']", "line 1, column 1: tag !!python/object/apply:os.system"),
        ("&a {allocation: *a}", "line 1, column 17: alias *a is inside the node it refers to"),
        ("[" * 200 + "]" * 200, "line 1, column 65: nested more than 64 levels deep"),
    ],
)
def test_an_override_whose_value_is_refused_says_why(
    write_config: Callable[..., Path], value: str, expected: str
) -> None:
    path = write_config(MINIMAL)
    variable = "ORCHESTRATOR__RISK"
    (problem,) = problems_of(path, {variable: value})
    assert problem.startswith(f"risk: its value is refused: {expected}"), problem
    assert problem.endswith(f"(set by {variable})")


def test_an_override_that_is_not_yaml_is_taken_as_text(write_config: Callable[..., Path]) -> None:
    path = write_config(MINIMAL)
    loaded = load_config(path, env={"ORCHESTRATOR__STATE_DIR": "/srv/bot: [x", "ORCHESTRATOR__INSTANCE": "blue"})
    assert str(loaded.config.state_dir) == "/srv/bot: [x"
    assert problems_of(path, {"ORCHESTRATOR__RISK__ALLOCATION": "[0.3"}) == [
        "risk.allocation: must be a number (set by ORCHESTRATOR__RISK__ALLOCATION)"
    ]


def test_the_most_specific_variable_is_named(write_config: Callable[..., Path]) -> None:
    path = write_config(MINIMAL)
    env = {"ORCHESTRATOR__RISK": "{allocation: 0.2}", "ORCHESTRATOR__RISK__MAX_ORDER_NOTIONAL": "-5"}
    assert problems_of(path, env) == [
        "risk.max_order_notional: must be > 0.0 (set by ORCHESTRATOR__RISK__MAX_ORDER_NOTIONAL)"
    ]
    loaded = load_config(path, env={"ORCHESTRATOR__RISK": "{}", "ORCHESTRATOR__RISK__ALLOCATION": "0.3"})
    assert loaded.origin_of("risk.allocation") == "ORCHESTRATOR__RISK__ALLOCATION"
    assert loaded.origin_of("risk.min_order_notional") == "ORCHESTRATOR__RISK"


def test_an_override_cannot_index_a_list_and_says_so(write_config: Callable[..., Path]) -> None:
    # The file's list gives way to a mapping {"0": ...}: the error names who did that.
    path = write_config(MINIMAL)
    assert problems_of(path, {"ORCHESTRATOR__SYMBOLS__0": "ETH/USDT"}) == [
        "symbols: must be a list (set by ORCHESTRATOR__SYMBOLS__0)"
    ]


def test_only_the_upper_case_prefix_is_an_override(write_config: Callable[..., Path]) -> None:
    path = write_config(MINIMAL)
    env = {"orchestrator__risk__allocation": "lots", "Orchestrator__RISK__ALLOCATION": "lots"}
    assert load_config(path, env=env).config.risk.allocation == 0.1  # the default


def test_a_refused_override_never_echoes_its_value(write_config: Callable[..., Path]) -> None:
    path = write_config(MINIMAL)
    (problem,) = problems_of(path, {"ORCHESTRATOR__MQTT": "{password: hunter2, password: hunter3}"})
    assert "hunter" not in problem
    assert problem.startswith("mqtt: its value is refused: line 1, column 21: duplicate key 'password'")


def test_bad_overrides_do_not_stop_the_lenient_reader() -> None:
    # ``orchestrator reload`` finds the control socket from a config even if it is broken.
    merged, origins = loader.apply_env_overrides(
        {"state_dir": "s"},
        {"ORCHESTRATOR____X": "1", "ORCHESTRATOR__RISK": "{a: 1, a: 2}", "ORCHESTRATOR__INSTANCE": "blue"},
    )
    assert merged == {"state_dir": "s", "instance": "blue"}
    assert origins == {"instance": "ORCHESTRATOR__INSTANCE"}


def test_bad_overrides_are_listed_with_the_file_problems(write_config: Callable[..., Path]) -> None:
    path = write_config(MINIMAL + "risk: {allocation: lots}\n")
    assert problems_of(path, {"ORCHESTRATOR__X____Y": "1"}) == [
        "ORCHESTRATOR__X____Y: not a key path: name a key between every two '__'",
        "risk.allocation: must be a number",
    ]
