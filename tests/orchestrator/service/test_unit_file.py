"""The systemd unit: what the issue asks of it, `systemd-analyze verify` without a warning, and
an exposure of 2.0 or lower from `systemd-analyze security --offline=yes`."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
UNIT = ROOT / "config" / "systemd" / "orchestrator.service"
INSTALLED_EXEC = "/opt/orchestrator/venv/bin/orchestrator"
MAX_EXPOSURE = 2.0


def systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found is None:
        pytest.fail("systemd-analyze is missing: install the Debian package 'systemd' (scripts/run-tests does)")
    return found


def directives(text: str) -> dict[str, list[str]]:
    """Every ``Key=value`` of the unit, values in order (keys may repeat)."""
    found: dict[str, list[str]] = defaultdict(list)
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            found[key.strip()].append(value.strip())
    return found


def runnable_copy(directory: Path, exec_start: Path, text: str | None = None) -> Path:
    """The unit with ExecStart pointing at a binary that exists here (verify checks it)."""
    text = UNIT.read_text() if text is None else text
    assert f"ExecStart={INSTALLED_EXEC} " in text
    copy = directory / "orchestrator.service"
    copy.write_text(text.replace(f"ExecStart={INSTALLED_EXEC} ", f"ExecStart={exec_start} "))
    return copy


def venv_binary() -> Path:
    binary = Path(sys.executable).parent / "orchestrator"
    assert binary.is_file(), f"{binary}: install this checkout in its virtual environment first"
    return binary


def exposure(unit: Path) -> float:
    result = subprocess.run(
        [systemd_analyze(), "security", "--offline=yes", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    match = re.search(r"Overall exposure level for orchestrator\.service: (\d+\.\d+)", result.stdout)
    assert match, result.stdout + result.stderr
    return float(match.group(1))


def verify(unit: Path) -> None:
    result = subprocess.run(
        [systemd_analyze(), "verify", str(unit)], capture_output=True, text=True, check=False, timeout=60
    )
    # Lines about other units come from the host's own unit files, not ours.
    ours = [line for line in (result.stdout + result.stderr).splitlines() if "orchestrator" in line]
    assert result.returncode == 0, result.stdout + result.stderr
    assert ours == []


def test_the_unit_has_what_the_service_needs():
    unit = directives(UNIT.read_text())
    assert unit["Type"] == ["notify"]
    assert unit["NotifyAccess"] == ["main"]
    assert unit["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert int(unit["WatchdogSec"][0]) > 0
    assert unit["Restart"] == ["on-failure"]
    assert "RestartPreventExitStatus" not in unit  # a failed reconciliation at boot deserves a retry
    assert int(unit["StartLimitBurst"][0]) > 0
    assert unit["User"] == unit["Group"] == ["orchestrator"]
    for directory in ("StateDirectory", "LogsDirectory", "ConfigurationDirectory"):
        assert unit[directory] == ["orchestrator"]
    assert unit["EnvironmentFile"] == ["-/etc/orchestrator/orchestrator.env"]
    assert unit["ProtectSystem"] == ["strict"]
    for flag in ("ProtectHome", "PrivateTmp", "PrivateDevices", "NoNewPrivileges"):
        assert unit[flag] == ["yes"]
    assert unit["CapabilityBoundingSet"] == [""]
    assert unit["RestrictAddressFamilies"] == ["AF_UNIX AF_INET AF_INET6"]
    assert unit["SystemCallFilter"][0] == "@system-service"
    # The daemon's own stop deadline must end before systemd's SIGKILL.
    from orchestrator.service.config import ShutdownConfig

    assert ShutdownConfig().timeout_s < int(unit["TimeoutStopSec"][0])


def test_systemd_analyze_verify_has_no_warnings(tmp_path: Path):
    verify(runnable_copy(tmp_path, venv_binary()))


def test_a_broken_unit_fails_verify(tmp_path: Path):
    broken = UNIT.read_text().replace("Restart=on-failure", "Restart=sometimes")
    with pytest.raises(AssertionError):
        verify(runnable_copy(tmp_path, venv_binary(), broken))


def test_exposure_is_at_most_2(tmp_path: Path):
    assert exposure(runnable_copy(tmp_path, venv_binary())) <= MAX_EXPOSURE


def test_without_the_hardening_the_exposure_is_high(tmp_path: Path):
    text = UNIT.read_text()
    bare = text[: text.index("# Hardening")] + text[text.index("[Install]") :]
    assert exposure(runnable_copy(tmp_path, venv_binary(), bare)) > MAX_EXPOSURE
