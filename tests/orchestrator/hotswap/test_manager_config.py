"""Configuration reloads and operator commands through the manager: what
applies live, what waits for a restart, and what is refused."""

from __future__ import annotations

import pytest
from hotswap_support import counter_source, reader_source

from orchestrator.hotswap.report import ChangeKind, ModuleChange


@pytest.fixture
def two_module_rig(workspace, make_rig):
    workspace.write_module("counter", counter_source())
    workspace.write_module("tally", counter_source(module_name="tally"))
    workspace.write_config(workspace.base_config({"counter": {}, "tally": {"params": {"scale": 1.0}}}))
    return make_rig()


def edit(workspace, change) -> None:
    document = workspace.base_config({"counter": {}, "tally": {"params": {"scale": 1.0}}})
    change(document)
    workspace.write_config(document)


async def test_a_parameter_change_rebuilds_only_that_module_and_offers_its_state(workspace, two_module_rig):
    rig = two_module_rig
    rig.feed(300)
    counter, tally = rig.slot("counter"), rig.slot("tally")
    edit(workspace, lambda d: d["modules"]["tally"]["params"].update(scale=2.5))

    result = await rig.manager.reload_config()
    rig.feed(1)

    assert result.ok, result.message
    assert result.data["changes"] == ["rebuild tally 1.0.0"]
    assert rig.slot("counter") is counter
    assert rig.slot("tally") is not tally
    assert rig.slot("tally").params.scale == 2.5
    assert rig.feature("tally", "scale") == 2.5
    assert rig.slot("tally").instance.count == 301
    assert rig.slot("tally").loaded is tally.loaded  # same code: nothing reloaded


async def test_config_edits_disable_and_enable_a_module_keeping_its_state(workspace, two_module_rig):
    rig = two_module_rig
    rig.feed(200)
    edit(workspace, lambda d: d["modules"]["tally"].update(enabled=False))
    result = await rig.manager.reload_config()
    assert result.ok, result.message
    assert "tally" not in rig.engine.pipelines["default"].slots
    assert (workspace.state / "modules" / "default" / "tally.json").is_file()  # its state was saved
    rig.feed(100)

    edit(workspace, lambda d: None)
    result = await rig.manager.reload_config()
    rig.feed(1)
    assert result.ok, result.message
    assert rig.slot("tally").instance.count == 201  # resumed from the saved state
    assert rig.slot("counter").instance.count == 301


async def test_weights_fusion_and_decision_settings_apply_without_new_instances(workspace, two_module_rig):
    rig = two_module_rig
    counter, tally = rig.slot("counter"), rig.slot("tally")

    def change(document):
        document["modules"]["counter"]["weight"] = 0.25
        document["fusion"] = {"method": "precision", "weights": {"tally": 3.0}, "rank_window": 64}
        document["decision"] = {"min_change": 0.2}
        document["engine"] = {"isolate_after_errors": 9}

    edit(workspace, change)
    result = await rig.manager.reload_config()

    assert result.ok, result.message
    pipeline = rig.engine.pipelines["default"]
    assert rig.slot("counter") is counter
    assert rig.slot("tally") is tally
    assert counter.weight == 0.25
    assert pipeline.fusion_config.method == "precision"
    assert pipeline.builtin_fusion.rank.window == 64
    assert pipeline._weights[None] == {"counter": 0.25, "tally": 3.0}
    assert rig.engine.decision_config.min_change == 0.2
    assert pipeline.engine_config.isolate_after_errors == 9


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        pytest.param(lambda d: d.update(bogus=1), "bogus: unknown key", id="unknown-key"),
        pytest.param(lambda d: d["modules"]["tally"]["params"].update(scale="x"), "scale", id="bad-param"),
        pytest.param(lambda d: d["modules"].update(nowhere={}), "unknown module", id="unknown-module"),
        pytest.param(lambda d: d["modules"]["tally"].update(weight=-1), "weight", id="bad-weight"),
        pytest.param(lambda d: d["fusion"].update(method="vote"), "method", id="bad-fusion"),
    ],
)
async def test_an_invalid_config_changes_nothing_and_is_reported(workspace, two_module_rig, change, problem):
    rig = two_module_rig
    notices: list[ModuleChange] = []
    rig.manager.observers.append(notices.append)
    before = dict(rig.engine.pipelines["default"].slots)
    applied = rig.manager.loaded

    def change_with_fusion(document):
        document["fusion"] = {"method": "confidence"}
        document["modules"]["counter"]["params"] = {"scale": 9.0}  # a valid change riding along: not applied
        change(document)

    edit(workspace, change_with_fusion)
    result = await rig.manager.reload_config()

    assert not result.ok
    assert any(problem in line for line in result.data["problems"])
    assert dict(rig.engine.pipelines["default"].slots) == before
    assert rig.manager.loaded is applied
    assert rig.manager.describe()["config"]["problems"] == result.data["problems"]
    assert notices[-1].kind is ChangeKind.CONFIG_REJECTED

    edit(workspace, lambda d: d["modules"]["counter"].update(params={"scale": 9.0}))
    result = await rig.manager.reload_config()
    assert result.ok, result.message
    assert rig.slot("counter").params.scale == 9.0
    assert rig.manager.describe()["config"]["problems"] == []


