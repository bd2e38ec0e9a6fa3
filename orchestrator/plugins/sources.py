"""Where a module's code lives: a built-in file, an explicit path, or an
installed package advertised in the ``orchestrator.modules`` entry points.

Resolution is explicit: a module is found because the configuration names
it, never because a file happens to exist.
"""

from __future__ import annotations

import hashlib
import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Literal

from orchestrator.errors import ModuleLoadError

ENTRY_POINT_GROUP = "orchestrator.modules"
MODULE_ATTRIBUTE = "MODULE"
# ``modules/`` sits next to ``orchestrator/`` in a checkout, in an editable
# install and in site-packages alike.
BUILTIN_DIR = Path(__file__).resolve().parents[2] / "modules"

SourceKind = Literal["builtin", "path", "entrypoint"]


@dataclass(frozen=True, slots=True)
class ModuleSource:
    """The file a module is loaded from, and how to load it."""

    implementation: str
    origin: Path
    kind: SourceKind
    attribute: str = MODULE_ATTRIBUTE
    package: str | None = None  # parent package, so relative imports resolve
    is_package: bool = False

    def files(self) -> list[Path]:
        """Every source file whose change means new code for this module."""
        if self.is_package:
            return sorted(self.origin.parent.rglob("*.py"))
        return [self.origin]

    def source_hash(self) -> str:
        digest = hashlib.sha256()
        for file in self.files():
            digest.update(file.name.encode())
            digest.update(file.read_bytes())
        return digest.hexdigest()[:16]


def _in_directory(implementation: str, directory: Path, kind: SourceKind) -> ModuleSource | None:
    single = directory / f"{implementation}.py"
    if single.is_file():
        return ModuleSource(implementation, single.resolve(), kind)
    package = directory / implementation / "__init__.py"
    if package.is_file():
        return ModuleSource(implementation, package.resolve(), kind, is_package=True)
    return None


def _from_entry_point(entry_point: metadata.EntryPoint) -> ModuleSource:
    module_name, _, attribute = entry_point.value.partition(":")
    module_name = module_name.strip()
    try:
        spec = importlib.util.find_spec(module_name)
    except (ImportError, ValueError) as exc:
        raise ModuleLoadError(entry_point.name, f"entry point {entry_point.value!r}: {exc}") from exc
    if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
        raise ModuleLoadError(entry_point.name, f"entry point {entry_point.value!r} has no Python source file")
    is_package = spec.submodule_search_locations is not None
    parent = module_name if is_package else module_name.rpartition(".")[0] or None
    return ModuleSource(
        implementation=entry_point.name,
        origin=Path(spec.origin).resolve(),
        kind="entrypoint",
        attribute=attribute.strip() or MODULE_ATTRIBUTE,
        package=parent,
        is_package=is_package,
    )


def entry_points() -> dict[str, metadata.EntryPoint]:
    return {ep.name: ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}


def resolve_source(
    implementation: str,
    *,
    path: Path | None = None,
    search_dirs: Sequence[Path] = (),
) -> ModuleSource:
    """Find the code of ``implementation``: an explicit ``path`` first, then
    the configured search directories, then ``modules/``, then entry points."""
    if path is not None:
        if path.is_dir():
            found = _in_directory(path.name, path.parent, "path")
        elif path.is_file() and path.suffix == ".py":
            found = ModuleSource(implementation, path.resolve(), "path")
        else:
            found = None
        if found is None:
            raise ModuleLoadError(implementation, f"path {str(path)!r} is not a .py file or a package directory")
        return found
    for directory in (*search_dirs, BUILTIN_DIR):
        found = _in_directory(implementation, directory, "builtin" if directory == BUILTIN_DIR else "path")
        if found is not None:
            return found
    advertised = entry_points().get(implementation)
    if advertised is not None:
        return _from_entry_point(advertised)
    places = ", ".join(str(d) for d in (*search_dirs, BUILTIN_DIR))
    raise ModuleLoadError(
        implementation,
        f"unknown module (looked in {places} and entry-point group {ENTRY_POINT_GROUP!r})",
    )


def available_sources(search_dirs: Sequence[Path] = ()) -> dict[str, ModuleSource]:
    """Every module that could be named in a config, by implementation name."""
    found: dict[str, ModuleSource] = {}
    for name in entry_points():
        try:
            found[name] = resolve_source(name)
        except ModuleLoadError:
            continue
    for directory in (BUILTIN_DIR, *reversed(search_dirs)):
        if not directory.is_dir():
            continue
        for child in sorted(directory.iterdir()):
            name = child.stem if child.suffix == ".py" else child.name
            if name.startswith("_"):
                continue
            source = _in_directory(name, directory, "builtin" if directory == BUILTIN_DIR else "path")
            if source is not None:
                found[name] = source
    return dict(sorted(found.items()))
