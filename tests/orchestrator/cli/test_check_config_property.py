"""Property: whatever YAML document ``check-config`` is given, it prints one ok
line and exits 0, or prints only one-line problems that start with the file
name and exits 2; it never prints a traceback, and nothing but the project's
``ConfigError`` ever escapes the loader and the module check.

The documents are random YAML-able structures (nested mappings, lists and
scalars, keys of every YAML type) placed under the real keys: the sections
(``modules``, ``risk``, ``feed``, ``mqtt``, ``buckets``, ...), their fields,
the built-in modules and their parameters, so the random values reach every
layer of validation. ``check-config`` runs in-process (the same command
function the console script runs) to afford hundreds of documents.
"""

from __future__ import annotations

import functools
import os
import tempfile
import types
import typing
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from typer.testing import CliRunner

from orchestrator.cli import app
from orchestrator.config.models import OrchestratorConfig
from orchestrator.plugins.loader import load_module
from orchestrator.plugins.sources import available_sources

MODULES = ("ma_crossover", "regime", "bollinger", "macd_rsi", "pivots")  # quick to load, varied schemas


def _field_names(model: type[BaseModel], seen: set[type[BaseModel]]) -> set[str]:
    """Every field name of ``model`` and of the models its fields contain."""
    if model in seen:
        return set()
    seen.add(model)
    names = set(model.model_fields)
    for info in model.model_fields.values():
        pending: list[Any] = [info.annotation]
        while pending:
            annotation = pending.pop()
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                names |= _field_names(annotation, seen)
            pending.extend(typing.get_args(annotation))
            if isinstance(annotation, types.UnionType):
                pending.extend(annotation.__args__)
    return names


def _model_of(annotation: Any) -> type[BaseModel] | None:
    pending = [annotation]
    while pending:
        candidate = pending.pop()
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
        pending.extend(typing.get_args(candidate))
    return None


@functools.cache
def section_fields() -> dict[str, tuple[str, ...]]:
    """Section -> the field names found in it (at any depth)."""
    fields = {}
    for section, info in OrchestratorConfig.model_fields.items():
        model = _model_of(info.annotation)
        fields[section] = tuple(sorted(_field_names(model, set()))) if model is not None else ()
    return fields


@functools.cache
def vocabulary() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(every configuration key, every parameter name of ``MODULES``)."""
    sources = available_sources()
    params: set[str] = set()
    for name in MODULES:
        loaded = load_module(sources[name], label=name)
        params |= set(loaded.contract.params_model.model_fields)
        loaded.unload()
    return tuple(sorted(_field_names(OrchestratorConfig, set()))), tuple(sorted(params))


SECTIONS = tuple(OrchestratorConfig.model_fields)
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=10)  # anything UTF-8 can carry
SYMBOL = st.sampled_from(["BTC/USDT", "ETH/USDT", "A", "", " ", "x" * 40]) | TEXT


def scalars() -> st.SearchStrategy[Any]:
    keys, params = vocabulary()
    return (
        st.none()
        | st.booleans()
        | st.integers(min_value=-(2**70), max_value=2**70)
        | st.sampled_from([0, 1, -1, 2, 5, 30, 1000])
        | st.floats(allow_nan=True, allow_infinity=True)
        | st.sampled_from([0.0, 0.5, 1.0, -0.5, 1e-9, 1e300])
        | TEXT
        | st.sampled_from([*MODULES, *SECTIONS, *keys[:40], *params[:40], "paper", "ccxt", "simulated", "default"])
    )


def keys() -> st.SearchStrategy[Any]:
    names, params = vocabulary()
    return (
        st.sampled_from((*SECTIONS, *names, *params, *MODULES))
        | TEXT
        | st.integers(min_value=-3, max_value=3)
        | st.none()
        | st.booleans()
    )


def values(max_leaves: int = 12) -> st.SearchStrategy[Any]:
    return st.recursive(
        scalars(),
        lambda children: st.lists(children, max_size=4) | st.dictionaries(keys(), children, max_size=4),
        max_leaves=max_leaves,
    )


def module_entries() -> st.SearchStrategy[dict[str, Any]]:
    _, params = vocabulary()
    fields = {
        "enabled": st.booleans() | values(2),
        "params": st.dictionaries(st.sampled_from(params), scalars() | values(3), max_size=4) | values(3),
        "weight": scalars(),
        "module": st.sampled_from(MODULES) | scalars(),
        "latency_budget_us": scalars(),
    }
    return st.fixed_dictionaries({}, optional=fields)


def buckets() -> st.SearchStrategy[Any]:
    bucket = st.fixed_dictionaries(
        {"symbols": st.lists(SYMBOL, max_size=3) | values(3)},
        optional={
            "modules": st.lists(st.sampled_from(MODULES) | TEXT, max_size=3) | values(2),
            "params": st.dictionaries(st.sampled_from(MODULES), values(4), max_size=2) | values(2),
            "fusion": values(4),
        },
    )
    return st.dictionaries(st.sampled_from(["majors", "alts", "..", "a b"]) | TEXT, bucket, max_size=3) | values(3)


def section_values(section: str) -> st.SearchStrategy[Any]:
    """A section's own keys (at any depth) with random values, sometimes nested."""
    names = section_fields()[section]
    if not names:
        return values(6)
    own_keys = st.sampled_from(names)
    nested = st.recursive(
        scalars(), lambda children: st.dictionaries(own_keys, children, max_size=3) | st.lists(children, max_size=2)
    )
    return st.dictionaries(own_keys, scalars() | nested, max_size=4) | values(8)


