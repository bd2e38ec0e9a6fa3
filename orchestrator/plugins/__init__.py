"""Finding, loading, validating and registering modules.

Built-in modules (files under ``modules/``), modules at an explicit path and
modules from the ``orchestrator.modules`` entry-point group all go through
the same loader: a file becomes a fresh module object under a unique name.
"""
