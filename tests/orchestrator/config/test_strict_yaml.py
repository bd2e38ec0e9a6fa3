"""The YAML reader: safe loading, no silent ambiguity, bounded work, and every
problem one line with its position."""

from __future__ import annotations

from datetime import date

import pytest

from orchestrator.config import strict_yaml
from orchestrator.config.strict_yaml import MAX_DEPTH, MAX_VALUES, YAMLProblem


def problem_of(text: str) -> YAMLProblem:
    with pytest.raises(YAMLProblem) as caught:
        strict_yaml.load(text)
    assert "\n" not in caught.value.message
    assert str(caught.value) == caught.value.message
    return caught.value


# --------------------------------------------------------------- what is accepted


def test_plain_yaml_loads_as_usual() -> None:
    assert strict_yaml.load("") is None
    assert strict_yaml.load("# only a comment\n") is None
    assert strict_yaml.load("a: 1\nb: [x, 2.5, true, null]\nc: 2025-01-02\n") == {
        "a": 1,
        "b": ["x", 2.5, True, None],
        "c": date(2025, 1, 2),
    }
    assert strict_yaml.load("\ufeffa: 1\n") == {"a": 1}, "a UTF-8 byte order mark is fine"
    assert strict_yaml.load("a: 1\n...\n") == {"a": 1}, "an explicit end of document is fine"


def test_anchors_and_aliases_share_a_value() -> None:
    loaded = strict_yaml.load("base: &b {fast: 5, slow: 20}\nx: *b\ny: [*b, *b]\n")
    assert loaded["x"] == {"fast": 5, "slow": 20}
    assert loaded["y"] == [loaded["x"], loaded["x"]]


def test_merge_keys_merge_and_explicit_keys_win() -> None:
    text = (
        "defaults: &d {fast: 5, slow: 20}\n"
        "more: &m {z_scale: 2}\n"
        "one:\n  <<: *d\n  slow: 30\n"
        "two:\n  <<: [*d, *m]\n"
        "three:\n  slow: 40\n  <<: *d\n"
    )
    loaded = strict_yaml.load(text)
    assert loaded["one"] == {"fast": 5, "slow": 30}
    assert loaded["two"] == {"fast": 5, "slow": 20, "z_scale": 2}
    assert loaded["three"] == {"fast": 5, "slow": 40}, "an explicit key wins wherever it stands"
    assert loaded["defaults"] == {"fast": 5, "slow": 20}, "the merged mapping itself is untouched"


def test_nesting_up_to_the_limit_is_fine() -> None:
    # Levels count every node: the top mapping, each list, and the value itself.
    lists = MAX_DEPTH - 2
    node = strict_yaml.load("a: " + "[" * lists + "1" + "]" * lists + "\n")["a"]
    for _ in range(lists - 1):
        node = node[0]
    assert node == [1]
    problem = problem_of("a: " + "[" * (lists + 1) + "1" + "]" * (lists + 1) + "\n")
    assert problem.message == f"line 1, column {lists + 5}: nested more than {MAX_DEPTH} levels deep"


# --------------------------------------------------------------- what is refused


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a: 1\na: 2\n", "line 2, column 1: duplicate key 'a' (first on line 1)"),
        ("x:\n  a: 1\n  b: 2\n  a: 3\n", "line 4, column 3: duplicate key 'a' (first on line 2)"),
        ("x: {a: 1, a: 2}\n", "line 1, column 11: duplicate key 'a' (first on line 1)"),
        ("d: &d {a: 1}\nx:\n  <<: *d\n  b: 1\n  b: 2\n", "line 5, column 3: duplicate key 'b' (first on line 4)"),
        ("1: a\n0x1: b\n", "line 2, column 1: duplicate key 1 (first on line 1)"),
        ("? [a, b]\n: 1\n", "line 1, column 3: a key must be a plain value, not a list"),
        ("? {a: 1}\n: 1\n", "line 1, column 3: a key must be a plain value, not a mapping"),
        ("x: {[a]: 1}\n", "line 1, column 5: a key must be a plain value, not a list"),
        ("a: &x 1\nb: &x 2\n", "line 2, column 4: anchor &x is defined twice (first on line 1)"),
        ("a: 1\n---\nb: 2\n", "line 2, column 1: a second document ('---') in one file"),
    ],
)
def test_ambiguous_documents_are_refused(text: str, expected: str) -> None:
    problem = problem_of(text)
    assert problem.message.startswith(expected), problem.message
    assert problem.refused


