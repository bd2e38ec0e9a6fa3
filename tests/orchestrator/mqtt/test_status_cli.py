"""``orchestrator status`` as an operator runs it, against a real broker."""

from __future__ import annotations

import asyncio
import json
import os
import sys

PREFIX = "orchestrator/t1"


async def status_cli(*args: str, cwd) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR")}
    env["COLUMNS"] = "160"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "orchestrator", "status", *args,
        cwd=cwd, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


async def test_status_prints_the_retained_status_and_module_table(mosquitto, kit, tmp_path):
    config = kit.config(kit.mqtt(mosquitto), speed=20.0)  # a quiet market: the CLI shares the two cores
    async with kit.run(config) as daemon:
        await kit.service(daemon).connected.wait()
        await asyncio.sleep(0.3)
        code, out, err = await status_cli("-c", str(config), cwd=tmp_path)
        code_json, out_json, _ = await status_cli("--url", mosquitto.url, "--prefix", PREFIX, "--json", cwd=tmp_path)
    assert code == 0, err
    assert "ACTIVE" in out
    assert "online" in out
    assert "ma_crossover" in out
    assert "BTC/USDT" in out
    assert code_json == 0
    data = json.loads(out_json)
    assert data["online"] == "online"
    assert data["status"]["instance"] == "t1"
    assert data["modules"]["ma_crossover"]["state"] == "active"


async def test_status_after_a_clean_stop_says_offline_and_fails(mosquitto, kit, tmp_path):
    config = kit.config(kit.mqtt(mosquitto))
    async with kit.run(config):
        pass
    code, out, err = await status_cli("-c", str(config), cwd=tmp_path)
    assert code == 1
    assert "offline" in out
    assert "offline" in err


async def test_status_with_nothing_retained_fails_clearly(mosquitto, tmp_path):
    code, _, err = await status_cli("--url", mosquitto.url, "--wait", "0.5", cwd=tmp_path)
    assert code == 1
    assert "nothing retained under orchestrator/default/" in err


async def test_status_with_an_unreachable_broker_fails_clearly(kit, tmp_path):
    port = kit.free_port()
    code, _, err = await status_cli("--url", f"mqtt://127.0.0.1:{port}", cwd=tmp_path)
    assert code == 3
    assert f"cannot reach the MQTT broker at mqtt://127.0.0.1:{port}" in err


async def test_status_refuses_a_bad_url(tmp_path):
    code, _, err = await status_cli("--url", "http://example", cwd=tmp_path)
    assert code == 2
    assert "mqtt:// or mqtts://" in err


async def test_status_needs_a_broker_from_the_profile_or_the_command_line(kit, tmp_path):
    config = kit.config(None)
    code, _, err = await status_cli("-c", str(config), cwd=tmp_path)
    assert code == 2
    assert "no 'mqtt' section: pass --url" in err
