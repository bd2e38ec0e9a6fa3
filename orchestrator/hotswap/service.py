"""Wire hot swap into a daemon: the manager behind ``DaemonControl``, the
control socket and the source watcher as services."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from orchestrator.config.loader import LoadedConfig
from orchestrator.engine.plan import RunPlan
from orchestrator.hotswap.control_socket import ControlSocketServer, socket_path
from orchestrator.hotswap.manager import ModuleManager
from orchestrator.hotswap.watcher import SourceWatcher

if TYPE_CHECKING:
    from orchestrator.daemon import Daemon


@dataclass(frozen=True, slots=True)
class HotSwap:
    manager: ModuleManager
    control_socket: ControlSocketServer
    watcher: SourceWatcher


def attach_hot_swap(daemon: Daemon) -> HotSwap:
    """Give ``daemon`` module operations, a control socket and a watcher."""
    manager = ModuleManager(
        engine=daemon.engine,
        loaded=daemon.loaded,
        store=daemon.store,
        recorder=daemon.recent_events,
        is_stopping=daemon.stopping.is_set,
    )

    def follow(loaded: LoadedConfig, plan: RunPlan) -> None:
        # Restart-only sections keep their running values in ``loaded``.
        daemon.loaded = loaded
        daemon.config = loaded.config
        daemon.plan = plan

    manager.config_listeners.append(follow)
    daemon.control.modules = manager
    server = ControlSocketServer(daemon.control, manager, socket_path(daemon.config.state_dir))
    watcher = SourceWatcher(manager, reload_config=daemon.systemd.reload_config)
    daemon.services.extend([server, watcher])
    return HotSwap(manager, server, watcher)
