"""neural_fusion relies on scikit-learn internals: the project caps the version,
and the cap admits the version the tests run against."""

from __future__ import annotations

import importlib.metadata
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

PYPROJECT = Path(__file__).resolve().parents[3] / "pyproject.toml"


def scikit_learn_requirement() -> Requirement:
    dependencies = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]["dependencies"]
    (requirement,) = [r for r in map(Requirement, dependencies) if r.name == "scikit-learn"]
    return requirement


def test_scikit_learn_is_capped_and_the_cap_admits_the_installed_version() -> None:
    specifier = scikit_learn_requirement().specifier
    assert any(spec.operator == "<" for spec in specifier), f"no upper bound: {specifier}"
    installed = Version(importlib.metadata.version("scikit-learn"))
    assert specifier.contains(installed), f"scikit-learn {installed} is outside {specifier}"
    assert not specifier.contains(Version(f"{installed.major + 1}.0")), "the next major version is admitted"
