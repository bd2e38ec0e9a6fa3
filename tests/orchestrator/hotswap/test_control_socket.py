"""The control socket: owner-only, one JSON request per connection, clear
errors for bad requests, and no second daemon on the same state directory."""

from __future__ import annotations

import asyncio
import json
import socket
import stat
import subprocess
import sys

import pytest
from hotswap_support import counter_source

from orchestrator.daemon import Daemon
from orchestrator.errors import OrchestratorError
from orchestrator.hotswap.control_client import ControlUnavailable, send, socket_for
from orchestrator.hotswap.control_socket import ControlSocketServer, socket_path
from orchestrator.orders import OrderDenied, OrderIntent, Side
from orchestrator.risk.engine import AccountView
from orchestrator.risk.state import TradingState
from orchestrator.risk.store import RiskStateStore
from orchestrator.signals import Decision


@pytest.fixture
async def daemon(workspace):
    workspace.write_module("counter", counter_source())
    workspace.write_config(workspace.base_config({"counter": {}}))
    daemon = Daemon(workspace.load())
    server = daemon.hot_swap.control_socket
    await server.start()
    serving = asyncio.create_task(server.run())
    yield daemon
    serving.cancel()
    await server.stop()


async def ask(daemon: Daemon, request: dict) -> dict:
    return await asyncio.to_thread(send, daemon.hot_swap.control_socket.path, request, timeout=20)


async def raw_ask(daemon: Daemon, payload: bytes) -> dict:
    def exchange() -> dict:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(20)
            sock.connect(str(daemon.hot_swap.control_socket.path))
            sock.sendall(payload)
            return json.loads(sock.makefile("rb").readline())

    return await asyncio.to_thread(exchange)


async def test_the_socket_is_the_owners_only(daemon, workspace):
    path = socket_path(workspace.state)
    assert daemon.hot_swap.control_socket.path == path
    mode = path.stat().st_mode
    assert stat.S_ISSOCK(mode)
    assert stat.S_IMODE(mode) == 0o600


async def test_commands_reach_the_daemon(daemon, workspace):
    modules = await ask(daemon, {"command": "modules"})
    assert modules["ok"]
    assert [row["name"] for row in modules["data"]["modules"]] == ["counter"]
    row = modules["data"]["modules"][0]
    assert {"version", "source_hash", "state", "loaded_at", "swaps", "last_error", "reload_error"} <= set(row)

    status = await ask(daemon, {"command": "status"})
    assert status["data"]["instance"] == "default"

    workspace.write_module("counter", counter_source("3.0.0"))
    reloaded = await ask(daemon, {"command": "reload", "module": "counter"})
    assert reloaded["ok"], reloaded
    assert daemon.engine.pipelines["default"].slots["counter"].loaded.contract.version == "3.0.0"

    param = await ask(daemon, {"command": "set_param", "module": "counter", "key": "scale", "value": 2})
    assert param["ok"], param
    assert daemon.engine.pipelines["default"].slots["counter"].params.scale == 2.0

    paused = await ask(daemon, {"command": "pause"})
    assert paused["ok"]
    assert daemon.engine.risk.state is TradingState.PAUSED


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        pytest.param(b"not json\n", "not JSON", id="not-json"),
        pytest.param(b'{"command": "format_disk"}\n', "command: must be one of", id="unknown-command"),
        pytest.param(b'{"command": "reload", "path": "/tmp/x.py"}\n', "path: unknown key", id="no-paths"),
        pytest.param(b'{"command": "disable"}\n', "needs a module name", id="no-module"),
        pytest.param(b'{"command": "set_param", "module": "counter"}\n', "needs a parameter name", id="no-key"),
        pytest.param(b'{"command": "reload", "module": "os"}\n', "unknown module 'os'", id="not-configured"),
        pytest.param(b'{"command": "status", "reason": "caf\xe9"}\n', "not JSON (not UTF-8)", id="not-utf8"),
        pytest.param(
            b'{"command": "set_param", "module": "counter", "key": "k", "value": ' + b"[" * 5000 + b"]" * 5000 + b"}\n",
            "nested more than 32 levels deep",
            id="deep-nesting",
        ),
        pytest.param(b'{"command": "pause", "command": "halt"}\n', "'command' appears more than once", id="repeated"),
    ],
)
async def test_bad_requests_get_a_clear_answer(daemon, payload, error):
    answer = await raw_ask(daemon, payload)
    assert not answer["ok"]
    assert error in answer["message"]


async def test_an_oversized_request_is_refused(daemon):
    answer = await raw_ask(daemon, b'{"command": "status", "reason": "' + b"x" * 100_000 + b'"}\n')
    assert not answer["ok"]
    assert "longer than" in answer["message"]


async def test_a_second_daemon_on_the_same_state_directory_is_refused(daemon):
    second = ControlSocketServer(daemon.control, daemon.hot_swap.manager, daemon.hot_swap.control_socket.path)
    with pytest.raises(OrchestratorError, match="another daemon is running"):
        await second.start()


async def test_a_stale_socket_is_replaced_and_stop_removes_it(workspace, daemon):
    path = workspace.state / "old.sock"
    leftover = socket.socket(socket.AF_UNIX)
    leftover.bind(str(path))
    leftover.close()  # bound, never listening: what a killed daemon leaves
    server = ControlSocketServer(daemon.control, daemon.hot_swap.manager, path)
    await server.start()
    assert stat.S_ISSOCK(path.stat().st_mode)
    await server.stop()
    assert not path.exists()


