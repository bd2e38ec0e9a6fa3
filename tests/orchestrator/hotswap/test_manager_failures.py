"""Failures at the last moment or beyond the time limit: the old version
keeps serving and the manager stays usable."""

from __future__ import annotations

import time

from hotswap_support import counter_source


async def test_a_new_version_refusing_state_at_the_swap_puts_the_old_one_back(workspace, make_rig):
    workspace.write_module("counter", counter_source())
    workspace.write_config(workspace.base_config({"counter": {}}))
    rig = make_rig()
    rig.feed(100)
    old = rig.slot("counter")
    broken = counter_source("2.0.0").replace(
        'self.count = int(state.data["count"])', 'raise RuntimeError("cannot read this state")'
    )
    workspace.write_module("counter", broken)

    result = await rig.manager.reload("counter")
    rig.feed(100)

    assert not result.ok
    assert "cannot read this state" in result.message
    assert rig.slot("counter") is old
    assert old.instance.count == 200  # stopped and restarted around the attempt, nothing lost
    assert old.reload_error is not None
    assert old.reload_error.startswith("swap refused: RuntimeError: cannot read this state")
    assert "swapped" not in result.message


async def test_a_check_that_never_ends_is_given_up_and_the_manager_goes_on(workspace, make_rig):
    workspace.write_module("counter", counter_source())
    document = workspace.base_config({"counter": {}}, hot_swap={"check_timeout_s": 0.3})
    workspace.write_config(document)
    rig = make_rig()
    old = rig.slot("counter")
    workspace.write_module("counter", counter_source("2.0.0", top="import time", self_check="time.sleep(1.5)"))

    started = time.monotonic()
    result = await rig.manager.reload("counter")

    assert not result.ok
    assert "did not finish in time" in result.message
    assert time.monotonic() - started < 1.4  # did not wait for the stuck check
    assert rig.slot("counter") is old
    assert "did not finish in time" in (old.reload_error or "")

    workspace.write_module("counter", counter_source("3.0.0"))
    assert (await rig.manager.reload("counter")).ok  # the lock was released
    assert rig.slot("counter").loaded.contract.version == "3.0.0"
