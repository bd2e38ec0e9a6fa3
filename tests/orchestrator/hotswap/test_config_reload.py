"""Which configuration changes apply live and which wait for a restart."""

from __future__ import annotations

import pytest

from orchestrator.config.loader import LoadedConfig, validate_config
from orchestrator.errors import ConfigError
from orchestrator.hotswap.config_reload import LIVE_SECTIONS, edited, effective_config


def loaded(raw: dict) -> LoadedConfig:
    return LoadedConfig(validate_config(raw, label="test.yaml"), None, raw)


BASE = {"symbols": ["BTC/USDT"], "modules": {"ma_crossover": {"params": {"fast": 5, "slow": 20}}}}


def test_live_sections_pass_through():
    new = loaded({**BASE, "fusion": {"method": "rank"}, "log": {"level": "debug"}})
    applied, waiting = effective_config(loaded(BASE), new)
    assert applied is new
    assert waiting == []


@pytest.mark.parametrize(
    ("change", "section"),
    [
        ({"instance": "other"}, "instance"),
        ({"state_dir": "/elsewhere"}, "state_dir"),
        ({"feed": {"kind": "simulated", "simulated": {"seed": 3}}}, "feed"),
        ({"execution": {"order_type": "limit"}}, "execution"),
        ({"risk": {"allocation": 0.5}}, "risk"),
        ({"modules_path": ["/opt/modules"]}, "modules_path"),
        ({"symbols": ["BTC/USDT", "ETH/USDT"]}, "symbols/buckets"),
    ],
)
def test_restart_only_changes_keep_the_running_value(change, section):
    current = loaded(BASE)
    new = loaded({**BASE, **change, "decision": {"min_change": 0.5}})
    applied, waiting = effective_config(current, new)
    assert [line.split(":")[0] for line in waiting] == [section]
    assert "restart" in waiting[0]
    pinned = section if section != "symbols/buckets" else "symbols"
    assert getattr(applied.config, pinned) == getattr(current.config, pinned)
    assert applied.config.decision.min_change == 0.5  # the live part still applies


def test_every_section_is_either_live_or_restart_only():
    from orchestrator.config.models import OrchestratorConfig

    restart_only = set(OrchestratorConfig.model_fields) - LIVE_SECTIONS - {"symbols", "buckets"}
    assert {"instance", "state_dir", "feed", "execution", "risk"} <= restart_only


def test_operator_edits_are_validated_like_the_file():
    current = loaded(BASE)
    assert edited(current, "ma_crossover", enabled=False).config.modules["ma_crossover"].enabled is False
    assert edited(current, "ma_crossover", param=("fast", 7)).config.modules["ma_crossover"].params["fast"] == 7
    with pytest.raises(KeyError):
        edited(current, "nope", enabled=True)
    with pytest.raises(ConfigError, match=r"modules\.ma_crossover\.enabled"):
        edited(current, "ma_crossover", enabled="perhaps")  # module parameters are checked by plan_run, later
    assert current.config.modules["ma_crossover"].params == {"fast": 5, "slow": 20}  # the running one is untouched
