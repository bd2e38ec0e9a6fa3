"""A daemon killed with SIGKILL leaves a retained ``offline``: the broker's last will."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

PREFIX = "orchestrator/t1"


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR")}


async def test_sigkill_leaves_the_last_will_offline_retained(mosquitto, kit, subscribe, tmp_path):
    config = kit.config(kit.mqtt(mosquitto, keepalive_s=1))
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "orchestrator", "run", "-c", str(config),
        cwd=tmp_path, env=clean_env(), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        async with subscribe(mosquitto.port, f"{PREFIX}/online", f"{PREFIX}/status") as watcher:
            await watcher.wait_for(lambda m: m.topic == f"{PREFIX}/online" and m.payload == b"online")
            await watcher.wait_for(lambda m: m.topic == f"{PREFIX}/status")
            process.send_signal(signal.SIGKILL)
            await process.wait()
            # The broker notices after 1.5 keepalives without a packet, then publishes the will.
            will = await watcher.wait_for(lambda m: m.topic == f"{PREFIX}/online" and m.payload == b"offline")
        assert not will.retain  # delivered live; the broker also retains it:
        async with subscribe(mosquitto.port, f"{PREFIX}/online") as later:
            kept = await later.wait_for(lambda m: m.topic == f"{PREFIX}/online")
        assert kept.retain
        assert kept.payload == b"offline"
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == -signal.SIGKILL


async def test_sigterm_publishes_offline_itself_and_exits_zero(mosquitto, kit, subscribe, tmp_path):
    # keepalive 60: a will would take 90 s, so an offline within the test's wait is the daemon's own.
    config = kit.config(kit.mqtt(mosquitto, keepalive_s=60), log_level="info")
    log = tmp_path / "daemon.log"
    with log.open("wb") as stderr:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "orchestrator", "run", "-c", str(config),
            cwd=tmp_path, env=clean_env(), stdout=asyncio.subprocess.DEVNULL, stderr=stderr,
        )  # fmt: skip
    try:
        async with subscribe(mosquitto.port, f"{PREFIX}/online") as watcher:
            await watcher.wait_for(lambda m: m.payload == b"online")
            process.send_signal(signal.SIGTERM)
            try:
                await watcher.wait_for(lambda m: m.payload == b"offline")
            except AssertionError as exc:
                tail = "\n".join(line for line in log.read_text().splitlines() if "mqtt" in line or "stop" in line)
                raise AssertionError(f"{exc}; daemon log:\n{tail[-3000:]}") from None
            await asyncio.wait_for(process.wait(), kit.timeout)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0
    assert "mqtt_offline_published" in log.read_text()
