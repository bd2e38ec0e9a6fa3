"""The pluggy plugin manager of one bucket's pipeline."""

from __future__ import annotations

import inspect

import pluggy

from orchestrator.hookspecs import PROJECT_NAME, ModuleHooks

HOOK_NAMES: frozenset[str] = frozenset(
    name for name, value in vars(ModuleHooks).items() if inspect.isfunction(value) and not name.startswith("_")
)


class OrchestratorPluginManager(pluggy.PluginManager):
    """A ``PluginManager`` that treats any method named after a hook as its
    implementation, marked or not.

    Without this, a subclass overriding a marked base-class method silently
    drops out of the hook (pluggy reads the marker off the overriding
    function). Module authors would then have to remember a decorator that
    changes nothing else; pytest makes the same choice for ``pytest_*``.
    """

    def __init__(self) -> None:
        super().__init__(PROJECT_NAME)
        self.add_hookspecs(ModuleHooks)

    def parse_hookimpl_opts(self, plugin: object, name: str) -> pluggy.HookimplOpts | None:
        # ``register`` asks about every name in ``dir(plugin)``: a module has
        # dozens of dunders and no hook is one, so skip them unexamined.
        if name.startswith("__"):
            return None
        opts = super().parse_hookimpl_opts(plugin, name)
        if opts is not None or name not in HOOK_NAMES:
            return opts
        attr = inspect.getattr_static(plugin, name, None)
        if inspect.isfunction(attr):
            return pluggy.HookimplOpts(
                wrapper=False,
                hookwrapper=False,
                optionalhook=False,
                tryfirst=False,
                trylast=False,
                specname=None,
            )
        return None
