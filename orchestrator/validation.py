"""Pydantic validation errors as one operator-readable line per problem."""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

_TEMPLATES: dict[str, str] = {
    "extra_forbidden": "unknown key",
    "missing": "required key is missing",
    "greater_than": "must be > {gt}",
    "greater_than_equal": "must be >= {ge}",
    "less_than": "must be < {lt}",
    "less_than_equal": "must be <= {le}",
    "int_parsing": "must be an integer",
    "int_type": "must be an integer",
    "int_from_float": "must be a whole number",
    "float_parsing": "must be a number",
    "float_type": "must be a number",
    "bool_parsing": "must be true or false",
    "bool_type": "must be true or false",
    "string_type": "must be a string",
    "list_type": "must be a list",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
    "too_short": "must have at least {min_length} item(s)",
    "string_too_short": "must have at least {min_length} character(s)",
    "literal_error": "must be one of {expected}",
    "enum": "must be one of {expected}",
    "finite_number": "must be a finite number",
    "path_type": "must be a path",
    "string_pattern_mismatch": "must match the pattern {pattern}",
    "too_long": "must have at most {max_length} item(s)",
    "string_too_long": "must have at most {max_length} character(s)",
    "multiple_of": "must be a multiple of {multiple_of}",
}


_KEY_PUNCTUATION = frozenset("_-/:@+")
_MAPPING_TYPES = frozenset({"dict_type", "model_type", "model_attributes_type"})


def render_key(key: object) -> str:
    """A mapping key as it appears in a key path: plain names as they are,
    anything else (spaces, dots, line breaks, an empty name) JSON-quoted, so
    a path stays one unambiguous line; YAML's null and booleans as in YAML."""
    if key is None:
        return "null"
    if isinstance(key, bool):
        return "true" if key else "false"
    text = str(key)
    if text and all(ch.isalnum() or ch in _KEY_PUNCTUATION for ch in text):
        return text
    return json.dumps(text)


class MappingKey:
    """A mapping key that ``key_path`` renders as a key even if it is an int (``{1: x}``)."""

    def __init__(self, key: object) -> None:
        self.key = key


def key_path(*parts: object) -> str:
    """``a.b[0].c`` from mapping keys (rendered with ``render_key``) and list indices (ints)."""
    out = ""
    for part in parts:
        if isinstance(part, int) and not isinstance(part, bool):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + render_key(part.key if isinstance(part, MappingKey) else part)
    return out


def _message(error: Any) -> str:
    template = _TEMPLATES.get(error["type"])
    if template is not None:
        try:
            return template.format(**error.get("ctx", {}))
        except (KeyError, IndexError):
            pass
    message = str(error["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    return message[:1].lower() + message[1:]


def _tags(expected: str) -> str:
    tags = expected.split(", ")
    return " or ".join([", ".join(tags[:-1]), tags[-1]]) if len(tags) > 1 else expected


def _problem(error: Any) -> tuple[tuple[Any, ...], str]:
    """The error's location (keys and indices) and its message."""
    # Pydantic names the union member or tagged variant it tried (e.g.
    # "function-after[...]"); operators only care about their own keys.
    loc = tuple(
        p for p in error["loc"] if not (isinstance(p, str) and p != "[key]" and ("[" in p or p.startswith("function-")))
    )
    kind = error["type"]
    if loc[-1:] == ("[key]",) or kind == "invalid_key":
        # The key itself is wrong (``1: x``, ``~: x``, a bad name): name it as written.
        where = (*loc[: -2 if loc[-1:] == ("[key]",) else -1], MappingKey(error.get("input")))
        if kind in ("string_type", "invalid_key"):
            return where, "key must be a string (put it in quotes)"
        return where, f"name {_message(error)}"
    ctx = error.get("ctx") or {}
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        field = str(ctx.get("discriminator", "")).strip("'")
        if field.isidentifier():
            if kind == "union_tag_not_found":
                return (*loc, field), "required key is missing"
            return (*loc, field), f"must be one of {_tags(str(ctx.get('expected_tags', '')))}"
    message = _message(error)
    if error.get("input", ...) is None and kind in _MAPPING_TYPES:
        message += ", not empty (null): write {} for the defaults, or remove the key"
    elif error.get("input", ...) is None and kind == "list_type":
        message += ", not empty (null)"
    return loc, message


def validation_problems(exc: ValidationError, *, prefix: str = "") -> list[tuple[str, str]]:
    """``(key path, message)`` per error, in pydantic's order, without repeats.
    Below a key that is itself wrong (``1:`` where a name is expected), only
    the key is reported: its value's problems would name the same place again."""
    errors = exc.errors()
    bad_keys = [error["loc"][:-1] for error in errors if error["loc"][-1:] == ("[key]",)]
    problems = []
    for error in errors:
        loc = error["loc"]
        if loc[-1:] != ("[key]",) and any(loc[: len(bad)] == bad for bad in bad_keys):
            continue
        where, message = _problem(error)
        path = ".".join(p for p in (prefix, key_path(*where)) if p).replace(".[", "[")
        problems.append((path or "(top level)", message))
    return list(dict.fromkeys(problems))


def format_validation_error(exc: ValidationError, *, prefix: str = "", file: str | None = None) -> list[str]:
    """``file: prefix.a.b: message`` lines, one per error, most useful first."""
    head = f"{file}: " if file else ""
    return [f"{head}{path}: {message}" for path, message in validation_problems(exc, prefix=prefix)]
