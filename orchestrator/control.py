"""The operations an operator may perform on a running daemon.

One place for every command channel (the local control socket, MQTT): each
channel parses and authenticates its own input, then calls these methods,
so a command means the same thing whichever way it arrives. Only modules
named in the local configuration can be touched; no path or code is ever
accepted from outside.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from orchestrator.risk.state import TradingState

if TYPE_CHECKING:
    from orchestrator.daemon import Daemon


@dataclass(frozen=True, slots=True)
class CommandResult:
    ok: bool
    message: str
    data: Mapping[str, Any] = field(default_factory=dict)


class ModuleOperations(Protocol):
    """Changes to the running module set (provided by the hot-swap machinery)."""

    async def enable(self, name: str) -> CommandResult: ...

    async def disable(self, name: str) -> CommandResult: ...

    async def reload(self, name: str | None) -> CommandResult: ...

    async def set_param(self, name: str, key: str, value: Any) -> CommandResult: ...

    async def reload_config(self) -> CommandResult: ...


class DaemonControl:
    """Commands against one daemon. Every method is safe to call twice."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.modules: ModuleOperations | None = None

    def status(self) -> CommandResult:
        return CommandResult(True, "status", status_payload(self.daemon))

    def pause(self, reason: str = "operator") -> CommandResult:
        engine = self.daemon.engine
        if engine.risk.state is TradingState.HALTED:
            return CommandResult(False, "halted: resume first, then pause")
        engine.set_trading_state(TradingState.PAUSED, reason=plain_text(reason))
        return CommandResult(True, "paused: no new orders")

    def resume(self, reason: str = "operator") -> CommandResult:
        self.daemon.engine.set_trading_state(TradingState.ACTIVE, reason=plain_text(reason))
        return CommandResult(True, "active")

    def reduce(self, reason: str = "operator") -> CommandResult:
        """REDUCING: only orders that shrink a position go out (a flip is cut at
        flat); decisions go on. Allowed from HALTED too: it is the way to work
        a halted book down without a moment of ACTIVE in between."""
        engine = self.daemon.engine
        previous = engine.risk.state
        engine.set_trading_state(TradingState.REDUCING, reason=plain_text(reason))
        was = f" (was {previous.value})" if previous is not TradingState.REDUCING else ""
        return CommandResult(True, f"reducing: only orders that shrink a position{was}", {"previous": previous.value})

    def halt(self, reason: str = "operator") -> CommandResult:
        engine = self.daemon.engine
        open_orders = engine.open_order_count
        engine.set_trading_state(TradingState.HALTED, reason=plain_text(reason))
        return CommandResult(True, f"halted: cancel sent for {open_orders} open order(s)", {"canceled": open_orders})

    async def module_enable(self, name: str) -> CommandResult:
        if self.modules is None:
            return no_module_operations()
        return await self.modules.enable(name)

    async def module_disable(self, name: str) -> CommandResult:
        if self.modules is None:
            return no_module_operations()
        return await self.modules.disable(name)

    async def module_reload(self, name: str | None = None) -> CommandResult:
        """``name``: swap in that module's current code. ``None``: re-read the
        config file, then swap in changed code; a configuration reload, so it
        runs on the reload path of ``reload_config``."""
        modules = self.modules
        if modules is None:
            return no_module_operations()
        if name is None:
            return await self.daemon.systemd.reload_config(lambda: modules.reload(None))
        return await modules.reload(name)

    async def set_param(self, name: str, key: str, value: Any) -> CommandResult:
        if self.modules is None:
            return no_module_operations()
        if not is_text(value):
            return CommandResult(False, f"set {name}.{key} refused: the value holds a string that is no Unicode text")
        return await self.modules.set_param(name, key, value)

    async def reload_config(self) -> CommandResult:
        """Re-read the config file: the one reload path of SIGHUP, the control
        socket and MQTT. The systemd service runs it under its reload lock,
        between RELOADING=1 and READY=1, and calls ``modules.reload_config``
        itself (never back into this method)."""
        if self.modules is None:
            return no_module_operations()
        return await self.daemon.systemd.reload_config()


def plain_text(reason: str) -> str:
    """``reason`` as Unicode text: a lone surrogate (``"\\ud800"`` from a JSON
    escape) becomes its escape sequence. It goes to the journal and the log,
    whose UTF-8 writers would refuse it (a journal batch would be lost); a
    state change is never refused over its reason: a halt must halt."""
    return reason if is_text(reason) else reason.encode("utf-8", "backslashreplace").decode("utf-8")


def is_text(value: Any) -> bool:
    """Whether every string in ``value`` (nested lists and dicts included)
    encodes as UTF-8. Iterative: the value may be deeply nested."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return False
        elif isinstance(item, Mapping):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return True


def no_module_operations() -> CommandResult:
    return CommandResult(False, "module operations are not available in this daemon")


def status_payload(daemon: Daemon) -> dict[str, Any]:
    """The daemon's state as plain JSON-ready data."""
    engine = daemon.engine
    counters = engine.counters
    portfolio = engine.portfolio.snapshot()
    p50, p99 = engine.order_latency_us()
    return {
        "instance": daemon.config.instance,
        "state": engine.risk.state.value,
        "uptime_s": round(time.time() - daemon.started_at, 1),
        "feed": daemon.feed.name,
        "symbols": list(engine.symbols),
        "equity": round(portfolio.equity, 2),
        "cash": round(portfolio.cash, 2),
        "realized_pnl": round(portfolio.realized_pnl, 2),
        "unrealized_pnl": round(sum(p.unrealized_pnl for p in portfolio.positions), 2),
        "fees": round(portfolio.fees, 2),
        "positions": {p.symbol: p.quantity for p in portfolio.positions},
        "open_orders": engine.open_order_count,
        "counters": {
            "events": counters.events,
            "decisions": counters.decisions,
            "orders": counters.intents,
            "denied": counters.denied,
            "fills": counters.fills,
        },
        # 0 is the counters' "not yet"; a consumer should not read it as 1970.
        "last_event_ts": counters.last_event_ts or None,
        "last_decision_ts": counters.last_decision_ts or None,
        "order_latency_us": (
            {"p50": round(p50, 1), "p99": round(p99, 1)} if counters.intents else {"p50": None, "p99": None}
        ),
    }
