"""The README's configuration reference is generated from the models and kept current.

It once went stale: the ``shutdown`` and ``mqtt`` sections were added to the
models after the table was last rendered, and nothing ran ``--check``.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from orchestrator.config.models import OrchestratorConfig

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "config_reference.py"


@pytest.fixture(scope="module")
def reference() -> Iterator[ModuleType]:
    spec = importlib.util.spec_from_file_location("config_reference_under_test", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def test_the_readme_table_is_current(reference: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    code = reference.main(["--check"])
    assert code == 0, capsys.readouterr().err


def test_every_section_and_key_of_the_models_is_in_the_table(reference: ModuleType) -> None:
    keys = {key for key, *_ in reference.rows(OrchestratorConfig)}
    assert set(OrchestratorConfig.model_fields) <= keys
    # Optional sections (mqtt is ``MqttConfig | None``) and nested ones are expanded too.
    for key in ("shutdown.timeout_s", "mqtt.url", "mqtt.tls.ca_file", "mqtt.embedded_broker.port", "risk.allocation"):
        assert key in keys
    # Mappings of models document their entries' keys.
    assert "modules.<name>.params" in keys
    assert "buckets.<name>.symbols" in keys


def test_section_descriptions_are_whole_sentences(reference: ModuleType) -> None:
    described = {key: text for key, kind, _, text in reference.rows(OrchestratorConfig) if kind == "section"}
    # StreamLimitConfig's docstring wraps mid-sentence: the whole first sentence is kept.
    assert described["mqtt.decisions"].endswith("publishing work.")
    rendered = reference.render()
    assert "``" not in rendered  # RST literals become Markdown code
    assert all(line.count("|") == 5 for line in rendered.splitlines() if line.startswith("| `"))
