"""Property: any set of ``ORCHESTRATOR__...`` variables, whatever their names
and values, gives a valid configuration or a ``ConfigError`` whose problems
are single lines starting with the file name; and the lenient reader used to
find the control socket never fails on them."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.config.loader import ENV_PREFIX, apply_env_overrides, load_config
from orchestrator.errors import ConfigError

PROFILE = "symbols: [BTC/USDT]\nmodules:\n  ma_crossover: {params: {fast: 5, slow: 20}}\nrisk: {allocation: 0.2}\n"
KEYS = [
    "risk",
    "allocation",
    "max_order_notional",
    "modules",
    "ma_crossover",
    "params",
    "fast",
    "enabled",
    "symbols",
    "buckets",
    "mqtt",
    "url",
    "password",
    "feed",
    "kind",
    "simulated",
    "speed",
    "state_dir",
    "instance",
    "execution",
    "routes",
    "0",
    "x-y",
    "a.b",
]
SEGMENT = st.sampled_from(KEYS).map(str.upper) | st.sampled_from(KEYS) | st.text("abcXYZ_-./0", max_size=5)
VARIABLE = st.lists(SEGMENT, min_size=0, max_size=5).map(lambda parts: ENV_PREFIX + "__".join(parts))
YAMLISH = st.text("ab01.:-[]{},&*!|>'\"#%@`? \t\n~<", max_size=30)
VALUE = (
    YAMLISH
    | st.sampled_from(["0.3", "-1", ".inf", ".nan", "true", "~", "", "[a, b]", "{a: 1, a: 2}", "&a [*a]", "[" * 300])
    | st.sampled_from(["!!python/object/apply:os.system [ls]", "mqtt://u:p@h:1", "{fast: 40}", "BTC/USDT", "x" * 200])
    | st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20)
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(env=st.dictionaries(VARIABLE, VALUE, max_size=4))
def test_any_overrides_validate_or_give_one_line_problems(env: dict[str, str]) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "profile.yaml"
        path.write_text(PROFILE, encoding="utf-8")
        problems: list[str] = []
        try:
            load_config(path, env=env)
        except ConfigError as exc:  # anything else fails the test
            problems = exc.problems or ["(a ConfigError with no problem)"]
    for line in problems:
        assert line.startswith(f"{path}: "), line
        assert line.splitlines() == [line], line
    merged, origins = apply_env_overrides({"state_dir": "s"}, env)
    assert isinstance(merged, dict)
    assert all(variable in env for variable in origins.values())
