"""End to end with a real daemon process: the command line reaches it over
the control socket, SIGHUP reloads its config, SIGTERM stops it cleanly."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import pytest
from hotswap_support import Workspace, counter_source

from orchestrator.hotswap.control_client import ControlUnavailable, send

pytestmark = pytest.mark.slow


def cli(workspace: Workspace, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", *args, "-c", str(workspace.config)],
        cwd=workspace.root,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def poll(condition: Callable[[], object], what: str, timeout: float = 30.0) -> object:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = condition()
        except ControlUnavailable:
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def modules(workspace: Workspace) -> dict[str, dict]:
    answer = send(workspace.state / "control.sock", {"command": "modules"}, timeout=20)
    return {row["name"]: row for row in answer["data"]["modules"]}


@contextlib.contextmanager
def running(workspace: Workspace, document: dict) -> Iterator[subprocess.Popen[str]]:
    workspace.write_config(document)
    process = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "run", "-c", str(workspace.config)],
        cwd=workspace.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        poll(lambda: modules(workspace), "the daemon's control socket")
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def workspace(tmp_path_factory) -> Workspace:
    # A short root: unix socket paths are limited to 107 bytes.
    root = tmp_path_factory.mktemp("d", numbered=True)
    modules = root / "mods"
    modules.mkdir()
    space = Workspace(root, modules, root / "config.yaml", root / "st")
    space.write_module("counter", counter_source())
    return space


def paced(workspace: Workspace, **sections) -> dict:
    document = workspace.base_config({"counter": {}}, **sections)
    document["feed"] = {"kind": "simulated", "simulated": {"speed": 50}}
    return document


def test_the_command_line_drives_a_running_daemon(workspace):
    with running(workspace, paced(workspace)) as process:
        drive(workspace, process)


def drive(workspace: Workspace, process: subprocess.Popen[str]) -> None:
    listed = cli(workspace, "modules", "--live", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)["modules"]
    assert [(r["name"], r["version"], r["swaps"]) for r in rows] == [("counter", "1.0.0", 0)]

    workspace.write_module("counter", counter_source("1.1.0"))  # the watcher swaps it in
    poll(lambda: modules(workspace)["counter"]["version"] == "1.1.0", "the edited version")

    reloaded = cli(workspace, "reload", "counter")
    assert reloaded.returncode == 0, reloaded.stderr
    assert "swapped counter" in reloaded.stdout
    assert modules(workspace)["counter"]["swaps"] == 2

    refused = cli(workspace, "set-param", "counter", "scale", "abc")
    assert refused.returncode == 1
    assert "modules.counter.params.scale: must be a number" in refused.stderr
    unknown = cli(workspace, "reload", "no_such_module")
    assert unknown.returncode == 1
    assert "unknown module 'no_such_module'" in unknown.stderr

    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    assert not (workspace.state / "control.sock").exists()
    unreachable = cli(workspace, "reload")
    assert unreachable.returncode == 3
    assert "no daemon is running" in unreachable.stderr


def test_sighup_reloads_the_config(workspace):
    with running(workspace, paced(workspace, hot_swap={"watch": False})) as process:
        reload_on_sighup(workspace, process)
    assert process.returncode == 0


def reload_on_sighup(workspace: Workspace, process: subprocess.Popen[str]) -> None:
    changed = paced(workspace, hot_swap={"watch": False})
    changed["modules"]["counter"] = {"params": {"scale": 4.0}}
    workspace.write_config(changed)
    time.sleep(0.3)
    assert modules(workspace)["counter"]["swaps"] == 0  # not watching: nothing until asked

    process.send_signal(signal.SIGHUP)
    poll(lambda: modules(workspace)["counter"]["swaps"] == 1, "the reload on SIGHUP")

    workspace.config.write_text(workspace.config.read_text().replace("counter:", "counter:\n    weight: -3"))
    process.send_signal(signal.SIGHUP)
    answer = poll(
        lambda: send(workspace.state / "control.sock", {"command": "modules"})["data"]["config"]["problems"],
        "the refusal",
    )
    assert any("modules.counter.weight" in line for line in answer)
    listed = cli(workspace, "modules", "--live")
    assert listed.returncode == 0
    assert "config on disk refused" in listed.stdout
    assert modules(workspace)["counter"]["swaps"] == 1
