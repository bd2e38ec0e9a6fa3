"""Pydantic validation errors as one operator-readable line per problem."""

from __future__ import annotations

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


def _location(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts)


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


def format_validation_error(exc: ValidationError, *, prefix: str = "", file: str | None = None) -> list[str]:
    """``file: prefix.a.b: message`` lines, one per error, most useful first."""
    lines = []
    for error in exc.errors():
        # Pydantic names the union member or tagged variant it tried (e.g.
        # "function-after[...]"); operators only care about their own keys.
        loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and ("[" in p or p.startswith("function-"))))
        path = _location(loc)
        full = ".".join(p for p in (prefix, path) if p).replace(".[", "[")
        head = f"{file}: " if file else ""
        lines.append(f"{head}{full or '(top level)'}: {_message(error)}")
    return list(dict.fromkeys(lines))
