"""A tiny, safe expression language for constraints: parsed, checked and evaluated by this
module, never by Python's `eval`.

Grammar (Python syntax, a small subset of it):

    expr     := expr ("or" | "and") expr | "not" expr | compare
    compare  := arith (("<" | "<=" | ">" | ">=" | "==" | "!=") arith)*
    arith    := arith ("+" | "-" | "*" | "/" | "//" | "%" | "**") arith | "-" arith | atom
    atom     := NUMBER | "true"/"True" | "false"/"False" | 'STRING' | KEY | "world_size"
              | ("min" | "max" | "abs") "(" arith ("," arith)* ")" | "(" expr ")"
    KEY      := a dotted trainer key, e.g. schedule.lr.cooldown_frac, with literal list
                indices for stage lists, e.g. schedule.batch[0].tokens

Python's parser only builds the syntax tree; every node is checked against the whitelist and
converted into this module's own tuples, which `evaluate` walks. Names resolve to values the
caller supplies; there is no attribute access, no call other than min/max/abs, no subscript but a literal index,
no comprehensions, and `**` is limited to small exponents.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping
from typing import Any

MAX_LENGTH = 500
MAX_EXPONENT = 64

Node = tuple  # ("num", v) | ("key", "a.b") | ("bin", op, l, r) | ("neg", x) | ("not", x)
#               | ("cmp", [ops], [operands]) | ("and"/"or", [operands]) | ("call", fn, [args])

_BINOPS: dict[type, tuple[str, Callable[[Any, Any], Any]]] = {
    ast.Add: ("+", operator.add),
    ast.Sub: ("-", operator.sub),
    ast.Mult: ("*", operator.mul),
    ast.Div: ("/", operator.truediv),
    ast.FloorDiv: ("//", operator.floordiv),
    ast.Mod: ("%", operator.mod),
    ast.Pow: ("**", operator.pow),
}
_CMPOPS: dict[type, tuple[str, Callable[[Any, Any], bool]]] = {
    ast.Lt: ("<", operator.lt),
    ast.LtE: ("<=", operator.le),
    ast.Gt: (">", operator.gt),
    ast.GtE: (">=", operator.ge),
    ast.Eq: ("==", operator.eq),
    ast.NotEq: ("!=", operator.ne),
}
_OPS = {sym: fn for sym, fn in [*_BINOPS.values(), *_CMPOPS.values()]}
_FUNCS: dict[str, Callable[..., Any]] = {"min": min, "max": max, "abs": abs}
_WORDS = {"true": True, "True": True, "false": False, "False": False}


class ExpressionError(ValueError):
    """The text is not in the constraint grammar."""


class EvaluationError(ValueError):
    """The expression could not be evaluated on these values (wrong type, division by zero, ...)."""


def parse(text: str) -> Node:
    """The checked tree of `text`; raises ExpressionError saying what is not allowed."""
    if not isinstance(text, str) or not text.strip():
        raise ExpressionError("expected a non-empty expression string")
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"expression is {len(text)} characters long; expected at most {MAX_LENGTH}")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as e:
        raise ExpressionError(f"not a valid expression ({e.msg})") from None
    return _convert(tree.body)


def _convert(node: ast.AST) -> Node:
    if isinstance(node, ast.Constant):
        if isinstance(node.value, (bool, int, float, str)):
            return ("num", node.value)
        raise ExpressionError(f"constant {node.value!r} is not allowed; expected a number or a string")
    if isinstance(node, ast.Name):
        if node.id in _WORDS:
            return ("num", _WORDS[node.id])
        return ("key", node.id)
    if isinstance(node, (ast.Attribute, ast.Subscript)):
        return ("key", _dotted(node))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        return ("bin", _BINOPS[type(node.op)][0], _convert(node.left), _convert(node.right))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        inner = _convert(node.operand)
        return ("neg", inner) if isinstance(node.op, ast.USub) else inner
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return ("not", _convert(node.operand))
    if isinstance(node, ast.BoolOp):
        return ("and" if isinstance(node.op, ast.And) else "or", [_convert(v) for v in node.values])
    if isinstance(node, ast.Compare) and all(type(op) in _CMPOPS for op in node.ops):
        operands = [_convert(node.left), *map(_convert, node.comparators)]
        return ("cmp", [_CMPOPS[type(op)][0] for op in node.ops], operands)
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in _FUNCS:
            raise ExpressionError(f"call of '{ast.unparse(node.func)}' is not allowed; expected only min, max or abs")
        if node.keywords or not node.args or any(isinstance(a, ast.Starred) for a in node.args):
            raise ExpressionError(f"{node.func.id}() takes plain positional arguments")
        return ("call", node.func.id, [_convert(a) for a in node.args])
    raise ExpressionError(
        f"'{ast.unparse(node)}' is not allowed; expected numbers, dotted keys, world_size, "
        "+ - * / // % **, comparisons, and/or/not, min/max/abs"
    )


def _dotted(node: ast.AST) -> str:
    """`a.b[0].c` -> 'a.b.0.c' (list items by a literal index only)."""
    parts: list[str] = []
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        if isinstance(node, ast.Attribute):
            parts.append(node.attr)
        else:
            index = node.slice
            if not (isinstance(index, ast.Constant) and type(index.value) is int and index.value >= 0):
                raise ExpressionError(f"'{ast.unparse(node)}': expected a literal index such as [0]")
            parts.append(str(index.value))
        node = node.value
    if not isinstance(node, ast.Name):
        raise ExpressionError(f"'{ast.unparse(node)}' is not allowed; expected a dotted key such as optim.muon_lr")
    parts.append(node.id)
    return ".".join(reversed(parts))


def keys(tree: Node) -> list[str]:
    """Every key the expression reads, in order of first use."""
    out: list[str] = []

    def walk(n: Node) -> None:
        kind = n[0]
        if kind == "key":
            if n[1] not in out:
                out.append(n[1])
        elif kind == "bin":
            walk(n[2])
            walk(n[3])
        elif kind in ("neg", "not"):
            walk(n[1])
        elif kind in ("and", "or"):
            for v in n[1]:
                walk(v)
        elif kind == "cmp":
            for v in n[2]:
                walk(v)
        elif kind == "call":
            for v in n[2]:
                walk(v)

    walk(tree)
    return out


def evaluate(tree: Node, values: Mapping[str, Any]) -> Any:
    """The value of the expression with keys looked up in `values`; raises EvaluationError."""
    kind = tree[0]
    if kind == "num":
        return tree[1]
    if kind == "key":
        if tree[1] not in values:
            raise EvaluationError(f"no value for '{tree[1]}'")
        return values[tree[1]]
    if kind == "neg":
        return -_number(evaluate(tree[1], values))
    if kind == "not":
        return not evaluate(tree[1], values)
    if kind == "and":
        return all(evaluate(v, values) for v in tree[1])
    if kind == "or":
        return any(evaluate(v, values) for v in tree[1])
    if kind == "bin":
        sym, left, right = tree[1], _number(evaluate(tree[2], values)), _number(evaluate(tree[3], values))
        if sym == "**" and abs(right) > MAX_EXPONENT:
            raise EvaluationError(f"exponent {right} is too large (at most {MAX_EXPONENT})")
        try:
            return _OPS[sym](left, right)
        except (ZeroDivisionError, OverflowError, ValueError) as e:
            raise EvaluationError(f"{left} {sym} {right}: {e}") from None
    if kind == "cmp":
        operands = [evaluate(v, values) for v in tree[2]]
        try:
            return all(_OPS[op](a, b) for op, a, b in zip(tree[1], operands, operands[1:]))
        except TypeError:
            raise EvaluationError(f"cannot compare {operands}") from None
    if kind == "call":
        return _FUNCS[tree[1]](*(_number(evaluate(a, values)) for a in tree[2]))
    raise EvaluationError(f"unknown node {kind}")  # pragma: no cover - parse() builds only the above


def _number(v: Any) -> int | float:
    if isinstance(v, (int, float)):  # bool is an int
        return v
    raise EvaluationError(f"{v!r} is not a number")


def unparse(tree: Node) -> str:
    """Readable text of a tree (for messages)."""
    kind = tree[0]
    if kind == "num":
        return repr(tree[1])
    if kind == "key":
        return tree[1]
    if kind == "neg":
        return f"-{unparse(tree[1])}"
    if kind == "not":
        return f"not {unparse(tree[1])}"
    if kind in ("and", "or"):
        return f" {kind} ".join(unparse(v) for v in tree[1])
    if kind == "bin":
        return f"({unparse(tree[2])} {tree[1]} {unparse(tree[3])})"
    if kind == "cmp":
        text = unparse(tree[2][0])
        for op, v in zip(tree[1], tree[2][1:]):
            text += f" {op} {unparse(v)}"
        return text
    if kind == "call":
        return f"{tree[1]}({', '.join(unparse(a) for a in tree[2])})"
    return "?"  # pragma: no cover
