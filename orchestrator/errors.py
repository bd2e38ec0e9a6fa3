"""Exceptions, grouped by what an operator has to do about them.

- ``ConfigError``: fix the configuration; the daemon refuses to start (or,
  on a live reload, keeps the old configuration).
- ``ModuleLoadError``: fix the module's code; the module does not enter
  service (on a hot swap the previous version keeps serving).
- ``DataError``: fix the data file named in the message.
- Exchange errors (``orchestrator.execution.errors``) say whether to wait,
  retry, or give up on an order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def one_line(text: str) -> str:
    """``text`` with its line breaks (any that ``str.splitlines`` knows) turned into spaces."""
    lines = text.splitlines()
    if lines == [text]:
        return text
    return " ".join(line.strip() for line in lines if line.strip())


class OrchestratorError(Exception):
    """Base of every error the orchestrator raises on purpose."""


class ConfigError(OrchestratorError):
    """The configuration is invalid. ``problems`` holds one line per problem,
    each naming the file and the key path (``file: a.b.c: message``)."""

    def __init__(self, problems: Sequence[str], *, raw: Mapping[str, Any] | None = None) -> None:
        # One line each, whatever a message quoted (a module's exception text,
        # a key with a line break): the operator reads, and tools split, lines.
        self.problems = [one_line(problem) for problem in problems]
        self.raw = raw  # the parsed document, when the failure came after parsing
        super().__init__("\n".join(self.problems))


class ModuleLoadError(OrchestratorError):
    """A module could not be resolved, imported, validated or constructed."""

    def __init__(self, module: str, message: str, *, file: str | None = None, line: int | None = None) -> None:
        self.module = module
        self.file = file
        self.line = line
        self.message = message
        where = f" ({file}:{line})" if file and line else f" ({file})" if file else ""
        super().__init__(f"module {module!r}{where}: {message}")


class ContractError(ModuleLoadError):
    """A module's declared contract is incomplete or inconsistent."""


class DataError(OrchestratorError):
    """A market-data file is malformed. The message names the file and row."""
