"""Which files the watcher watches, and what a change to each one means.

The source files of every serving implementation (built-in, path and
entry-point modules alike: ``ModuleSource.files()``), any new ``.py`` file
inside a serving package, and the config file. Directories are watched
rather than files, because editors often save by writing a new file and
renaming it over the old one, which a watch on the old file would miss.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from orchestrator.config.loader import LoadedConfig
from orchestrator.plugins.loader import LoadedModule


@dataclass(frozen=True, slots=True)
class WatchSet:
    config_files: frozenset[Path]  # the config file as named and as resolved (it may be a symlink)
    module_files: Mapping[Path, str]  # source file -> implementation key
    package_dirs: Mapping[Path, str]  # package directory -> implementation key

    @property
    def directories(self) -> frozenset[Path]:
        found = {path.parent for path in self.config_files}
        found.update(path.parent for path in self.module_files)
        found.update(self.package_dirs)
        return frozenset(d for d in found if d.is_dir())

    def is_config(self, path: Path) -> bool:
        return path in self.config_files

    def implementation_of(self, path: Path) -> str | None:
        """The implementation a changed file belongs to, if any."""
        key = self.module_files.get(path)
        if key is not None or path.suffix != ".py":
            return key
        for directory, package_key in self.package_dirs.items():
            if path.is_relative_to(directory):
                return package_key
        return None

    def wants(self, path: Path) -> bool:
        return self.is_config(path) or self.implementation_of(path) is not None


def watch_set(loaded: LoadedConfig, serving: Mapping[str, LoadedModule]) -> WatchSet:
    config_files: set[Path] = set()
    if loaded.path is not None:
        config_files = {loaded.path.absolute(), loaded.path.resolve()}
    module_files: dict[Path, str] = {}
    package_dirs: dict[Path, str] = {}
    for key, module in serving.items():
        source = module.source
        for file in source.files():
            module_files[file] = key
        if source.is_package:
            package_dirs[source.origin.parent] = key
    return WatchSet(frozenset(config_files), module_files, package_dirs)