async def test_changes_that_need_a_restart_are_reported_and_the_rest_applies(workspace, two_module_rig):
    rig = two_module_rig

    def change(document):
        document["instance"] = "renamed"
        document["feed"]["simulated"]["seed"] = 99
        document["risk"] = {"allocation": 0.5}
        document["modules"]["tally"]["params"]["scale"] = 4.0

    edit(workspace, change)
    result = await rig.manager.reload_config()

    assert result.ok, result.message
    waiting = result.data["restart_required"]
    assert [line.split(":")[0] for line in waiting] == ["instance", "feed", "risk"]
    assert "restart" in result.message
    assert rig.slot("tally").params.scale == 4.0
    applied = rig.manager.loaded.config
    assert applied.instance == "default"  # the running value is kept, not half-applied
    assert applied.feed.simulated.seed == 7
    assert rig.manager.describe()["config"]["restart_required"] == waiting


async def test_a_change_of_symbols_waits_for_a_restart(workspace, two_module_rig):
    rig = two_module_rig
    edit(workspace, lambda d: d.update(symbols=["BTC/USDT", "ETH/USDT", "SOL/USDT"]))
    result = await rig.manager.reload_config()
    assert result.ok, result.message
    assert result.data["restart_required"][0].startswith("symbols/buckets")
    assert rig.engine.symbols == ("BTC/USDT", "ETH/USDT")


async def test_set_param_is_validated_against_the_module_schema(workspace, two_module_rig):
    rig = two_module_rig
    rig.feed(50)
    tally = rig.slot("tally")

    assert not (await rig.manager.set_param("tally", "scale", "not a number")).ok
    unknown_key = await rig.manager.set_param("tally", "speed", 3)
    assert not unknown_key.ok
    assert "modules.tally.params.speed: unknown key" in unknown_key.message
    unknown_module = await rig.manager.set_param("nope", "scale", 1.0)
    assert not unknown_module.ok
    assert "unknown module 'nope'" in unknown_module.message
    assert rig.slot("tally") is tally

    result = await rig.manager.set_param("tally", "scale", "0.5")  # lax parsing, like the file
    rig.feed(1)
    assert result.ok, result.message
    assert rig.slot("tally").params.scale == 0.5
    assert rig.slot("tally").instance.count == 51
    assert (await rig.manager.set_param("tally", "scale", 0.5)).message.endswith("no change to the running modules")


async def test_operator_changes_last_until_the_file_is_reloaded(workspace, two_module_rig):
    rig = two_module_rig
    assert (await rig.manager.disable("tally")).ok
    assert "tally" not in rig.engine.pipelines["default"].slots
    assert rig.manager.describe()["disabled"] == ["tally"]
    assert (await rig.manager.set_param("counter", "scale", 3.0)).ok

    result = await rig.manager.reload_config()

    assert result.ok, result.message
    assert "operator changes replaced by the file: disable tally, set counter.scale=3.0" in result.message
    assert rig.slot("tally").instance is not None
    assert rig.slot("counter").params.scale == 1.0


async def test_disabling_a_module_others_depend_on_is_refused(workspace, make_rig):
    workspace.write_module("counter", counter_source())
    workspace.write_module("reader", reader_source())
    workspace.write_config(workspace.base_config({"counter": {}, "reader": {}}))
    rig = make_rig()
    result = await rig.manager.disable("counter")
    assert not result.ok
    assert "depends on 'counter', which is not enabled" in result.message
    assert set(rig.engine.pipelines["default"].slots) == {"counter", "reader"}
    assert (await rig.manager.disable("reader")).ok  # nothing depends on the reader
    assert set(rig.engine.pipelines["default"].slots) == {"counter"}
    assert (await rig.manager.enable("reader")).ok
    assert list(rig.engine.pipelines["default"].slots) == ["counter", "reader"]


async def test_a_parameter_shadowed_by_a_bucket_says_so(workspace, make_rig):
    workspace.write_module("counter", counter_source())
    document = workspace.base_config({"counter": {}})
    del document["symbols"]
    document["buckets"] = {
        "majors": {"symbols": ["BTC/USDT"], "params": {"counter": {"scale": 7.0}}},
        "alts": {"symbols": ["ETH/USDT"]},
    }
    workspace.write_config(document)
    rig = make_rig()
    result = await rig.manager.set_param("counter", "scale", 2.0)
    assert result.ok, result.message
    assert "majors override this parameter" in result.message
    assert rig.slot("counter", "majors").params.scale == 7.0
    assert rig.slot("counter", "alts").params.scale == 2.0
