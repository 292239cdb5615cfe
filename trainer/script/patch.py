"""Overriding a script's knobs by rewriting only their literals' text; every other character is kept.

Value types: a bool knob takes only a bool; an int knob an int; a float knob an int or a float
(written as a float, `2` -> `2.0`); a str knob a string (in the original quote style); a
tuple/list knob a list of numbers (ints where all its numbers were ints), any length. Floats
are written with repr. A number inside an expression (`lr{0.15}`) is parenthesised when negative.
"""

from __future__ import annotations

import ast
import difflib
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from trainer.config import parse_override
from trainer.errors import InputError
from trainer.script.knobs import BOM, Knob, list_knobs
from trainer.text import quoted


@dataclass(frozen=True)
class Edit:
    """One knob's span and the text that replaces it."""

    knob: Knob
    text: str


def patch(source: str, overrides: Mapping[str, Any], filename: str = "<script>") -> str:
    """The source with each addressed literal replaced by its new value."""
    return apply_edits(source, plan_edits(source, overrides, filename), filename)


def plan_edits(source: str, overrides: Mapping[str, Any], filename: str = "<script>") -> list[Edit]:
    """The edits that set `overrides` ({address: value}); unknown addresses, wrong types and
    overlapping knobs (a tuple and one of its elements) fail before anything is written."""
    knobs = list_knobs(source, filename)
    edits = []
    for address, value in overrides.items():
        knob = find_knob(knobs, address, filename)
        edits.append(Edit(knob, format_value(knob, value)))
    edits.sort(key=lambda e: e.knob.start)
    for a, b in zip(edits, edits[1:]):
        if b.knob.start < a.knob.end:
            raise InputError(f"{a.knob.address} and {b.knob.address} are the same literal's text: set only one")
    return edits


def apply_edits(source: str, edits: Iterable[Edit], filename: str = "<script>") -> str:
    """Splice the edits' texts into the source, from the last span to the first."""
    out = source
    for edit in sorted(edits, key=lambda e: e.knob.start, reverse=True):
        out = out[: edit.knob.start] + edit.text + out[edit.knob.end :]
    try:
        ast.parse(out.removeprefix(BOM))
    except SyntaxError as e:  # a guard: every text format_value writes is an expression that fits its span
        raise InputError(f"{filename}: the patched script does not parse (line {e.lineno}): {e.msg}") from None
    return out


def find_knob(knobs: list[Knob], address: str, filename: str = "<script>") -> Knob:
    """The knob at `address`; an unknown or ambiguous one fails, naming the closest addresses."""
    by_address = {k.address: k for k in knobs}
    if address in by_address:
        return by_address[address]
    numbered = [k for k in knobs if re.fullmatch(re.escape(address) + r"#\d+", k.address)]
    if numbered:
        raise InputError(f"'{address}' is ambiguous in {filename}: it is {_listed(numbered)}")
    close = _closest(address, list(by_address))
    hint = f"; closest: {_listed([by_address[a] for a in close])}" if close else ""
    raise InputError(f"no knob '{address}' in {filename}{hint} (`speedrun script knobs {filename}` lists them all)")


def _closest(address: str, addresses: list[str], limit: int = 8) -> list[str]:
    """Addresses like `address` as a whole, then those whose last name is like its last name
    (`lr` finds `adam_defaults.lr`, `num_iterations` finds `Hyperparameters.num_scheduled_iterations`)."""
    close = difflib.get_close_matches(address, addresses, n=limit, cutoff=0.6)
    last = {a: _last_name(a) for a in addresses}
    similar = difflib.get_close_matches(_last_name(address), set(last.values()), n=4, cutoff=0.7)
    for name in similar:
        close += [a for a in addresses if last[a] == name and a not in close]
    return close[:limit]


def _last_name(address: str) -> str:
    names = re.findall(r"[A-Za-z_]\w*", re.sub(r"\{[^}]*\}", "", address))
    return names[-1] if names else ""


def _listed(knobs: list[Knob]) -> str:
    return ", ".join(f"{k.address} (line {k.line}: {k.text})" for k in knobs)


def format_value(knob: Knob, value: Any) -> str:
    """The source text of `value` in `knob`'s place; a value of the wrong type fails."""
    if knob.kind == "bool":
        if not isinstance(value, bool):
            raise _type_error(knob, value, "true or false")
        return repr(value)
    if knob.kind == "str":
        if not isinstance(value, str):
            raise _type_error(knob, value, "a string")
        return _quoted(value, knob.text)
    if knob.kind in ("tuple", "list"):
        if not isinstance(value, (list, tuple)):
            raise _type_error(knob, value, f"a list of numbers, e.g. {list(knob.value)}")
        element = "int" if all(isinstance(v, int) for v in knob.value) else "float"
        items = ", ".join(_number_text(knob, v, element) for v in value)
        if knob.kind == "list":
            return f"[{items}]"
        return f"({items},)" if len(value) == 1 else f"({items})"
    text = _number_text(knob, value, knob.kind)
    return f"({text})" if knob.in_expression and text.startswith("-") else text


def _number_text(knob: Knob, value: Any, kind: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _type_error(knob, value, "an int" if kind == "int" else "a number")
    if kind == "int":
        if not isinstance(value, int):
            raise _type_error(knob, value, "an int (its literal is an int)")
        return str(value)
    if not math.isfinite(value):
        raise _type_error(knob, value, "a finite number")
    return repr(float(value))


def _quoted(value: str, original: str) -> str:
    """A string literal in the original's quote character where it can be."""
    body = original.lstrip("rRuUbBfF")
    if body.startswith('"'):
        return json.dumps(value, ensure_ascii=False)  # JSON's escapes are Python's too
    return repr(value)


def _type_error(knob: Knob, value: Any, expected: str) -> InputError:
    got = "nothing" if value is None else f"{_type_name(value)} {quoted(value)}"
    return InputError(f"{knob.address} (line {knob.line}: {knob.text}) takes {expected}; got {got}")


def _type_name(value: Any) -> str:
    return {bool: "bool", int: "int", float: "float", str: "string", list: "list", tuple: "tuple",
            dict: "mapping"}.get(type(value), type(value).__name__)


def parse_assignment(item: str) -> tuple[str, Any]:
    """`ADDR=VALUE` from the command line, the value read as YAML (and `1e-3` as a number, as Python would)."""
    address, value = parse_override(item)
    if isinstance(value, str) and _plain(item.partition("=")[2]):  # YAML 1.1 reads `1e-3` (no dot) as a string
        try:
            number = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            number = None
        if isinstance(number, (int, float)) and not isinstance(number, bool):
            value = number
    return address, value


def _plain(raw: str) -> bool:
    """Whether a YAML scalar was written unquoted and untagged: `"2800"` and `!!str 2800` stay strings."""
    try:
        scalars = [e for e in yaml.parse(raw) if isinstance(e, yaml.ScalarEvent)]
    except yaml.YAMLError:
        return False
    return len(scalars) == 1 and scalars[0].implicit[0]


def parse_assignments(items: Iterable[str]) -> dict[str, Any]:
    """`--set` items as {address: value}; a later item for the same address wins."""
    return dict(parse_assignment(item) for item in items)
