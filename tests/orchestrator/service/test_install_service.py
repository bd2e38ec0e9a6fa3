"""scripts/install-service: a dry run changes nothing and shows every step; a run into a
prefix builds a real virtual environment, creates config and secrets once, keeps an
operator's edits on the next run, and installs a unit that passes `systemd-analyze verify`."""

from __future__ import annotations

import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "scripts" / "install-service"


def install(*args: str, script: Path = SCRIPT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(script), *args], capture_output=True, text=True, check=False, timeout=600, cwd="/")


def private_checkout(directory: Path) -> Path:
    """A copy of the checkout, so the in-tree build pip runs cannot race another one."""
    skip = shutil.ignore_patterns(".git", ".venv", "tests", "build", "*.egg-info", "__pycache__", ".*_cache")
    shutil.copytree(ROOT, directory, ignore=skip)
    return directory


def unit_directory_modes(text: str) -> dict[str, int]:
    """``{"State": 0o700, ...}`` from the unit's ``*DirectoryMode=`` lines."""
    found = re.findall(r"^(\w+)DirectoryMode=(\d+)$", text, flags=re.MULTILINE)
    return {kind: int(mode, 8) for kind, mode in found}


def test_a_dry_run_shows_the_steps_and_changes_nothing():
    watched = [Path("/opt/orchestrator"), Path("/etc/orchestrator"), Path("/etc/systemd/system/orchestrator.service")]
    before = [path.exists() for path in watched]
    result = install("--dry-run")
    assert result.returncode == 0, result.stderr
    assert [path.exists() for path in watched] == before
    commands = [line[2:] for line in result.stdout.splitlines() if line.startswith("+ ")]
    user_exists = subprocess.run(["getent", "passwd", "orchestrator"], capture_output=True, check=False).returncode == 0
    assert any(c.startswith("useradd --system --user-group") for c in commands) is not user_exists
    assert any(c.startswith("/opt/orchestrator/venv/bin/pip install") and c.endswith(str(ROOT)) for c in commands)
    assert f"install -m 0644 {ROOT}/config/systemd/orchestrator.service /etc/systemd/system/orchestrator.service" in (
        commands
    )
    for directory in ("/var/lib/orchestrator", "/var/log/orchestrator"):
        assert f"install -d -m 0700 -o orchestrator -g orchestrator {directory}" in commands
    assert commands[-1] == "systemctl daemon-reload"
    assert "systemctl enable --now orchestrator" in result.stdout  # told, never done


def test_bad_arguments_are_refused():
    result = install("--frobnicate")
    assert result.returncode == 1
    assert "unknown argument: --frobnicate" in result.stderr
    result = install("--prefix")
    assert result.returncode == 1
    assert "--prefix needs a directory" in result.stderr


@pytest.mark.slow
def test_an_install_into_a_prefix_is_complete_and_idempotent(tmp_path: Path):
    prefix = tmp_path / "root"
    source = private_checkout(tmp_path / "checkout")
    script = source / "scripts" / "install-service"
    # --no-deps: the dependencies are the test environment's business; the
    # checkout itself is really built and installed into a new venv.
    first = install("--prefix", str(prefix), "--pip-args", "--no-deps", script=script)
    assert first.returncode == 0, first.stderr
    binary = prefix / "opt/orchestrator/venv/bin/orchestrator"
    assert binary.is_file()
    config = prefix / "etc/orchestrator/config.yaml"
    secrets = prefix / "etc/orchestrator/orchestrator.env"
    unit = prefix / "etc/systemd/system/orchestrator.service"
    default = (source / "config/default.yaml").read_text()
    assert config.read_text() == default.replace("\nstate_dir: state\n", "\nstate_dir: /var/lib/orchestrator\n")
    assert "state_dir: /var/lib/orchestrator\n" in config.read_text()
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o600
    assert stat.S_IMODE(config.stat().st_mode) == 0o640
    assert unit.read_text() == (ROOT / "config/systemd/orchestrator.service").read_text()
    # The directories have the modes the unit declares: systemd leaves an
    # existing configuration directory alone and warns at every start if they differ.
    modes = unit_directory_modes(unit.read_text())
    assert modes == {"Configuration": 0o750, "State": 0o700, "Logs": 0o700}
    for kind, directory in (
        ("Configuration", "etc/orchestrator"),
        ("State", "var/lib/orchestrator"),
        ("Logs", "var/log/orchestrator"),
    ):
        assert stat.S_IMODE((prefix / directory).stat().st_mode) == modes[kind], directory

    config.write_text(config.read_text() + "# operator's edit\n")
    secrets.write_text("BINANCE_API_KEY=abc\n")
    second = install("--prefix", str(prefix), "--pip-args", "--no-deps", script=script)
    assert second.returncode == 0, second.stderr
    assert config.read_text().endswith("# operator's edit\n")
    assert secrets.read_text() == "BINANCE_API_KEY=abc\n"
    assert f"kept {config}" in second.stdout
    assert "upgrading the code" in second.stdout
    assert (prefix / "var/lib/orchestrator").is_dir()

    if shutil.which("systemd-analyze") is None:
        pytest.fail("systemd-analyze is missing: install the Debian package 'systemd' (scripts/run-tests does)")
    runnable = tmp_path / "orchestrator.service"
    runnable.write_text(unit.read_text().replace("/opt/orchestrator/venv/bin/orchestrator ", f"{binary} "))
    verified = subprocess.run(
        ["systemd-analyze", "verify", str(runnable)], capture_output=True, text=True, check=False, timeout=60
    )
    assert verified.returncode == 0, verified.stderr
    assert "orchestrator" not in verified.stdout + verified.stderr
