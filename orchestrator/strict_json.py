"""Strict JSON for command bodies (MQTT commands, control-socket requests).

Stricter than ``json.loads``: no repeated keys (which one would win is the
parser's choice, not the sender's), no NaN / Infinity / out-of-range numbers,
no lone surrogates (``"\\ud800"`` is no Unicode text), at most ``MAX_DEPTH``
levels of nesting (checked iteratively, so a deep value cannot exhaust the
stack later either).
"""

from __future__ import annotations

import json
import math
from typing import Any

from orchestrator.control import is_text

MAX_DEPTH = 32  # levels of nested objects and arrays in a body: far beyond any parameter value


class RepeatedKeys(dict[str, Any]):
    """A JSON object whose text named some key more than once."""

    repeated: tuple[str, ...] = ()


def decode_strict_json(payload: bytes) -> tuple[Any, list[str]]:
    """The JSON value of ``payload``, and why it is not strict JSON (empty if
    it is). Raises ``UnicodeDecodeError``, ``ValueError`` (not JSON) or
    ``RecursionError`` (nested beyond the parser's stack) when there is no
    value at all."""
    problems: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        obj: dict[str, Any] = {}
        repeated: list[str] = []
        for key, value in items:
            if key in obj and key not in repeated:
                repeated.append(key)
            obj[key] = value
        if not repeated:
            return obj
        problems.extend(f"key {key!r} appears more than once" for key in repeated)
        marked = RepeatedKeys(obj)
        marked.repeated = tuple(repeated)
        return marked

    def constant(name: str) -> None:
        problems.append(f"{name} is not a JSON number")

    def number(text: str) -> float | None:
        value = float(text)
        if math.isfinite(value):
            return value
        problems.append(f"number {text[:24]}{'…' if len(text) > 24 else ''} is beyond a float's range")
        return None

    raw = json.loads(payload.decode("utf-8"), object_pairs_hook=pairs, parse_constant=constant, parse_float=number)
    problems.extend(_shape_problems(raw))
    return raw, problems


def _shape_problems(raw: Any) -> list[str]:
    """Nesting beyond ``MAX_DEPTH`` and strings that are no Unicode text (a
    ``\\ud800`` escape decodes to a lone surrogate, which no UTF-8 writer,
    log, journal or broker accepts). Iterative: the value may be deep."""
    problems: list[str] = []
    stack: list[tuple[Any, int]] = [(raw, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if not is_text(item) and not problems:
                problems.append(f"string {_surrogate(item)} is no Unicode text (a lone surrogate)")
        elif isinstance(item, dict | list):
            if depth >= MAX_DEPTH:
                return [f"nested more than {MAX_DEPTH} levels deep"]
            children = [*item.keys(), *item.values()] if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return problems


def _surrogate(text: str) -> str:
    code = next(ord(c) for c in text if 0xD800 <= ord(c) <= 0xDFFF)
    return f"\\u{code:04x}"
