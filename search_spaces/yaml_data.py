"""Data-only YAML: safe loading with a line number for every key, and values written back as
the YAML text of one trainer `--set KEY=VALUE` override.

Loading composes the node tree first (no construction, so nothing can run), rejects any tag
that is not plain data (`!!python/object`, custom `!tags`, `!!binary`, ...) and duplicate keys,
records the line of every key and list item, and only then builds the Python value with
`yaml.safe_load`.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import yaml

Path_ = tuple[str | int, ...]  # a key path in the document: mapping keys and list indices

_STD = "tag:yaml.org,2002:"
_DATA_TAGS = {_STD + t for t in ("str", "int", "float", "bool", "null", "seq", "map", "timestamp", "merge")}


class YamlProblem(Exception):
    """A document that is not plain YAML data; `problems` lists (path, line, message)."""

    def __init__(self, problems: list[tuple[Path_, int, str]]):
        self.problems = problems
        super().__init__("; ".join(m for _, _, m in problems))


def load_with_lines(text: str) -> tuple[Any, dict[Path_, int]]:
    """The document's data and a map of key path -> 1-based line; raises YamlProblem."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as e:
        raise YamlProblem([((), *_syntax_error(e))]) from None
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
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:  # pragma: no cover - compose accepted it, so this is unexpected
        raise YamlProblem([((), 1, f"not valid YAML data: {' '.join(str(e).split())}")]) from None
    return data, lines


def _syntax_error(e: yaml.YAMLError) -> tuple[int, str]:
    """(line, message) of a YAML syntax error, without PyYAML's source excerpts."""
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
