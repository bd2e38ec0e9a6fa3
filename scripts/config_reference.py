#!/usr/bin/env python3
"""Render the configuration reference (every key, type, default, meaning)
from the pydantic models into README.md, between the markers
``<!-- config-reference -->`` and ``<!-- /config-reference -->``.

    python scripts/config_reference.py          # rewrite README.md
    python scripts/config_reference.py --check  # exit 1 if README.md is stale

The models are the single source of truth; a test runs ``--check`` so the
README cannot drift from them.
"""

from __future__ import annotations

import argparse
import json
import sys
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from orchestrator.config.models import OrchestratorConfig

README = Path(__file__).resolve().parents[1] / "README.md"
START = "<!-- config-reference -->"
END = "<!-- /config-reference -->"


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """Pydantic models an annotation holds directly or as a dict value / optional."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:  # e.g. a discriminated union
        return _models_in(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]
    return []


def _dict_value_models(annotation: Any) -> list[type[BaseModel]]:
    """The models a mapping's values may be (several for a discriminated union)."""
    if typing.get_origin(annotation) is dict:
        args = typing.get_args(annotation)
        return _models_in(args[1]) if len(args) == 2 else []
    for arg in typing.get_args(annotation):
        models = _dict_value_models(arg)
        if models:
            return models
    return []


def _variant(model: type[BaseModel]) -> str:
    """How a union member is told apart: its ``kind`` literal, else its class name."""
    kind = model.model_fields.get("kind")
    return str(kind.default) if kind is not None and isinstance(kind.default, str) else model.__name__


def _type_name(annotation: Any) -> str:
    """A short, readable type: ``debug / info``, ``int or null``, ``map of str to float``."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is type(None):
        return "null"
    if origin is typing.Literal:
        return " / ".join(str(a) for a in args)
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in args)
    if origin is dict:
        return f"map of {_type_name(args[0])} to {_type_name(args[1])}"
    if origin is list:
        return f"list of {_type_name(args[0])}"
    if isinstance(annotation, type):
        return {"str": "string", "Path": "path", "Any": "any"}.get(annotation.__name__, annotation.__name__)
    return str(annotation).replace("typing.", "")


def _default_value(field: FieldInfo) -> Any:
    if field.default is PydanticUndefined:
        if field.default_factory is None:
            return PydanticUndefined
        return field.default_factory()  # type: ignore[call-arg]
    return field.default


def _default(value: Any) -> str:
    if value is PydanticUndefined:
        return "*required*"
    if isinstance(value, BaseModel):
        return ""
    try:
        text = json.dumps(value, default=str)
    except TypeError:
        text = str(value)
    return f"`{text}`" if len(text) <= 40 else f"`{text[:37]}...`"


def _first_sentence(doc: str | None) -> str:
    """A model docstring's first sentence on one line (docstrings wrap
    mid-sentence, so the first line alone can stop half-way)."""
    text = " ".join((doc or "").split())
    end = text.find(". ")
    return text if end < 0 else text[: end + 1]


def _cell(text: str) -> str:
    """Docstring text as a table cell: RST ``code`` as Markdown `code`, no column breaks."""
    return text.replace("``", "`").replace("|", "/")


def rows(
    model: type[BaseModel], prefix: str = "", defaults: BaseModel | None = None
) -> list[tuple[str, str, str, str]]:
    """One row per key. ``defaults`` is the section's own default instance:
    a section built by a factory (``StreamLimitConfig(burst=50)``) documents
    the values it really starts with, not its class's field defaults."""
    out: list[tuple[str, str, str, str]] = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        annotation = field.annotation
        nested = _models_in(annotation)
        values = _dict_value_models(annotation)
        description = field.description or (_first_sentence(nested[0].__doc__) if nested else "")
        value = getattr(defaults, name) if defaults is not None else _default_value(field)
        if nested and not values:
            out.append((key, "section", "", description))
            out.extend(rows(nested[0], key + ".", value if isinstance(value, BaseModel) else None))
        elif len(values) == 1:
            out.append((key, f"mapping of {values[0].__name__}", _default(value), description))
            out.extend(rows(values[0], key + ".<name>."))
        elif values:
            out.append((key, _type_name(annotation), _default(value), description))
            for member in values:
                variant = f"{key}.<{_variant(member)} name>"
                summary = " ".join(filter(None, [f"kind: {_variant(member)}.", _first_sentence(member.__doc__)]))
                out.append((variant, "section", "", summary))
                out.extend(rows(member, variant + "."))
        else:
            out.append((key, _type_name(annotation), _default(value), description))
    return out


def render() -> str:
    lines = [START, "", "| key | type | default | meaning |", "| --- | --- | --- | --- |"]
    for key, kind, default, description in rows(OrchestratorConfig):
        lines.append(f"| `{key}` | {kind} | {default} | {_cell(description)} |")
    lines += ["", END]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only check that README.md is current")
    args = parser.parse_args(argv)
    text = README.read_text(encoding="utf-8")
    if START not in text:
        print(f"{README}: no {START} marker", file=sys.stderr)
        return 1
    head, rest = text.split(START, 1)
    tail = rest.split(END, 1)[1] if END in rest else rest
    updated = head + render() + tail
    if args.check:
        if updated != text:
            print("README.md's configuration reference is stale: run scripts/config_reference.py", file=sys.stderr)
            return 1
        return 0
    README.write_text(updated, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
