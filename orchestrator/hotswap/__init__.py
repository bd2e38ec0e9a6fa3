"""Hot swap: new module code and configuration enter service while trading.

- ``watcher``: watches every serving module's source files and the config file.
- ``manager``: ``ModuleManager``, the ``ModuleOperations`` every command
  channel calls; each change is planned, built and checked aside (off the
  event loop), then applied between two events.
- ``transition`` / ``candidate`` / ``apply``: the three steps of a change.
- ``config_reload``: which configuration changes apply live, which need a restart.
- ``control_socket`` / ``control_client``: the local command channel
  (a unix socket in the state directory) behind ``orchestrator reload``.

Kept free of imports so ``orchestrator.config.models`` can import the
section model from ``orchestrator.hotswap.config`` without a cycle.
"""