@pytest.mark.parametrize(
    ("text", "tag"),
    [
        ("a: !!python/object/apply:os.system ['echo owned']\n", "!!python/object/apply:os.system"),
        ("a: !!python/name:os.system\n", "!!python/name:os.system"),
        ("a: !!python/object:collections.OrderedDict {}\n", "!!python/object:collections.OrderedDict"),
        ("a: !!python/tuple [1, 2]\n", "!!python/tuple"),
        ("a: !custom 5\n", "!custom"),
        ("? !!python/name:os.system\n: 1\n", "!!python/name:os.system"),
    ],
)
def test_python_and_custom_tags_are_refused_never_constructed(text: str, tag: str) -> None:
    problem = problem_of(text)
    assert f"tag {tag} is not allowed" in problem.message
    assert problem.message.startswith("line 1, column ")
    assert problem.refused


@pytest.mark.parametrize(
    "text",
    [
        "a: &a [*a]\n",
        "a: &a {b: *a}\n",
        "a: &a {<<: *a}\n",
        "a: &a [1, [2, {c: *a}]]\n",
    ],
)
def test_a_structure_that_contains_itself_is_refused(text: str) -> None:
    problem = problem_of(text)
    assert "alias *a is inside the node it refers to" in problem.message
    assert problem.message.startswith("line 1, column ")


def test_deep_nesting_is_refused_with_its_position_not_a_recursion_error() -> None:
    for text in (
        "a: " + "[" * 5000 + "]" * 5000 + "\n",
        "a: " + "{b: " * 3000 + "1" + "}" * 3000 + "\n",
        "a:\n" + "".join("  " * level + "- \n" for level in range(1, 300)),
    ):
        problem = problem_of(text)
        assert f"nested more than {MAX_DEPTH} levels deep" in problem.message
        assert problem.message.startswith("line ")


def test_nesting_built_from_aliases_is_measured_expanded() -> None:
    # Each anchor is shallow, but each nests the one before: 40 levels x 4.
    layers = ["l0: &l0 " + "[" * 40 + "]" * 40]
    layers += [f"l{i}: &l{i} " + "[" * 39 + f"*l{i - 1}" + "]" * 39 for i in range(1, 4)]
    problem = problem_of("\n".join(layers) + "\n")
    assert f"nested more than {MAX_DEPTH} levels deep once aliases are expanded" in problem.message


def test_an_alias_bomb_is_refused_without_expanding_it() -> None:
    # "Billion laughs": 10 levels of 10 aliases would be 10^10 values.
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 11)]
    problem = problem_of("\n".join(lines) + "\n")
    assert f"expands to more than {MAX_VALUES:,} values through aliases" in problem.message


def test_reusing_an_anchor_many_times_below_the_limit_is_fine() -> None:
    lines = ["a0: &a0 [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 4)]  # 10^4 values
    assert len(strict_yaml.load("\n".join(lines) + "\n")["a3"]) == 10


# --------------------------------------------------------------- syntax errors


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a: [1\nb: 2\n", "line 2, column 2: expected ',' or ']', but got ':'"),
        ("a: b: c\n", "line 1, column 5: mapping values are not allowed here"),
        ("a:\n\t- 1\n", "line 2, column 1: found character '\\t' that cannot start any token"),
        ("a: [1,\t2]\n", "line 1, column 7: found character '\\t' that cannot start any token"),
        ("a: 'open\n", "line 2, column 1: found unexpected end of stream (while scanning a quoted scalar started"),
        ("a: *nowhere\n", "line 1, column 4: found undefined alias 'nowhere'"),
        ("a: 1\x07\n", "line 1, column 5: character 0x0007 is not allowed in YAML (a control character)"),
        ("a: 1\nb: '\x1b[0m'\n", "line 2, column 5: character 0x001b is not allowed in YAML"),
    ],
)
def test_syntax_errors_are_one_line_with_line_and_column(text: str, expected: str) -> None:
    problem = problem_of(text)
    assert problem.message.startswith(expected), problem.message
    assert not problem.refused, "not YAML at all (an override may still take it as a string)"
