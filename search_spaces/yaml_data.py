"""Data-only YAML: safe loading with a line number for every key, and values written back as
the YAML text of one trainer `--set KEY=VALUE` override.

Loading composes the node tree first, bounded (no construction, so nothing can run; alias
bombs, deep nesting and huge documents are refused at their line), rejects any tag that is not
plain data (`!!python/object`, custom `!tags`, `!!binary`, ...) and duplicate keys, records the
line of every key and list item, and only then builds the Python value.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import yaml

from search_spaces.report import quoted

Path_ = tuple[str | int, ...]  # a key path in the document: mapping keys and list indices

_STD = "tag:yaml.org,2002:"
_DATA_TAGS = {_STD + t for t in ("str", "int", "float", "bool", "null", "seq", "map", "timestamp", "merge")}


# ---------------------------------------------------------------------------------------
# Bounded composition. search_spaces may not import trainer (DESIGN.md), so this mirrors
# trainer/yaml_safe.py: the same three bounds, the same messages.

MAX_CHARS = 2**20  # any space is a few kB
MAX_DEPTH = 100  # any space nests a handful of levels
MAX_NODES = 10_000  # nodes after alias expansion


class YamlDataError(Exception):
    """Not well-formed YAML data within the bounds, at a 1-based `line`; a one-line message."""

    def __init__(self, line: int, message: str):
        self.line = line
        super().__init__(message)


class _Loader(yaml.SafeLoader):
    """SafeLoader counting nesting depth and nodes while composing, each alias counting every node
    it stands for (an alias bomb is refused at its line, before anything walks it), and naming the
    line of a value it cannot construct."""

    def __init__(self, text: str):
        super().__init__(text)
        self._depth, self._nodes, self._sizes = 0, 0, {}  # _sizes: anchor -> nodes it stands for

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        event = self.peek_event()
        line = event.start_mark.line + 1
        if isinstance(event, yaml.AliasEvent):
            if event.anchor in self.anchors and event.anchor not in self._sizes:
                raise YamlDataError(line, f"alias *{event.anchor} is inside the node it names; expected data "
                                          "that does not contain itself")
            self._count(self._sizes.get(event.anchor, 0), line)
            return super().compose_node(parent, index)
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise YamlDataError(line, f"nested more than {MAX_DEPTH} levels deep; expected at most {MAX_DEPTH}")
        before = self._nodes
        self._count(1, line)
        node = super().compose_node(parent, index)
        self._depth -= 1
        if event.anchor is not None:
            self._sizes[event.anchor] = self._nodes - before
        return node

    def _count(self, nodes: int, line: int) -> None:
        self._nodes += nodes
        if self._nodes > MAX_NODES:
            raise YamlDataError(line, f"expands to more than {MAX_NODES:,} values (aliases count each time they "
                                      f"are used); expected at most {MAX_NODES:,}")

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except ValueError as e:  # a date that is no date (2024-13-45), `!!int x`
            raise YamlDataError(node.start_mark.line + 1, f"{quoted(node.value)} cannot be read as "
                                f"{node.tag.rsplit(':', 1)[-1]}: {e}; expected plain YAML data") from None


def compose(text: str) -> yaml.Node | None:
    """The document's node tree (None for an empty one); YamlDataError past a bound or for bad syntax."""
    if len(text) > MAX_CHARS:
        raise YamlDataError(1, f"{len(text):,} characters; expected a YAML document of at most {MAX_CHARS:,}")
    loader = _Loader(text)
    try:
        return loader.get_single_node()
    except yaml.YAMLError as e:
        raise YamlDataError(*_syntax_error(e)) from None
    finally:
        loader.dispose()


def construct(node: yaml.Node | None) -> Any:
    """Plain Python data from a composed node; YamlDataError for what the safe types cannot hold."""
    try:
        return None if node is None else _Loader("").construct_document(node)
    except yaml.YAMLError as e:  # a tag the safe loader has no type for: `!!python/object`, `!custom`
        mark = getattr(e, "problem_mark", None)
        what = getattr(e, "problem", None) or " ".join(str(e).split())
        raise YamlDataError(mark.line + 1 if mark else 1, f"{what}; expected plain YAML data (no tags, no code)") from None


def load(text: str) -> Any:
    """`construct(compose(text))`: one bounded YAML value (an override's VALUE)."""
    return construct(compose(text))


