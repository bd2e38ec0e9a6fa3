"""The local command channel: a unix socket in the state directory.

``orchestrator reload``, ``orchestrator modules --live`` and friends talk to
the running daemon through it. One JSON object per line in, one per line
out (``{"ok", "message", "data"}``), then the connection closes.

Access is the owner's only: the socket file is created with mode 0600
(under a umask, so there is no moment it is open to others), and each
connection's peer credentials are checked (same user, or root). Requests
name modules of the local configuration and carry parameter values; no
path or code is ever accepted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import stat
import struct
from pathlib import Path
from typing import Any, Literal

import structlog
from pydantic import BaseModel, ConfigDict, ValidationError

from orchestrator.control import CommandResult, DaemonControl
from orchestrator.errors import OrchestratorError
from orchestrator.hotswap.control_client import SOCKET_NAME
from orchestrator.hotswap.manager import ModuleManager
from orchestrator.strict_json import MAX_DEPTH, decode_strict_json
from orchestrator.validation import format_validation_error

log = structlog.get_logger("orchestrator.control")

MAX_REQUEST_BYTES = 65_536
READ_TIMEOUT_S = 10.0
_SUN_PATH_MAX = 107  # sockaddr_un.sun_path is 108 bytes, one for the terminating NUL

Command = Literal[
    "status",
    "modules",
    "reload",
    "reload_config",
    "enable",
    "disable",
    "set_param",
    "pause",
    "resume",
    "reduce",
    "halt",
]
_NEEDS_MODULE = frozenset({"enable", "disable", "set_param"})


def socket_path(state_dir: Path) -> Path:
    return state_dir / SOCKET_NAME


class ControlRequest(BaseModel):
    """One command. ``module`` names a module of the local configuration."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    command: Command
    module: str | None = None
    key: str | None = None
    value: Any = None
    reason: str = "operator (control socket)"


def peer_uid(sock: socket.socket) -> int:
    """The uid of the process at the other end (Linux ``SO_PEERCRED``)."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", raw)
    return int(uid)


class ControlSocketServer:
    """A daemon service serving ``ControlRequest``s on ``path``."""

    name = "control-socket"

    def __init__(self, control: DaemonControl, manager: ModuleManager, path: Path) -> None:
        self.control = control
        self.manager = manager
        self.path = path
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        if len(os.fsencode(self.path)) > _SUN_PATH_MAX:
            raise OrchestratorError(
                f"control socket path {self.path} is longer than {_SUN_PATH_MAX} bytes (a unix socket limit): "
                "use a shorter state_dir"
            )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        await self._remove_stale()
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        previous = os.umask(0o177)  # created 0600: never a moment open to other users
        try:
            listener.bind(os.fspath(self.path))
        except OSError as exc:
            listener.close()
            raise OrchestratorError(f"cannot create the control socket {self.path}: {exc}") from exc
        finally:
            os.umask(previous)
        os.chmod(self.path, 0o600)
        self._server = await asyncio.start_unix_server(self._accept, sock=listener, limit=MAX_REQUEST_BYTES)
        log.info("control_socket", path=str(self.path))

    async def _remove_stale(self) -> None:
        try:
            mode = self.path.lstat().st_mode
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(mode):
            raise OrchestratorError(f"{self.path} exists and is not a socket: move it away")
        try:
            _, writer = await asyncio.wait_for(asyncio.open_unix_connection(os.fspath(self.path)), 1.0)
        except (ConnectionRefusedError, FileNotFoundError, TimeoutError):
            self.path.unlink(missing_ok=True)  # left behind by a daemon that died
            return
        writer.close()
        raise OrchestratorError(
            f"another daemon is running with state directory {self.path.parent} (its control socket answers)"
        )

    async def run(self) -> None:
        assert self._server is not None
        await self._server.serve_forever()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for task in list(self._handlers):
            task.cancel()
        for task in list(self._handlers):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.path.unlink(missing_ok=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        try:
            result = await self._serve(reader, writer)
            payload = {"ok": result.ok, "message": result.message, "data": result.data}
            writer.write(json.dumps(payload, default=str).encode() + b"\n")
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away; nothing to tell it
        finally:
            if task is not None:
                self._handlers.discard(task)
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> CommandResult:
        sock = writer.get_extra_info("socket")
        uid = peer_uid(sock) if sock is not None else -1
        if uid not in (os.geteuid(), 0):
            log.warning("control_refused", uid=uid)
            return CommandResult(False, "permission denied: not the daemon's user")
        try:
            line = await asyncio.wait_for(reader.readline(), READ_TIMEOUT_S)
        except TimeoutError:
            return CommandResult(False, f"no request within {READ_TIMEOUT_S:.0f} s")
        except ValueError:  # longer than the reader's limit
            return CommandResult(False, f"request longer than {MAX_REQUEST_BYTES} bytes")
        try:
            raw, problems = decode_strict_json(line)
        except UnicodeDecodeError as exc:
            return CommandResult(False, f"request is not JSON (not UTF-8): {exc}")
        except RecursionError:
            return CommandResult(False, f"request is not acceptable JSON: nested more than {MAX_DEPTH} levels deep")
        except ValueError as exc:
            return CommandResult(False, f"request is not JSON: {exc}")
        if problems:
            return CommandResult(False, "request is not acceptable JSON: " + "; ".join(problems))
        try:
            request = ControlRequest.model_validate(raw)
        except ValidationError as exc:
            return CommandResult(False, "bad request: " + "; ".join(format_validation_error(exc)))
        # Reads are polled by dashboards: keep them out of the info log.
        level = log.debug if request.command in ("status", "modules") else log.info
        level("control_command", command=request.command, module=request.module, key=request.key)
        return await self.dispatch(request)

    async def dispatch(self, request: ControlRequest) -> CommandResult:
        control = self.control
        command = request.command
        if command in _NEEDS_MODULE and not request.module:
            return CommandResult(False, f"{command} needs a module name")
        module = request.module or ""
        if command == "status":
            return control.status()
        if command == "modules":
            return CommandResult(True, "modules", self.manager.describe())
        if command == "reload":
            return await control.module_reload(request.module)
        if command == "reload_config":
            return await control.reload_config()
        if command == "enable":
            return await control.module_enable(module)
        if command == "disable":
            return await control.module_disable(module)
        if command == "set_param":
            if not request.key:
                return CommandResult(False, "set_param needs a parameter name (key)")
            return await control.set_param(module, request.key, request.value)
        if command == "pause":
            return control.pause(request.reason)
        if command == "resume":
            return control.resume(request.reason)
        if command == "reduce":
            return control.reduce(request.reason)
        return control.halt(request.reason)
