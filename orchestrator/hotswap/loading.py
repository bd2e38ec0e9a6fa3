"""Loading changed module code in a worker thread, gently.

New code is executed off the event path (``gil.run_aside``); these helpers
decide what needs loading (content hashes, not timestamps: a save of
identical bytes is no change) and forget what a given-up load left behind.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path

from orchestrator.errors import ModuleLoadError
from orchestrator.hotswap.gil import Checkpoint, no_checkpoint
from orchestrator.plugins.loader import LoadedModule, load_module
from orchestrator.plugins.sources import ModuleSource


def load_changed(
    sources: Mapping[str, ModuleSource],
    serving: Mapping[str, LoadedModule],
    force: bool,
    checkpoint: Checkpoint = no_checkpoint,
) -> tuple[dict[str, LoadedModule], dict[str, ModuleLoadError], list[str]]:
    """Load (in a worker thread) every source whose content differs from the
    serving version's, or all of them when ``force``."""
    fresh: dict[str, LoadedModule] = {}
    failed: dict[str, ModuleLoadError] = {}
    unchanged: list[str] = []
    for key, source in sources.items():
        checkpoint()
        if not force and same_source(source, serving[key]):
            unchanged.append(key)
            continue
        try:
            fresh[key] = load_module(source, label=serving[key].contract.name)
        except ModuleLoadError as exc:
            failed[key] = exc
    return fresh, failed, unchanged


def forget_loaded(loaded: tuple[dict[str, LoadedModule], dict[str, ModuleLoadError], list[str]]) -> None:
    """``discard`` for a ``load_changed`` that finished after it was given up."""
    for module in loaded[0].values():
        module.unload()


def file_digest(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def same_source(source: ModuleSource, serving: LoadedModule) -> bool:
    try:
        return source.source_hash() == serving.source_hash
    except OSError:
        return False  # gone or unreadable: loading says so, with the path
