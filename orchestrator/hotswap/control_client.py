"""The client side of the control socket, for the command line.

Synchronous and dependency-free: connect, send one JSON line, read one
back. Every way of not reaching a daemon becomes a ``ControlUnavailable``
that says what to check.
"""

from __future__ import annotations

import json
import os
import re
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from orchestrator.config.loader import apply_env_overrides
from orchestrator.errors import OrchestratorError

SOCKET_NAME = "control.sock"  # in the state directory
_STATE_DIR_LINE = re.compile(r"^state_dir:[ \t]*([^#\n]*?)[ \t]*(?:#.*)?$", re.MULTILINE)
DEFAULT_TIMEOUT_S = 60.0  # a reload loads and checks code: allow well over its own time limit


class ControlUnavailable(OrchestratorError):
    """No daemon could be reached on the control socket."""


def socket_for(config: Path, env: Mapping[str, str] | None = None) -> Path:
    """The control socket of a daemon run with ``config``: ``state_dir`` from
    the file and ``ORCHESTRATOR__STATE_DIR``, read leniently so a config
    that was just broken by an edit still finds its daemon."""
    raw: Any = {}
    try:
        text = config.read_text(encoding="utf-8")
    except OSError:
        text = ""
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError:
        # Broken further down, perhaps by the very edit being reloaded: the
        # top-level line still says where the daemon keeps its socket.
        found = _STATE_DIR_LINE.search(text)
        raw = {} if found is None else {"state_dir": yaml.safe_load(found.group(1))}
    merged, _ = apply_env_overrides(raw if isinstance(raw, dict) else {}, os.environ if env is None else env)
    state_dir = merged.get("state_dir", "state")
    return Path(str(state_dir)) / SOCKET_NAME


def send(path: Path, request: Mapping[str, Any], *, timeout: float = DEFAULT_TIMEOUT_S) -> dict[str, Any]:
    """Send one request; return the daemon's ``{"ok", "message", "data"}``."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(os.fspath(path))
        except FileNotFoundError:
            raise ControlUnavailable(f"no daemon is running here: {path} does not exist") from None
        except ConnectionRefusedError:
            raise ControlUnavailable(f"no daemon answers on {path} (left behind by a daemon that stopped?)") from None
        except PermissionError:
            raise ControlUnavailable(f"{path}: permission denied (the socket is the daemon user's only)") from None
        except OSError as exc:
            raise ControlUnavailable(f"cannot reach the daemon on {path}: {exc}") from None
        try:
            sock.sendall(json.dumps(dict(request)).encode() + b"\n")
            chunks: list[bytes] = []
            while not chunks or not chunks[-1].endswith(b"\n"):
                chunk = sock.recv(65_536)
                if not chunk:
                    break
                chunks.append(chunk)
        except TimeoutError:
            raise ControlUnavailable(f"the daemon did not answer within {timeout:.0f} s") from None
        except OSError as exc:
            raise ControlUnavailable(f"connection to the daemon failed: {exc}") from None
    try:
        answer = json.loads(b"".join(chunks))
    except json.JSONDecodeError:
        raise ControlUnavailable("the daemon closed the connection without an answer") from None
    if not isinstance(answer, dict) or "ok" not in answer:
        raise ControlUnavailable(f"unexpected answer from the daemon: {answer!r}")
    return answer
