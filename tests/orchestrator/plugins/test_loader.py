"""The loader: a source file becomes a fresh module object under a unique name,
and a failed load leaves nothing behind."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.errors import ConfigError, ContractError, ModuleLoadError
from orchestrator.plugins.loader import instantiate, load_module, validate_params
from orchestrator.plugins.sources import resolve_source

GOOD = '''\
"""Counts its own imports."""
from pydantic import Field

from orchestrator import AnalysisModule, Bar, EventKind, ModuleContext, ModuleOutput, ModuleParams

IMPORTS: list[int] = []
IMPORTS.append(1)
GENERATION = {generation}


class CounterParams(ModuleParams):
    step: int = Field(1, gt=0)


class Counter(AnalysisModule[CounterParams]):
    name = "counter"
    version = "{generation}.0"
    consumes = frozenset({{EventKind.BAR}})
    Params = CounterParams

    def on_bar(self, bar: Bar, ctx: ModuleContext) -> ModuleOutput | None:
        return None


MODULE = Counter
'''


def loaded_names() -> set[str]:
    return {name for name in sys.modules if name.startswith("orchestrator_loaded.")}


@pytest.fixture
def counter(write_module: Callable[..., Path]) -> Path:
    return write_module("counter", GOOD.format(generation=1))


def test_each_load_is_a_fresh_module_under_a_unique_name(counter: Path) -> None:
    source = resolve_source("counter", path=counter)
    first = load_module(source)
    second = load_module(source)
    try:
        assert first.module_name != second.module_name
        assert first.module is not second.module
        assert first.cls is not second.cls
        assert first.module.IMPORTS is not second.module.IMPORTS
        assert first.module.IMPORTS == second.module.IMPORTS == [1]
        assert sys.modules[first.module_name] is first.module
        assert sys.modules[second.module_name] is second.module
        assert first.cls.__module__ == first.module_name
        first.unload()
        assert first.module_name not in sys.modules
        assert sys.modules[second.module_name] is second.module
    finally:
        second.unload()
    assert second.module_name not in sys.modules


def test_a_changed_file_loads_as_new_code_and_the_old_class_is_untouched(counter: Path) -> None:
    old = load_module(resolve_source("counter", path=counter))
    counter.write_text(GOOD.format(generation=2))
    new = load_module(resolve_source("counter", path=counter))
    try:
        assert (old.module.GENERATION, new.module.GENERATION) == (1, 2)
        assert (old.contract.version, new.contract.version) == ("1.0", "2.0")
        assert old.source_hash != new.source_hash
    finally:
        old.unload()
        new.unload()


def test_params_validate_against_the_module_schema(counter: Path) -> None:
    loaded = load_module(resolve_source("counter", path=counter))
    try:
        assert validate_params(loaded, {"step": 3}, key_path="modules.c.params").step == 3  # type: ignore[attr-defined]
        with pytest.raises(ConfigError) as caught:
            validate_params(loaded, {"step": 0, "stride": 2}, key_path="modules.c.params")
        assert sorted(caught.value.problems) == [
            "modules.c.params.step: must be > 0",
            "modules.c.params.stride: unknown key",
        ]
    finally:
        loaded.unload()


def test_a_params_validator_that_raises_anything_is_a_one_line_config_error(
    write_module: Callable[..., Path],
) -> None:
    # pydantic converts only ValueError/AssertionError; a validator's TypeError
    # used to escape validate_params and end check-config in a traceback.
    source = GOOD.format(generation=1).replace(
        "    step: int = Field(1, gt=0)\n",
        "    step: int = Field(1, gt=0)\n\n"
        "    @field_validator('step')\n"
        "    @classmethod\n"
        "    def _odd(cls, value: int) -> int:\n"
        "        return value + None if value > 5 else value\n",
    )
    source = source.replace("from pydantic import Field", "from pydantic import Field, field_validator")
    path = write_module("counter", source)
    line = next(n for n, text in enumerate(source.splitlines(), start=1) if "value + None" in text)
    loaded = load_module(resolve_source("counter", path=path))
    try:
        assert validate_params(loaded, {"step": 3}, key_path="modules.c.params").step == 3  # type: ignore[attr-defined]
        with pytest.raises(ConfigError) as caught:
            validate_params(loaded, {"step": 7}, key_path="modules.c.params")
        (problem,) = caught.value.problems
        assert problem.startswith("modules.c.params: the module's parameter check raised TypeError: unsupported ")
        assert problem.endswith(f"({path}:{line})")
    finally:
        loaded.unload()


@pytest.mark.parametrize(
    ("body", "line", "kind"),
    [
        ("x = 1\ndef broken(:\n    pass\n", 2, "SyntaxError"),
        ("import os\nimport package_that_is_not_installed_anywhere\n", 2, "ModuleNotFoundError"),
        ("a = 1\nb = 2\nc = a / 0\n", 3, "ZeroDivisionError"),
        ("def helper():\n    raise RuntimeError('boom at import')\n\n\nhelper()\n", 2, "RuntimeError"),
    ],
    ids=["syntax", "import", "exception", "nested-exception"],
)
def test_a_broken_file_is_a_load_error_with_file_and_line_and_leaves_nothing(
    write_module: Callable[..., Path], body: str, line: int, kind: str
) -> None:
    path = write_module("broken", body)
    before = loaded_names()
    with pytest.raises(ModuleLoadError) as caught:
        load_module(resolve_source("broken", path=path), label="broken_instance")
    error = caught.value
    assert error.module == "broken_instance"
    assert error.file == str(path)
    assert error.line == line
    assert kind in error.message
    assert f"{path}:{line}" in str(error)
    assert loaded_names() == before


def test_a_file_without_module_is_a_clear_error(write_module: Callable[..., Path]) -> None:
    path = write_module("nomodule", "VALUE = 1\n")
    before = loaded_names()
    with pytest.raises(ModuleLoadError) as caught:
        load_module(resolve_source("nomodule", path=path))
    assert "defines no MODULE" in caught.value.message
    assert "MODULE = YourModuleClass" in caught.value.message
    assert caught.value.file == str(path)
    assert loaded_names() == before


def test_a_contract_violation_leaves_nothing(write_module: Callable[..., Path]) -> None:
    path = write_module("badcontract", GOOD.format(generation=1).replace('version = "1.0"', 'version = ""'))
    before = loaded_names()
    with pytest.raises(ContractError, match="version must be a non-empty string"):
        load_module(resolve_source("badcontract", path=path))
    assert loaded_names() == before


def test_a_raising_constructor_is_a_load_error_naming_the_line(write_module: Callable[..., Path]) -> None:
    source = GOOD.format(generation=1).replace(
        "    def on_bar(", "    def __init__(self, params):\n        raise ValueError('no')\n\n    def on_bar("
    )
    path = write_module("ctor", source)
    loaded = load_module(resolve_source("ctor", path=path))
    line = source.splitlines().index("        raise ValueError('no')") + 1
    try:
        with pytest.raises(ModuleLoadError) as caught:
            instantiate(loaded, loaded.contract.params_model())
        assert "constructor raised ValueError: no" in caught.value.message
        assert (caught.value.file, caught.value.line) == (str(path), line)
    finally:
        loaded.unload()


PACKAGE_INIT = '''\
"""A module split over a package: relative imports must work."""
from orchestrator import AnalysisModule, Bar, EventKind, ModuleContext, ModuleOutput, ModuleParams

from .maths import scale
from .sub.deep import OFFSET


class Packaged(AnalysisModule[ModuleParams]):
    name = "packaged"
    version = "1.0"
    consumes = frozenset({EventKind.BAR})

    def on_bar(self, bar: Bar, ctx: ModuleContext) -> ModuleOutput | None:
        return None


RESULT = scale(2) + OFFSET
MODULE = Packaged
'''


def write_package(root: Path, maths: str = "def scale(x):\n    return 10 * x\n") -> Path:
    package = root / "packaged"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text(PACKAGE_INIT)
    (package / "maths.py").write_text(maths)
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "deep.py").write_text("OFFSET = 1\n")
    return package


def test_a_package_module_with_relative_imports_loads(tmp_path: Path) -> None:
    package = write_package(tmp_path)
    source = resolve_source("packaged", path=package)
    assert source.is_package
    assert {p.name for p in source.files()} == {"__init__.py", "maths.py", "deep.py"}
    first = load_module(source)
    second = load_module(source)
    try:
        assert first.module.RESULT == 21
        assert first.contract.name == "packaged"
        assert sys.modules[f"{first.module_name}.maths"] is not sys.modules[f"{second.module_name}.maths"]
    finally:
        first.unload()
        second.unload()
    assert not [n for n in sys.modules if n.startswith((first.module_name, second.module_name))]


def test_an_error_in_a_package_submodule_names_that_file(tmp_path: Path) -> None:
    package = write_package(tmp_path, maths="OK = 1\nraise ImportError('maths is broken')\n")
    before = loaded_names()
    with pytest.raises(ModuleLoadError) as caught:
        load_module(resolve_source("packaged", path=package))
    assert caught.value.file == str(package / "maths.py")
    assert caught.value.line == 2
    assert "maths is broken" in caught.value.message
    assert loaded_names() == before


def test_a_source_change_in_a_package_file_changes_its_hash(tmp_path: Path) -> None:
    package = write_package(tmp_path)
    source = resolve_source("packaged", path=package)
    before = source.source_hash()
    (package / "sub" / "deep.py").write_text("OFFSET = 2\n")
    assert source.source_hash() != before
