"""ModuleContract.of: every kind of bad module is refused, with a message naming the problem."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, Field

from orchestrator import AnalysisModule, Bar, EventKind, FusionRequest, FusionResult, ModuleContext, ModuleParams
from orchestrator.errors import ContractError, ModuleLoadError
from orchestrator.plugins.contract import ModuleContract


class GoodParams(ModuleParams):
    window: int = Field(20, gt=1, description="bars in the lookback")
    scale: float = 1.5


class Good(AnalysisModule[GoodParams]):
    """Momentum over a window.

    Longer description that is not part of the summary.
    """

    name = "good"
    version = "2.1.0"
    consumes = frozenset({EventKind.BAR})
    depends_on = ("other",)
    Params = GoodParams
    latency_budget_us = 50.0

    def on_bar(self, bar: Bar, ctx: ModuleContext) -> None:
        return None


def variant(**attributes: Any) -> type[AnalysisModule[Any]]:
    """A subclass of ``Good`` with some contract attributes replaced (or removed with ``...``)."""
    namespace = {k: v for k, v in attributes.items() if v is not ...}
    cls = type("Variant", (Good,), namespace)
    for key, value in attributes.items():
        if value is ...:
            # Hide the inherited attribute: look-ups then find nothing on the class.
            setattr(cls, key, None)
    return cls


def refusal(module_cls: object) -> str:
    with pytest.raises(ContractError) as caught:
        ModuleContract.of(module_cls, label="mod")
    assert isinstance(caught.value, ModuleLoadError)
    assert caught.value.module == "mod"
    return caught.value.message


def test_a_good_module_has_its_contract_read() -> None:
    contract = ModuleContract.of(Good, label="good")
    assert contract.name == "good"
    assert contract.version == "2.1.0"
    assert contract.consumes == frozenset({EventKind.BAR})
    assert contract.depends_on == ("other",)
    assert contract.latency_budget_us == 50.0
    assert contract.provides_fusion is False
    assert contract.summary == "Momentum over a window."
    params = {p.name: p for p in contract.params()}
    assert params["window"].default == 20
    assert params["window"].type == "int"
    assert params["window"].description == "bars in the lookback"
    assert params["scale"].default == 1.5
    assert not params["window"].required


def test_summary_is_the_modules_own_docstring_never_the_base_class() -> None:
    class Undocumented(AnalysisModule[ModuleParams]):
        name = "undocumented"
        version = "1"
        consumes = frozenset({EventKind.BAR})

        def on_bar(self, bar: Bar, ctx: ModuleContext) -> None:
            return None

    assert ModuleContract.of(Undocumented, label="u").summary == ""


def test_not_an_analysis_module() -> None:
    class Plain:
        name = "plain"

    assert "not a subclass of orchestrator.AnalysisModule" in refusal(Plain)
    assert "not a subclass" in refusal(Good(GoodParams()))


@pytest.mark.parametrize("name", [..., "", "Bad-Name", "9lives", "CamelCase", 5])
def test_name_must_be_lower_snake_case(name: object) -> None:
    assert "name must be a lower_snake_case string" in refusal(variant(name=name))


@pytest.mark.parametrize("version", [..., "", "   ", 1])
def test_version_must_be_a_non_empty_string(version: object) -> None:
    assert "version must be a non-empty string" in refusal(variant(version=version))


@pytest.mark.parametrize(
    ("kind", "handler"),
    [(EventKind.BAR, "on_bar"), (EventKind.TRADE, "on_trade"), (EventKind.BOOK, "on_book")],
)
def test_consuming_a_kind_needs_its_handler(kind: EventKind, handler: str) -> None:
    class Missing(AnalysisModule[ModuleParams]):
        name = "missing"
        version = "1"
        consumes = frozenset({kind})

    assert f"consumes {kind.value} but defines no {handler}()" in refusal(Missing)


def test_consumes_must_be_a_set_of_event_kinds() -> None:
    assert "consumes must be a frozenset of EventKind" in refusal(variant(consumes=frozenset({"bar"})))
    assert "consumes must be a frozenset of EventKind" in refusal(variant(consumes=[EventKind.BAR]))


def test_a_module_that_would_never_run() -> None:
    assert "it would never run" in refusal(variant(consumes=frozenset()))


def test_a_fusion_only_module_needs_no_event_kind() -> None:
    class Fuser(AnalysisModule[ModuleParams]):
        name = "fuser"
        version = "1"
        consumes: frozenset[EventKind] = frozenset()

        def fuse(self, request: FusionRequest) -> FusionResult | None:
            return None

    assert ModuleContract.of(Fuser, label="fuser").provides_fusion


def test_depends_on_must_be_a_tuple_of_names() -> None:
    assert "depends_on must be a tuple" in refusal(variant(depends_on=["other"]))
    assert "depends_on must be a tuple" in refusal(variant(depends_on=(1,)))


def test_params_must_forbid_extra_keys() -> None:
    class Lenient(ModuleParams):
        model_config = ConfigDict(extra="allow")

    class Ignoring(ModuleParams):
        model_config = ConfigDict(extra="ignore")

    assert "Params must reject unknown keys" in refusal(variant(Params=Lenient))
    assert "Params must reject unknown keys" in refusal(variant(Params=Ignoring))


def test_params_must_derive_from_module_params() -> None:
    class Foreign(BaseModel):
        model_config = ConfigDict(extra="forbid")

    assert "Params must be a subclass of orchestrator.ModuleParams" in refusal(variant(Params=Foreign))
    assert "Params must be a subclass" in refusal(variant(Params=dict))


@pytest.mark.parametrize("budget", [0, 0.0, -1.0, "fast"])
def test_latency_budget_must_be_positive(budget: object) -> None:
    assert "latency_budget_us must be > 0" in refusal(variant(latency_budget_us=budget))


def test_a_hook_argument_not_in_the_spec_is_refused_by_pluggy_validation() -> None:
    class Misspelt(Good):
        def on_bar(self, bar: Bar, context: ModuleContext) -> None:  # the spec says ctx
            return None

    message = refusal(Misspelt)
    assert "on_bar" in message
    assert "context" in message
    assert "hookspec" in message
    assert "\n" not in message


def test_a_misspelt_marked_hook_is_refused_too() -> None:
    from orchestrator import hookimpl

    class Marked(Good):
        @hookimpl(tryfirst=True)
        def fuse(self, req: FusionRequest) -> FusionResult | None:
            return None

    assert "'req'" in refusal(Marked)


def test_every_problem_is_listed_at_once() -> None:
    class Hopeless(AnalysisModule[ModuleParams]):
        consumes = frozenset({EventKind.TRADE})
        latency_budget_us = -5

    message = refusal(Hopeless)
    for fragment in ("name must be", "version must be", "defines no on_trade()", "latency_budget_us must be > 0"):
        assert fragment in message


def test_checking_a_contract_runs_no_module_code() -> None:
    class Explosive(Good):
        def __init__(self, params: GoodParams) -> None:
            raise AssertionError("constructed during validation")

    assert ModuleContract.of(Explosive, label="explosive").name == "good"
