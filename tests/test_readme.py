"""The README's module example is real code: it loads, validates and runs."""

from __future__ import annotations

import math
import re
from pathlib import Path

from orchestrator.events import Bar
from orchestrator.testing import ModuleHarness

README = Path(__file__).resolve().parents[1] / "README.md"


def _module_example() -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Writing a module", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match, "the README lost its module example"
    return match.group(1)


def test_readme_module_example_loads_runs_and_hands_state_over(tmp_path: Path) -> None:
    path = tmp_path / "breakout.py"
    path.write_text(_module_example(), encoding="utf-8")
    bars = [
        Bar("X", 60_000 * (i + 1), p, p + 1.0, p - 1.0, p, 1.0, 60_000)
        for i, p in enumerate(100.0 + 10.0 * math.sin(i / 7.0) + 0.3 * i for i in range(120))
    ]
    harness = ModuleHarness({"breakout": {"window": 10}}, symbols=["X"], paths={"breakout": path})
    trace = harness.run(bars, "breakout")
    assert harness.errors("breakout") == 0
    outputs = [o for o in trace if o is not None]
    assert outputs, "the example never produced an output"
    assert {o.prediction.alpha for o in outputs if o.prediction} >= {1.0}
    # State handoff: a successor built from the exported state continues identically.
    first = ModuleHarness({"breakout": {"window": 10}}, symbols=["X"], paths={"breakout": path})
    first.run(bars[:60])
    second = ModuleHarness(
        {"breakout": {"window": 10}}, symbols=["X"], paths={"breakout": path}, states=first.export_states()
    )
    assert second.adopted["breakout"]
    assert second.run(bars[60:], "breakout") == first.run(bars[60:], "breakout")


MODULE_NAMES = (
    "cob",
    "regime",
    "pivots",
    "extrema",
    "microstructure",
    "neural_fusion",
    "bollinger",
    "macd_rsi",
    "momentum_rank",
    "ma_crossover",
)


def _module_section(text: str, name: str) -> str:
    start = text.index(f"\n### {name}\n")
    end = text.find("\n### ", start + 1)
    return text[start:end]


def test_every_module_has_a_readme_section_listing_exactly_its_parameters() -> None:
    from orchestrator.testing import load_named

    text = README.read_text(encoding="utf-8")
    for name in MODULE_NAMES:
        section = _module_section(text, name)
        documented = set(re.findall(r"^\| `(\w+)` \| ", section, re.MULTILINE))
        declared = set(load_named(name).contract.params_model.model_fields)
        assert documented == declared, f"{name}: README lists {sorted(documented ^ declared)} wrongly"
