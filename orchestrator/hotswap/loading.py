"""Loading changed module code in a worker thread, gently.

New code is executed off the event path; these helpers decide what needs
loading (content hashes, not timestamps: a save of identical bytes is no
change) and keep the worker from holding the GIL in long slices while the
event loop's thread is busy serving.
"""

from __future__ import annotations

import contextlib
import hashlib
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

from orchestrator.errors import ModuleLoadError
from orchestrator.plugins.loader import LoadedModule, load_module
from orchestrator.plugins.sources import ModuleSource

PREPARE_SWITCH_INTERVAL_S = 0.0005


@contextlib.contextmanager
def short_gil_slices() -> Iterator[None]:
    """Lower the interpreter's GIL switch interval while a worker thread loads
    and checks new code. The event loop's thread is busy processing events;
    with the default 5 ms it may wait that long each time the worker holds
    the GIL. With 0.5 ms the serving modules are held up at most about that
    (plus any single C call of the worker, such as compiling the file)."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(min(previous, PREPARE_SWITCH_INTERVAL_S))
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


def load_changed(
    sources: Mapping[str, ModuleSource], serving: Mapping[str, LoadedModule], force: bool
) -> tuple[dict[str, LoadedModule], dict[str, ModuleLoadError], list[str]]:
    """Load (in a worker thread) every source whose content differs from the
    serving version's, or all of them when ``force``."""
    fresh: dict[str, LoadedModule] = {}
    failed: dict[str, ModuleLoadError] = {}
    unchanged: list[str] = []
    for key, source in sources.items():
        if not force and same_source(source, serving[key]):
            unchanged.append(key)
            continue
        try:
            fresh[key] = load_module(source, label=serving[key].contract.name)
        except ModuleLoadError as exc:
            failed[key] = exc
    return fresh, failed, unchanged


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