async def test_a_file_in_the_way_or_a_path_too_long_is_an_error(workspace, daemon):
    blocker = workspace.state / "blocker.sock"
    blocker.write_text("not a socket")
    with pytest.raises(OrchestratorError, match="is not a socket"):
        await ControlSocketServer(daemon.control, daemon.hot_swap.manager, blocker).start()
    deep = workspace.state / ("d" * 120) / "control.sock"
    with pytest.raises(OrchestratorError, match="longer than 107 bytes"):
        await ControlSocketServer(daemon.control, daemon.hot_swap.manager, deep).start()


def test_the_client_explains_a_missing_daemon(tmp_path):
    with pytest.raises(ControlUnavailable, match="no daemon is running here"):
        send(tmp_path / "control.sock", {"command": "status"})


def test_the_client_finds_the_socket_even_from_a_broken_config(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("state_dir: /srv/orch\nmodules: {}\n")
    assert str(socket_for(config, env={})) == "/srv/orch/control.sock"
    assert str(socket_for(config, env={"ORCHESTRATOR__STATE_DIR": "/var/lib/o"})) == "/var/lib/o/control.sock"
    config.write_text("state_dir: '/srv/orch'  # ours\nmodules: [this is: not yaml\n")  # just broken by an edit
    assert str(socket_for(config, env={})) == "/srv/orch/control.sock"
    config.write_text("modules: {}\n")
    assert str(socket_for(config, env={})) == "state/control.sock"


def decision(target: float, trace_id: str) -> Decision:
    return Decision(trace_id, 5, "BTC/USDT", "default", target, 1.0, 0.0, 0.0, "weighted", {})


def holding(position: float) -> AccountView:
    return AccountView(price=100.0, equity=100_000.0, position=position, pending=0.0)


async def test_reduce_lets_only_risk_reducing_orders_through_and_is_persisted(daemon, workspace):
    risk = daemon.engine.risk
    assert isinstance(risk.evaluate(decision(0.3, "before"), holding(0.0)), OrderIntent)  # ACTIVE: new risk goes

    answer = await ask(daemon, {"command": "reduce", "reason": "drawdown drill"})
    assert answer["ok"], answer
    assert answer["data"] == {"previous": "ACTIVE"}
    assert risk.state is TradingState.REDUCING
    status = await ask(daemon, {"command": "status"})
    assert status["data"]["state"] == "REDUCING"

    more = risk.evaluate(decision(0.3, "grow"), holding(10.0))  # wants 3000 long, holds 1000: more exposure
    assert isinstance(more, OrderDenied)
    assert (more.trace_id, more.side) == ("grow", Side.BUY)
    assert more.reason == "trading state REDUCING: only reducing orders leaves no room"
    less = risk.evaluate(decision(0.0, "shrink"), holding(10.0))  # flat: sells what is held
    assert isinstance(less, OrderIntent)
    assert (less.side, less.quantity, less.reduce_only) == (Side.SELL, pytest.approx(10.0), True)

    saved = RiskStateStore(workspace.state).load()  # a restart comes back REDUCING, like HALTED
    assert saved is not None
    assert (saved.state, saved.reason) == (TradingState.REDUCING, "drawdown drill")


async def test_reduce_works_from_halted_and_resume_ends_it(daemon):
    assert (await ask(daemon, {"command": "halt"}))["ok"]
    refused = await ask(daemon, {"command": "pause"})
    assert not refused["ok"]  # pause keeps its rule: resume first
    reduced = await ask(daemon, {"command": "reduce"})
    assert reduced["ok"]
    assert reduced["message"] == "reducing: only orders that shrink a position (was HALTED)"
    assert daemon.engine.risk.state is TradingState.REDUCING
    again = await ask(daemon, {"command": "reduce"})  # safe to say twice
    assert again["ok"]
    assert again["message"] == "reducing: only orders that shrink a position"
    assert (await ask(daemon, {"command": "resume"}))["ok"]
    assert daemon.engine.risk.state is TradingState.ACTIVE


def orchestrator(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", *args], capture_output=True, text=True, timeout=60, check=False
    )


async def test_the_command_line_changes_the_running_daemons_trading_state(daemon, workspace):
    config = str(workspace.config)
    steps = [
        (("reduce", "-r", "unwind"), 0, TradingState.REDUCING, "reducing"),
        (("halt",), 0, TradingState.HALTED, "halted: cancel sent for 0 open order(s)"),
        (("pause",), 1, TradingState.HALTED, "halted: resume first, then pause"),
        (("resume",), 0, TradingState.ACTIVE, "active"),
        (("pause", "--reason", "lunch"), 0, TradingState.PAUSED, "paused: no new orders"),
    ]
    for args, code, state, message in steps:
        done = await asyncio.to_thread(orchestrator, *args, "-c", config)
        assert done.returncode == code, (args, done.stdout, done.stderr)
        assert message in (done.stdout if code == 0 else done.stderr), (args, done.stdout, done.stderr)
        assert daemon.engine.risk.state is state, args
    saved = RiskStateStore(workspace.state).load()
    assert saved is not None
    assert (saved.state, saved.reason) == (TradingState.PAUSED, "lunch")
    as_json = await asyncio.to_thread(orchestrator, "resume", "--json", "-c", config)
    assert json.loads(as_json.stdout)["ok"] is True


def test_the_trading_state_commands_say_when_no_daemon_runs(tmp_path):
    for command in ("pause", "reduce", "resume", "halt"):
        done = orchestrator(command, "--socket", str(tmp_path / "control.sock"))
        assert done.returncode == 3, done.stderr
        assert "no daemon is running here" in done.stderr
        assert "Traceback" not in done.stderr
