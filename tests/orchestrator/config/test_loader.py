"""Loading a profile: YAML, environment overrides, and one line per problem."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.config.loader import apply_env_overrides, load_config, parse_yaml
from orchestrator.errors import ConfigError

MINIMAL = "symbols: [BTC/USDT]\nmodules:\n  ma_crossover: {}\n"


def problems_of(path: Path, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path, env=env or {})
    problems = caught.value.problems
    assert problems, "a ConfigError must say what is wrong"
    for line in problems:
        assert "\n" not in line
        assert line.startswith(f"{path}: ")
    return problems


# --------------------------------------------------------------- overrides


def test_overrides_are_parsed_as_yaml_and_nested() -> None:
    raw = {"risk": {"allocation": 0.1}, "symbols": ["A"]}
    env = {
        "ORCHESTRATOR__RISK__ALLOCATION": "0.3",
        "ORCHESTRATOR__RISK__MIN_ORDER_NOTIONAL": "5",
        "ORCHESTRATOR__SYMBOLS": "[BTC/USDT, ETH/USDT]",
        "ORCHESTRATOR__MODULES__MA_CROSSOVER__ENABLED": "false",
        "ORCHESTRATOR__MODULES__MA_CROSSOVER__PARAMS__FAST": "4",
        "ORCHESTRATOR__INSTANCE": "blue",
        "ORCHESTRATOR__LOG__FORMAT": "",
        "OTHER__RISK__ALLOCATION": "0.9",
    }
    merged, origins = apply_env_overrides(raw, env)
    assert merged["risk"] == {"allocation": 0.3, "min_order_notional": 5}
    assert isinstance(merged["risk"]["min_order_notional"], int)
    assert merged["symbols"] == ["BTC/USDT", "ETH/USDT"]
    assert merged["modules"] == {"ma_crossover": {"enabled": False, "params": {"fast": 4}}}
    assert merged["instance"] == "blue"
    assert merged["log"] == {"format": ""}
    assert origins["risk.allocation"] == "ORCHESTRATOR__RISK__ALLOCATION"
    assert origins["modules.ma_crossover.params.fast"] == "ORCHESTRATOR__MODULES__MA_CROSSOVER__PARAMS__FAST"
    assert "other.risk.allocation" not in origins
    assert raw == {"risk": {"allocation": 0.1}, "symbols": ["A"]}, "the parsed file must not be mutated"


def test_override_names_are_lower_cased_and_empty_parts_ignored() -> None:
    merged, origins = apply_env_overrides(
        {}, {"ORCHESTRATOR__Engine__Isolate_After_Errors": "3", "ORCHESTRATOR____X": "1", "ORCHESTRATOR__": "1"}
    )
    assert merged == {"engine": {"isolate_after_errors": 3}}
    assert list(origins) == ["engine.isolate_after_errors"]


def test_an_override_replaces_a_scalar_on_its_way_with_a_section() -> None:
    merged, _ = apply_env_overrides({"risk": 5}, {"ORCHESTRATOR__RISK__ALLOCATION": "0.2"})
    assert merged == {"risk": {"allocation": 0.2}}


def test_overrides_apply_when_loading(write_config: Callable[..., Path]) -> None:
    path = write_config(MINIMAL)
    loaded = load_config(
        path,
        env={
            "ORCHESTRATOR__RISK__ALLOCATION": "0.3",
            "ORCHESTRATOR__ENGINE__RETRY_ISOLATED_AFTER_S": "2.5",  # no engine section in the file
            "ORCHESTRATOR__FEED__SIMULATED__SPEED": "0",
        },
    )
    config = loaded.config
    assert config.risk.allocation == 0.3
    assert config.engine.retry_isolated_after_s == 2.5
    assert config.feed.simulated.speed == 0.0
    assert loaded.origin_of("engine.retry_isolated_after_s") == "ORCHESTRATOR__ENGINE__RETRY_ISOLATED_AFTER_S"
    assert loaded.origin_of("risk.max_order_notional") is None
    assert loaded.label == str(path)


def test_the_process_environment_is_the_default(
    write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORCHESTRATOR__RISK__ALLOCATION", "0.42")
    assert load_config(write_config(MINIMAL)).config.risk.allocation == 0.42


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("ORCHESTRATOR__RISK__ALLOCATION", "lots", "risk.allocation: must be a number"),
        ("ORCHESTRATOR__RISK__ALLOCATION", "-1", "risk.allocation: must be > 0.0"),
        ("ORCHESTRATOR__RISK__ALLOCATON", "0.3", "risk.allocaton: unknown key"),
        ("ORCHESTRATOR__RISK", "5", "risk: must be a mapping"),
        ("ORCHESTRATOR__SYMBOLS", "BTC/USDT", "symbols: must be a list"),
        ("ORCHESTRATOR__ENGINE__ISOLATE_AFTER_ERRORS", "2.5", "engine.isolate_after_errors: must be a whole number"),
    ],
)
def test_a_bad_override_names_its_variable(
    write_config: Callable[..., Path], variable: str, value: str, expected: str
) -> None:
    path = write_config(MINIMAL)
    assert problems_of(path, {variable: value}) == [f"{path}: {expected} (set by {variable})"]


def test_a_problem_in_the_file_names_no_variable(write_config: Callable[..., Path]) -> None:
    path = write_config(MINIMAL + "risk: {allocation: lots}\n")
    env = {"ORCHESTRATOR__RISK__MAX_ORDER_NOTIONAL": "100"}
    assert problems_of(path, env) == [f"{path}: risk.allocation: must be a number"]


# --------------------------------------------------------------- file problems


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (MINIMAL + "risk: {allocaton: 0.3}\n", ["risk.allocaton: unknown key"]),
        (MINIMAL + "colour: blue\n", ["colour: unknown key"]),
        (MINIMAL + "risk: {allocation: lots}\n", ["risk.allocation: must be a number"]),
        (MINIMAL + "engine: {isolate_after_errors: many}\n", ["engine.isolate_after_errors: must be an integer"]),
        (
            MINIMAL + "fusion: {method: vote}\n",
            ["fusion.method: must be one of 'weighted', 'confidence', 'precision', 'rank' or 'best'"],
        ),
        (MINIMAL + "log: {level: loud}\n", ["log.level: must be one of 'debug', 'info', 'warning' or 'error'"]),
        ("symbols: [BTC/USDT]\nmodules:\n  ma_crossover: {wieght: 2}\n", ["modules.ma_crossover.wieght: unknown key"]),
        (
            "symbols: [BTC/USDT]\nmodules:\n  ma_crossover: {weight: -1}\n",
            ["modules.ma_crossover.weight: must be >= 0.0"],
        ),
        ("symbols: []\nmodules: {ma_crossover: {}}\n", ["symbols: must have at least 1 item(s)"]),
        (MINIMAL + "state_dir: [a, b]\n", ["state_dir: must be a path"]),
        (MINIMAL + "instance: 'my bot!'\n", ["instance: must match the pattern ^[A-Za-z0-9_-]+$"]),
        ("modules: {}\n", ["(top level): name the traded symbols under 'symbols' or 'buckets'"]),
        (
            "symbols: [A]\nbuckets: {b: {symbols: [B]}}\n",
            ["(top level): use either 'symbols' (one bucket) or 'buckets', not both"],
        ),
        ("buckets: {b: {symbols: []}}\n", ["buckets.b.symbols: must have at least 1 item(s)"]),
        ("buckets: {}\nmodules: {ma_crossover: {}}\n", ["buckets: must have at least 1 item(s)"]),
        (
            MINIMAL + "risk:\n  allocation: lots\n  max_order_notional: -5\n",
            ["risk.allocation: must be a number", "risk.max_order_notional: must be > 0.0"],
        ),
    ],
)
def test_schema_problems_are_one_line_each_with_the_key_path(
    write_config: Callable[..., Path], text: str, expected: list[str]
) -> None:
    path = write_config(text)
    problems = problems_of(path)
    if expected is not None:
        assert problems == [f"{path}: {line}" for line in expected]


def test_duplicate_keys_are_refused_with_both_lines(write_config: Callable[..., Path]) -> None:
    path = write_config("symbols: [A]\nrisk:\n  allocation: 0.1\n  allocation: 0.2\n")
    assert problems_of(path) == [f"{path}: line 4, column 3: duplicate key 'allocation' (first on line 3)"]


def test_a_duplicate_top_level_section_is_refused(write_config: Callable[..., Path]) -> None:
    path = write_config("risk: {}\nsymbols: [A]\nrisk: {allocation: 0.2}\n")
    (problem,) = problems_of(path)
    assert "duplicate key 'risk' (first on line 1)" in problem
    assert "line 3" in problem


@pytest.mark.parametrize(
    "key_path",
    [
        ("password",),
        ("execution", "paper", "api_key"),
        ("execution", "paper", "apikey"),
        ("modules", "ma_crossover", "params", "secret"),
        ("feed", "exchange_token"),
        ("mqtt", "private_key"),
        ("mqtt", "PASSWD"),
    ],
)
def test_secret_looking_keys_are_refused(write_config: Callable[..., Path], key_path: tuple[str, ...]) -> None:
    document: dict[str, object] = {"symbols": ["A"]}
    node = document
    for part in key_path[:-1]:
        node = node.setdefault(part, {})  # type: ignore[assignment]
    node[key_path[-1]] = "hunter2"
    path = write_config(document)
    problems = problems_of(path)
    assert problems == [f"{path}: {'.'.join(key_path)}: secrets come from the environment only, not the file"]
    assert all("hunter2" not in line for line in problems)


def test_a_secret_set_by_an_override_names_its_variable_not_the_file(write_config: Callable[..., Path]) -> None:
    path = write_config(MINIMAL)
    problems = problems_of(path, {"ORCHESTRATOR__MQTT__PASSWORD": "hunter2"})
    assert len(problems) == 1
    assert problems[0].startswith(f"{path}: mqtt.password: secrets are not settings")
    assert problems[0].endswith("(set by ORCHESTRATOR__MQTT__PASSWORD)")
    assert "not the file" not in problems[0]
    assert "hunter2" not in problems[0]


@pytest.mark.parametrize("value", [".inf", "-.inf", ".nan"])
def test_non_finite_numbers_are_refused_once_per_key(write_config: Callable[..., Path], value: str) -> None:
    # pydantic accepts inf (and NaN fails only a bound, with a misleading message):
    # an infinite limit would be no limit at all.
    path = write_config(
        f"symbols: [A]\nmodules:\n  ma_crossover: {{weight: {value}, params: {{z_scale: {value}}}}}\n"
        f"risk: {{max_position_notional: {value}, allocation: lots}}\n"
    )
    assert problems_of(path) == [
        f"{path}: modules.ma_crossover.weight: must be a finite number",
        f"{path}: modules.ma_crossover.params.z_scale: must be a finite number",
        f"{path}: risk.max_position_notional: must be a finite number",
        f"{path}: risk.allocation: must be a number",
    ]


def test_a_non_finite_override_names_its_variable(write_config: Callable[..., Path]) -> None:
    path = write_config(MINIMAL)
    variable = "ORCHESTRATOR__RISK__MAX_ORDER_NOTIONAL"
    assert problems_of(path, {variable: ".inf"}) == [
        f"{path}: risk.max_order_notional: must be a finite number (set by {variable})"
    ]


def test_keys_that_merely_contain_a_secret_word_are_not_secrets(write_config: Callable[..., Path]) -> None:
    # Module parameters are free-form here; only the module's own schema judges them.
    path = write_config(
        "symbols: [A]\nmodules:\n  ma_crossover:\n    params: {tokens_per_s: 1, secretary: x, token_bucket: 2}\n"
        "  api_key: {enabled: false, module: ma_crossover}\n"
    )
    config = load_config(path, env={}).config
    assert config.modules["ma_crossover"].params == {"tokens_per_s": 1, "secretary": "x", "token_bucket": 2}
    assert "api_key" in config.modules, "a section named like a secret holds no secret"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("symbols: [A, B\n", "line 2, column 1"),
        ("risk:\n  allocation: 0.1\n bad: 1\n", "line 3"),
        ("symbols: [A]\n\tmodules: {}\n", "line 2"),
        ("- a\n- b\n", "the top level must be a mapping of sections, not list"),
        ("just a string\n", "not str"),
    ],
)
def test_invalid_yaml_is_one_line_with_its_position(
    write_config: Callable[..., Path], text: str, fragment: str
) -> None:
    path = write_config(text)
    (problem,) = problems_of(path)
    assert fragment in problem


def test_an_empty_file_is_an_empty_config(write_config: Callable[..., Path]) -> None:
    assert parse_yaml("", "x") == {}
    path = write_config("# nothing\n")
    assert problems_of(path) == [f"{path}: (top level): name the traded symbols under 'symbols' or 'buckets'"]


def test_a_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    assert caught.value.problems == [f"{path}: file not found"]


def test_no_file_at_all_means_environment_only() -> None:
    loaded = load_config(None, env={"ORCHESTRATOR__SYMBOLS": "[X]"})
    assert loaded.config.symbols == ["X"]
    assert loaded.label == "<config>"
    with pytest.raises(ConfigError) as caught:
        load_config(None, env={"ORCHESTRATOR__SYMBOLS": "X"})
    assert caught.value.problems == ["<environment>: symbols: must be a list (set by ORCHESTRATOR__SYMBOLS)"]
