"""The module contract: every hook a module may implement, in one place.

A module is a class deriving from ``orchestrator.AnalysisModule`` that

* declares its contract as class attributes (``name``, ``version``,
  ``consumes``, ``depends_on``, ``Params``, ``latency_budget_us``), and
* implements some of the hooks below as ordinary methods.

Methods whose names match a hook are picked up without a marker (as pytest
does for ``pytest_*`` functions); ``@hookimpl(tryfirst=True)`` and friends are
only needed to pass pluggy options. Arguments are checked against these
specs when the module registers, so a misspelt argument fails at load time,
never mid-trading.

The core calls each module's hooks one module at a time, in dependency
order, and contains their failures: a module that raises or overruns its
latency budget is counted, then isolated; the other modules go on. Hooks are
synchronous and run on the event path: do O(1) (or O(book depth)) work per
event and never block. Module files import only from ``orchestrator``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from orchestrator.contract import ModuleContext, ModuleState
    from orchestrator.events import Bar, BookUpdate, MarketEvent, Trade
    from orchestrator.fusion.request import FusionRequest
    from orchestrator.signals import FusionResult, ModuleOutput

PROJECT_NAME = "orchestrator"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


class ModuleHooks:
    """Hook specifications of an analysis module (project ``orchestrator``)."""

    @hookspec
    def on_start(self, ctx: ModuleContext) -> None:
        """Called once before the first event, with the module's context.

        Keep a reference to ``ctx`` if you need it outside event hooks.
        """

    @hookspec
    def on_bar(self, bar: Bar, ctx: ModuleContext) -> ModuleOutput | None:
        """A bar closed for ``bar.symbol``. Return this symbol's output, or
        ``None`` when nothing changed (e.g. still warming up)."""

    @hookspec
    def on_trade(self, trade: Trade, ctx: ModuleContext) -> ModuleOutput | None:
        """A public trade printed for ``trade.symbol``."""

    @hookspec
    def on_book(self, book: BookUpdate, ctx: ModuleContext) -> ModuleOutput | None:
        """A new level-2 book snapshot for ``book.symbol``."""

    @hookspec
    def on_stop(self) -> None:
        """Called once when the module leaves service (shutdown, swap, disable)."""

    @hookspec
    def export_state(self) -> ModuleState | None:
        """Return the state a successor needs (warmed-up windows, weights),
        JSON-serialisable, or ``None`` when there is nothing worth keeping."""

    @hookspec
    def import_state(self, state: ModuleState) -> bool:
        """Adopt a predecessor's exported state. Return ``False`` to reject it
        (e.g. an incompatible ``state_version``); the module then starts cold."""
        raise NotImplementedError

    @hookspec
    def self_check(self, sample: Sequence[MarketEvent]) -> list[str]:
        """Run on a throw-away instance before the module enters service, with
        a short recorded sample. Return the problems found (empty: healthy)."""
        raise NotImplementedError

    @hookspec(firstresult=True)
    def fuse(self, request: FusionRequest) -> FusionResult | None:
        """Combine the modules' latest predictions for one symbol into one
        target exposure. Return ``None`` to let the next provider (in the end
        the configured built-in method) decide."""
