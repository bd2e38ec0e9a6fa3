"""The configuration schema: defaults, buckets, strictness, JSON schema export."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from orchestrator.config.models import DEFAULT_BUCKET, BucketConfig, ModuleConfig, OrchestratorConfig
from orchestrator.execution.config import ExecutionConfig, PaperExchangeConfig
from orchestrator.feeds.config import FeedConfig
from orchestrator.fusion.config import FusionConfig
from orchestrator.risk.config import RiskConfig


def test_defaults_make_a_runnable_single_bucket() -> None:
    config = OrchestratorConfig.model_validate({"symbols": ["A", "B"], "modules": {"ma_crossover": {}}})
    assert list(config.bucket_map()) == [DEFAULT_BUCKET]
    assert config.all_symbols() == ["A", "B"]
    assert config.fusion.method == "confidence"
    assert config.execution.venue == "paper"
    assert config.feed.kind == "simulated"
    assert config.enabled_modules() == {"ma_crossover": ModuleConfig()}


def test_buckets_and_enabled_modules() -> None:
    config = OrchestratorConfig.model_validate(
        {
            "buckets": {"majors": {"symbols": ["A"], "modules": ["x"]}, "alts": {"symbols": ["B", "C"]}},
            "modules": {"x": {}, "y": {"enabled": False, "module": "impl_y"}},
        }
    )
    assert config.all_symbols() == ["A", "B", "C"]
    assert list(config.enabled_modules()) == ["x"]
    assert config.modules["y"].implementation("y") == "impl_y"
    assert config.modules["x"].implementation("x") == "x"


@pytest.mark.parametrize(
    "model",
    [
        OrchestratorConfig,
        BucketConfig,
        ModuleConfig,
        FusionConfig,
        RiskConfig,
        ExecutionConfig,
        PaperExchangeConfig,
        FeedConfig,
    ],
)
def test_every_section_rejects_unknown_keys(model: type) -> None:
    with pytest.raises(ValidationError, match=r"extra_forbidden|Extra inputs are not permitted"):
        model.model_validate({"symbols": ["A"], "surprise": 1})


def test_the_schema_exports_as_json_and_forbids_extras() -> None:
    schema = OrchestratorConfig.model_json_schema()
    json.dumps(schema)
    assert schema["additionalProperties"] is False
    assert {"symbols", "buckets", "modules", "fusion", "risk", "execution", "engine"} <= set(schema["properties"])


def test_replay_feed_needs_paths() -> None:
    with pytest.raises(ValidationError, match="needs a 'replay:' section"):
        FeedConfig.model_validate({"kind": "replay"})
    assert FeedConfig.model_validate({"kind": "replay", "replay": {"paths": ["x.csv"]}}).replay is not None