@st.composite
def mutated_profile(draw: st.DrawFn) -> dict[str, Any]:
    """A valid profile with a few random changes: reaches the module check and the plan."""
    _, params = vocabulary()
    chosen = draw(st.lists(st.sampled_from(MODULES), min_size=1, max_size=3, unique=True))
    document: dict[str, Any] = {"symbols": ["BTC/USDT", "ETH/USDT"], "modules": {name: {} for name in chosen}}
    entries = dict(document["modules"])  # the entries, even once a change replaced ``modules`` itself
    for _ in range(draw(st.integers(0, 3))):
        where = draw(st.sampled_from(["param", "module_field", "section", "buckets", "symbols"]))
        entry = entries[draw(st.sampled_from(chosen))]
        if where == "param":
            params_of = entry.setdefault("params", {})
            if isinstance(params_of, dict):
                params_of[draw(st.sampled_from(params))] = draw(scalars())
        elif where == "module_field":
            entry.update(draw(module_entries()))
        elif where == "section":
            section = draw(st.sampled_from(SECTIONS))
            document[section] = draw(section_values(section))
        elif where == "buckets":
            document.pop("symbols", None)
            document["buckets"] = draw(buckets())
        else:
            document["symbols"] = draw(st.lists(SYMBOL, min_size=1, max_size=3))
    return document


@st.composite
def documents(draw: st.DrawFn) -> Any:
    """A valid profile changed in a few places, a plausible profile with random
    parts, or (sometimes) anything at all."""
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return draw(values(20))
    if kind <= 5:
        return draw(mutated_profile())
    document: dict[Any, Any] = {}
    if draw(st.booleans()):
        document["symbols"] = draw(st.lists(SYMBOL, min_size=1, max_size=3) | values(3))
    else:
        document["buckets"] = draw(buckets())
    document["modules"] = draw(
        st.dictionaries(st.sampled_from(MODULES) | TEXT, module_entries(), max_size=3) | values(3)
    )
    for section in draw(st.lists(st.sampled_from(SECTIONS), max_size=4, unique=True)):
        document[section] = draw(section_values(section))
    for key, value in draw(st.dictionaries(keys(), values(4), max_size=2)).items():
        document.setdefault(key, value)
    return document


def check_config(path: Path) -> Any:
    environment: dict[str, str | None] = {name: None for name in os.environ if name.startswith("ORCHESTRATOR")}
    return CliRunner().invoke(app, ["check-config", str(path)], env=environment)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(document=documents())
def test_any_document_validates_or_gets_one_line_problems_naming_the_file(document: Any) -> None:
    text = yaml.safe_dump(document, allow_unicode=True, sort_keys=False)
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "random.yaml"
        path.write_text(text, encoding="utf-8")
        result = check_config(path)
    # Anything but SystemExit means an exception escaped the command: not a ConfigError.
    assert result.exception is None or isinstance(result.exception, SystemExit), (text, result.exception)
    assert "Traceback" not in result.stdout + result.stderr, text
    if result.exit_code == 0:
        assert result.stderr == ""
        assert result.stdout.startswith(f"{path}: ok ("), result.stdout
        assert result.stdout.count("\n") == 1, result.stdout
        return
    assert result.exit_code == 2, (text, result.exit_code, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines, text
    assert result.stderr == "\n".join(lines) + "\n", "each problem is one line"
    for line in lines:
        assert line.startswith(f"{path}: "), (text, line)
        assert line[len(f"{path}: ") :].strip(), (text, line)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text(st.sampled_from("ab: -[]{},&*!|>'\"#%@`?\t\n0.~<"), max_size=40))
def test_any_text_at_all_validates_or_gets_one_line_problems(text: str) -> None:
    # Not a structure dumped by a YAML library: raw text, mostly not valid YAML.
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "text.yaml"
        path.write_text(text, encoding="utf-8")
        result = check_config(path)
    assert isinstance(result.exception, SystemExit), (text, result.exception)
    assert result.exit_code == 2, (text, result.stdout)
    lines = result.stderr.splitlines()
    assert lines
    assert result.stderr == "\n".join(lines) + "\n"
    assert all(line.startswith(f"{path}: ") for line in lines), (text, lines)