def _syntax_error(e: yaml.YAMLError) -> tuple[int, str]:
    """(line, message) of a YAML syntax error, on one line, without PyYAML's source excerpts."""
    problem_mark = getattr(e, "problem_mark", None)
    context_mark = getattr(e, "context_mark", None)
    mark = problem_mark or context_mark
    if mark is None:
        return 1, f"not valid YAML: {' '.join(str(e).split())}"
    what = getattr(e, "problem", None) or "syntax error"
    if getattr(e, "context", None) and context_mark is not None:
        what = f"{e.context} (line {context_mark.line + 1}, column {context_mark.column + 1}): {what}"
    return mark.line + 1, f"not valid YAML: {what} at column {mark.column + 1}; expected well-formed YAML"


# ---------------------------------------------------------------------------------------
# Loading with lines


class YamlProblem(Exception):
    """A document that is not plain YAML data; `problems` lists (path, line, message)."""

    def __init__(self, problems: list[tuple[Path_, int, str]]):
        self.problems = problems
        super().__init__("; ".join(m for _, _, m in problems))


def load_with_lines(text: str) -> tuple[Any, dict[Path_, int]]:
    """The document's data and a map of key path -> 1-based line; raises YamlProblem."""
    try:
        root = compose(text)
    except YamlDataError as e:
        raise YamlProblem([((), e.line, str(e))]) from None
    lines: dict[Path_, int] = {}
    problems: list[tuple[Path_, int, str]] = []
    seen: set[int] = set()

    def walk(node: yaml.Node, path: Path_) -> None:
        if id(node) in seen:  # an alias of a node already walked
            return
        seen.add(id(node))
        if node.tag not in _DATA_TAGS:
            shown = node.tag.replace(_STD, "!!")
            message = f"YAML tag '{shown}' is not allowed; a space is plain data (no tags, no code)"
            problems.append((path, node.start_mark.line + 1, message))
            return
        if isinstance(node, yaml.MappingNode):
            keys: dict[Any, int] = {}
            for k, v in node.value:
                key = k.value if isinstance(k, yaml.ScalarNode) else str(k.value)
                line = k.start_mark.line + 1
                if key in keys and k.tag != _STD + "merge":
                    message = f"duplicate key '{key}' (first at line {keys[key]}); expected each key once"
                    problems.append((path + (key,), line, message))
                keys.setdefault(key, line)
                lines.setdefault(path + (key,), line)
                walk(v, path + (key,))
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                lines[path + (i,)] = v.start_mark.line + 1
                walk(v, path + (i,))

    if root is not None:
        lines[()] = root.start_mark.line + 1
        walk(root, ())
    if problems:
        raise YamlProblem(problems)
    try:
        data = construct(root)
    except YamlDataError as e:  # a value of a plain tag the safe types cannot hold (a bad date)
        raise YamlProblem([((), e.line, str(e))]) from None
    return data, lines


# ---------------------------------------------------------------------------------------
# Writing one value as YAML flow text (the VALUE of a trainer `--set KEY=VALUE`)

_PLAIN = re.compile(r"[A-Za-z0-9_./][A-Za-z0-9_./*+-]*")


def to_yaml(value: Any) -> str:
    """One-line YAML for `value` that `yaml.safe_load` reads back equal (lists, dicts, scalars)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _float(value)
    if isinstance(value, str):
        return _str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(to_yaml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_str(str(k))}: {to_yaml(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {type(value).__name__} {value!r} as YAML data")


def _float(x: float) -> str:
    if math.isnan(x):
        return ".nan"
    if math.isinf(x):
        return ".inf" if x > 0 else "-.inf"
    text = repr(x)
    mantissa, e, exponent = text.partition("e")
    if e and "." not in mantissa:  # YAML 1.1 (PyYAML) reads 1e-05 as a string, 1.0e-05 as a float
        text = f"{mantissa}.0e{exponent}"
    return text


def _str(s: str) -> str:
    if _PLAIN.fullmatch(s) and _safe_load_or_none(s) == s:
        return s
    return json.dumps(s)  # a JSON string is a valid YAML double-quoted scalar


def _safe_load_or_none(s: str) -> Any:
    try:
        return yaml.safe_load(s)
    except yaml.YAMLError:
        return None
