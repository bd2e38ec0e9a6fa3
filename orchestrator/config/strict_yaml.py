"""YAML as configuration needs it: safe, unambiguous, bounded.

A ``SafeLoader`` (no Python objects, ever) that also refuses what would
otherwise pass silently or crash the reader:

- a key given twice in one mapping (YAML would keep the last one);
- a list or mapping used as a key;
- a tag other than the plain YAML types (``!!python/object`` and friends);
- an alias inside the node it refers to (a structure containing itself);
- nesting deeper than ``MAX_DEPTH`` levels, and documents that expand
  through aliases to more than ``MAX_VALUES`` values ("billion laughs").

Anchors, aliases and merge keys (``<<: *defaults``) work as in YAML 1.1.
Every problem is a ``YAMLProblem``: one line, with the line and column.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.events import AliasEvent, StreamEndEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

MAX_DEPTH = 64
MAX_VALUES = 100_000
_MERGE_TAG = "tag:yaml.org,2002:merge"
_CORE_PREFIX = "tag:yaml.org,2002:"


class YAMLProblem(Exception):
    """Text that is not an acceptable YAML document; ``str()`` is one line."""

    def __init__(self, message: str, *, refused: bool) -> None:
        super().__init__(message)
        self.message = message
        # True: valid YAML syntax that this loader refuses (duplicate key, tag,
        # recursion, size); False: not YAML at all.
        self.refused = refused


class _Refused(yaml.MarkedYAMLError):
    """Raised inside the loader; turned into a ``YAMLProblem`` by ``load``."""

    def __init__(self, problem: str, mark: yaml.Mark | None) -> None:
        super().__init__(problem=problem, problem_mark=mark)


def _short_tag(tag: str | None) -> str:
    tag = tag or "?"
    return "!!" + tag[len(_CORE_PREFIX) :] if tag.startswith(_CORE_PREFIX) else tag


class StrictLoader(yaml.SafeLoader):
    """See the module docstring."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._open_anchors: set[str] = set()
        self._depth = 0

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        if self.check_event(AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            if event.anchor in self._open_anchors:
                raise _Refused(
                    f"alias *{event.anchor} is inside the node it refers to (a structure that contains itself)",
                    event.start_mark,
                )
            return super().compose_node(parent, index)
        event = self.peek_event()  # type: ignore[no-untyped-call]
        anchor = event.anchor
        if anchor is not None and anchor in self.anchors:
            first = self.anchors[anchor].start_mark.line + 1
            raise _Refused(f"anchor &{anchor} is defined twice (first on line {first})", event.start_mark)
        if self._depth >= MAX_DEPTH:
            raise _Refused(f"nested more than {MAX_DEPTH} levels deep", event.start_mark)
        self._depth += 1
        if anchor is not None:
            self._open_anchors.add(anchor)
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1
            if anchor is not None:
                self._open_anchors.discard(anchor)

    def compose_mapping_node(self, anchor: Any) -> MappingNode:
        node = super().compose_mapping_node(anchor)
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                continue  # ``<<: *defaults``: the merged keys may be overridden here
            if not isinstance(key_node, ScalarNode):
                kind = "list" if isinstance(key_node, SequenceNode) else "mapping"
                raise _Refused(f"a key must be a plain value, not a {kind}", key_node.start_mark)
            key = self.construct_object(key_node)
            if key in seen:
                raise _Refused(f"duplicate key {key!r} (first on line {seen[key] + 1})", key_node.start_mark)
            seen[key] = key_node.start_mark.line
        return node

    def get_single_node(self) -> Node | None:
        self.get_event()  # type: ignore[no-untyped-call]  # STREAM-START
        document: Node | None = None
        if not self.check_event(StreamEndEvent):
            document = self.compose_document()
        if not self.check_event(StreamEndEvent):
            event = self.get_event()  # type: ignore[no-untyped-call]
            raise _Refused("a second document ('---') in one file: a configuration is one document", event.start_mark)
        self.get_event()  # type: ignore[no-untyped-call]  # STREAM-END
        if document is not None:
            _check_expanded_size(document)
        return document


def _refuse_tag(loader: StrictLoader, node: Node) -> Any:
    raise _Refused(
        f"tag {_short_tag(node.tag)} is not allowed: only plain YAML values (mappings, lists, strings, numbers,"
        " booleans, null, dates)",
        node.start_mark,
    )


StrictLoader.add_constructor(None, _refuse_tag)


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _check_expanded_size(root: Node) -> None:
    """Depth and number of values once every alias is expanded, computed once
    per node (so a document built to explode is measured, not expanded)."""
    measured: dict[int, tuple[int, int]] = {}  # id(node) -> (values, depth)
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in measured:
            continue
        children = _children(node)
        if not children_done:
            stack.append((node, True))
            stack.extend((child, False) for child in children if id(child) not in measured)
            continue
        values = 1 + sum(measured[id(child)][0] for child in children)
        depth = 1 + max((measured[id(child)][1] for child in children), default=0)
        if depth > MAX_DEPTH:
            raise _Refused(f"nested more than {MAX_DEPTH} levels deep once aliases are expanded", node.start_mark)
        if values > MAX_VALUES:
            raise _Refused(f"expands to more than {MAX_VALUES:,} values through aliases", node.start_mark)
        measured[id(node)] = (values, depth)


def _where(mark: yaml.Mark | None) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""


def _marked_message(exc: yaml.MarkedYAMLError) -> str:
    problem = exc.problem or exc.context or "invalid YAML"
    mark = exc.problem_mark or exc.context_mark
    message = f"{_where(mark)}{problem}"
    context, start = exc.context, exc.context_mark
    if exc.problem and context and start is not None and mark is not None and start.line != mark.line:
        message += f" ({context} started on line {start.line + 1}, column {start.column + 1})"
    return message


def _reader_message(exc: yaml.reader.ReaderError, text: str) -> str:
    before = text[: exc.position]
    line = before.count("\n") + 1
    column = exc.position - (before.rfind("\n") + 1) + 1
    character = exc.character if isinstance(exc.character, str) else chr(exc.character)
    return f"line {line}, column {column}: character {ord(character):#06x} is not allowed in YAML (a control character)"


def load(text: str) -> Any:
    """The one document in ``text`` (None if empty); raises ``YAMLProblem``."""
    try:
        return yaml.load(text, Loader=StrictLoader)  # StrictLoader is a SafeLoader
    except _Refused as exc:
        raise YAMLProblem(_marked_message(exc), refused=True) from None
    except yaml.MarkedYAMLError as exc:
        raise YAMLProblem(_marked_message(exc), refused=False) from None
    except yaml.reader.ReaderError as exc:
        raise YAMLProblem(_reader_message(exc, text), refused=False) from None
    except yaml.YAMLError as exc:
        raise YAMLProblem("invalid YAML: " + " ".join(str(exc).split()), refused=False) from None
    except RecursionError:  # the limits above should make this unreachable
        raise YAMLProblem(f"nested more than {MAX_DEPTH} levels deep", refused=True) from None
