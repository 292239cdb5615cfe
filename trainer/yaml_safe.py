"""The one YAML loader for user files and `--set` values: plain data, bounded in size.

PyYAML's safe loader runs no code, but it trusts the document's shape: an alias bomb ("billion
laughs", a few lines whose aliases expand to billions of nodes) costs minutes and gigabytes in
whatever walks the result, and lists nested a few hundred deep overflow Python's stack while
composing. Here the document's length, its nesting depth and the number of nodes it expands to
through aliases are counted while it is composed, and a document past a bound is refused at the
line where it crossed it, before anything is built from it.

    node = compose(text)        # YamlDataError(line, message) for anything refused
    data = construct(node)      # plain Python data (dict, list, str, int, float, bool, None, date)
    data = load(text)           # both
    data = load_file(path, "a trainer config YAML")   # InputError naming the file and line
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from trainer.errors import InputError
from trainer.text import quoted, read_text

# search_spaces may not import trainer (DESIGN.md), so search_spaces/yaml_data.py mirrors these bounds
MAX_CHARS = 2**20  # any config or space is a few kB
MAX_DEPTH = 100  # any config or space nests a handful of levels
MAX_NODES = 10_000  # nodes after alias expansion; a full config is a few hundred


class YamlDataError(InputError):
    """A document that is not well-formed YAML data within the bounds, at a 1-based `line`; the
    message is one line and says what was expected."""

    def __init__(self, line: int, message: str):
        self.line = line
        super().__init__(message)


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that counts depth and expanded nodes while composing (see the module docstring)."""

    def __init__(self, text: str):
        super().__init__(text)
        self._depth = 0
        self._expanded = 0  # nodes so far, each alias counting every node it stands for
        self._sizes: dict[str, int] = {}  # anchor -> the nodes it stands for, once composed

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
        before = self._expanded
        self._count(1, line)
        node = super().compose_node(parent, index)
        self._depth -= 1
        if event.anchor is not None:
            self._sizes[event.anchor] = self._expanded - before
        return node

    def _count(self, nodes: int, line: int) -> None:
        self._expanded += nodes
        if self._expanded > MAX_NODES:
            raise YamlDataError(line, f"expands to more than {MAX_NODES:,} values (aliases count each time they "
                                      f"are used); expected at most {MAX_NODES:,}")


def compose(text: str) -> yaml.Node | None:
    """The document's node tree (None for an empty one); YamlDataError past a bound or for bad syntax."""
    if len(text) > MAX_CHARS:
        raise YamlDataError(1, f"{len(text):,} characters; expected a YAML document of at most {MAX_CHARS:,}")
    loader = _BoundedLoader(text)
    try:
        return loader.get_single_node()
    except yaml.YAMLError as e:
        raise YamlDataError(*_syntax_error(e)) from None
    finally:
        loader.dispose()


class _Constructor(yaml.SafeLoader):
    """SafeLoader's constructor, whose errors name the line of the value they are about."""

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except YamlDataError:
            raise
        except ValueError as e:  # a date that is no date (2024-13-45), `!!int x`
            raise YamlDataError(node.start_mark.line + 1, f"{quoted(node.value)} cannot be read as "
                                f"{node.tag.rsplit(':', 1)[-1]}: {e}; expected plain YAML data") from None


def construct(node: yaml.Node | None) -> Any:
    """Plain Python data from a composed node; YamlDataError for a value YAML's safe types cannot hold."""
    if node is None:
        return None
    try:
        return _Constructor("").construct_document(node)
    except yaml.YAMLError as e:  # a tag the safe loader has no type for: `!!python/object`, `!custom`
        mark = getattr(e, "problem_mark", None)
        what = getattr(e, "problem", None) or " ".join(str(e).split())
        raise YamlDataError(mark.line + 1 if mark else 1, f"{what}; expected plain YAML data (no tags, no code)") from None


def load(text: str) -> Any:
    """`construct(compose(text))`."""
    return construct(compose(text))


def load_file(path: str | Path, expected: str) -> Any:
    """A user's YAML file as plain data; InputError naming the file, the line and `expected`."""
    text = read_text(path, expected)
    try:
        return load(text)
    except YamlDataError as e:
        raise InputError(f"{path}:{e.line}: {e}") from None


def _syntax_error(e: yaml.YAMLError) -> tuple[int, str]:
    """(line, message) of a YAML error, on one line, without PyYAML's source excerpts."""
    problem_mark = getattr(e, "problem_mark", None)
    context_mark = getattr(e, "context_mark", None)
    mark = problem_mark or context_mark
    if mark is None:
        return 1, f"not valid YAML: {' '.join(str(e).split())}"
    what = getattr(e, "problem", None) or "syntax error"
    if getattr(e, "context", None) and context_mark is not None:
        what = f"{e.context} (line {context_mark.line + 1}, column {context_mark.column + 1}): {what}"
    return mark.line + 1, f"not valid YAML: {what} at column {mark.column + 1}; expected well-formed YAML"
