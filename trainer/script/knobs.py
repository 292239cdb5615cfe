"""The knobs of a train_gpt.py: every literal in a named position, each with a stable address.

A knob's value is a number, bool or string literal, a constant arithmetic expression of numbers
(`8 * 2048 * 8`, `1/3`, `-4.775`, `1e-10`: one knob whose value is the evaluated number), or a
list/tuple of numbers (`window_sizes=(1, 3)`: a knob, and each element is a knob too).

Addresses
    address := root segment* ["#" k]

root, what the literal hangs from, as the source names it:
    WINDOW                            a module constant (`WINDOW = 1728`, `WINDOW: int = 1728`)
    Hyperparameters.num_iterations    a class attribute (dataclass field, slots or not, or plain
                                      class attribute); `self.X = ...` in a method of C is `C.X`
    adam_defaults                     a name assigned inside a function: functions add nothing, so
                                      code moved into or out of a function keeps its addresses
    args.lr, group.momentum           any other attribute or constant-key subscript target, as written
    get_lr.cooldown, Muon.__init__.lr a parameter default of a function or method
    get_lr.return                     a function's return value (`return w * 1.0 + (1 - w) * 0.1`)
    get_lr.if, if                     the test of an `if` in a function, or at module level
                                      (`if x > 0.33:` gives `get_lr.if{0.33}`)
    Muon, torch.optim.Adam            the callee of a call whose result is not assigned: only its
                                      keyword arguments and what they (or dicts) name; a method's
                                      `self.opt.update(...)` is `C.opt.update`
segment:
    .name     a keyword argument of a call, or an identifier key of a dict literal
    [i]       element i of a list or tuple; a dict's int key (`[16384]`) or other string key (`["a b"]`)
    (i)       positional argument i of a call
    {text}    a number inside a larger expression, by its source text without spaces:
              `lr = lr * (1 - t) + 0.15 * t` gives `lr{1}` and `lr{0.15}`
#k: knobs that would share an address get `#1`, `#2`, ... in source order (`Muon.momentum#2`);
the bare address is then ambiguous.

So `TRAINING_STAGES[1].lr_mul`, `TRAINING_STAGES[0].window_sizes[1]`, `adam_params[0].lr`,
`optimizer2.momentum`, `training_schedule.cooldown_frac`, `get_muon_momentum.momentum_min`.
An address stays the same while unrelated code changes; it names a position, so inserting a
stage before `[1]`, editing the text of a `{text}` literal, or adding a knob with the same
address before a `#k` one changes it. Quote addresses in a shell (`[`, `(`, `{` are special).

Not knobs: docstrings, decorators (they configure code, not training), f-strings, None,
subscript indexes, lambda bodies, and literals with no name on their way (bare positional
arguments of unassigned calls, `while` and `assert` tests).

Positions: lines are 1-based, columns 0-based characters; `start`/`end` are character offsets
of the span in the source (ast's columns are UTF-8 bytes: converted here).
"""

from __future__ import annotations

import ast
import json
import math
import operator
import re
from bisect import bisect_right
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from trainer.errors import InputError
from trainer.text import read_text

Value = int | float | bool | str | tuple | list

BOM = "\ufeff"

_BINOPS = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
}  # fmt: skip
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos}
_MAX_EXPONENT = 64  # `10 ** 10 ** 10` is constant arithmetic too, but would never finish


@dataclass(frozen=True)
class Knob:
    """One overridable literal: its address, value and exact span in the source."""

    address: str
    value: Value
    kind: str  # int, float, bool, str, tuple or list
    text: str  # the span's source, as written
    line: int
    col: int
    end_line: int
    end_col: int
    start: int
    end: int
    in_expression: bool  # a `{text}` knob: an operand inside a larger expression


@dataclass(frozen=True)
class _Scope:
    """Where a statement is: what its assignments' and returns' addresses start with."""

    classes: tuple[str, ...] = ()  # enclosing classes: they prefix class attributes, `self.X` and defaults
    in_class: bool = False  # directly in a class body, where `X = 1` is `C.X`
    self_name: str | None = None  # the instance parameter of the enclosing method
    function: str | None = None  # the enclosing function's address, for its `return` values


@dataclass
class _Found:
    address: str
    node: ast.expr
    value: Value
    kind: str
    in_expression: bool = False


def read_script(path: str | Path) -> str:
    """A script's text exactly as on disk (no newline translation), so untouched bytes stay identical."""
    return read_text(path, "a Python script")


def parse_script(source: str, filename: str = "<script>") -> ast.Module:
    """The script's syntax tree; a syntax error is the user's to fix."""
    try:
        return ast.parse(source.removeprefix(BOM), filename=filename)
    except SyntaxError as e:
        raise InputError(f"{filename}:{e.lineno}: not valid Python: {e.msg}") from None


def list_knobs(source: str, filename: str = "<script>") -> list[Knob]:
    """Every knob of a script's source, in source order (a container before its elements)."""
    tree = parse_script(source, filename)
    collector = _Collector(tree)
    collector.collect(tree)
    spans = _Spans(source)
    located = []
    for f in collector.found:
        start, end = spans.span(f.node)
        if f.in_expression:
            f.address += "{" + re.sub(r"\s+", "", source[start:end]) + "}"
        located.append(((start, end), f))
    located.sort(key=lambda p: (p[0][0], -p[0][1]))
    counts = Counter(f.address for _, f in located)
    seen: Counter[str] = Counter()
    knobs = []
    for (start, end), f in located:
        address = f.address
        if counts[address] > 1:
            seen[address] += 1
            address = f"{address}#{seen[address]}"
        line, col = spans.line_col(start)
        end_line, end_col = spans.line_col(end)
        knobs.append(Knob(address, f.value, f.kind, source[start:end], line, col, end_line, end_col, start, end,
                          f.in_expression))
    return knobs


def _number(node: ast.expr) -> int | float | None:
    """The value of a number literal or of constant arithmetic on them; None for anything else."""
    if isinstance(node, ast.Constant):
        v = node.value
        return v if isinstance(v, (int, float)) and not isinstance(v, bool) else None
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        v = _number(node.operand)
        return None if v is None else _UNARY[type(node.op)](v)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        a, b = _number(node.left), _number(node.right)
        if a is None or b is None or (isinstance(node.op, ast.Pow) and abs(b) > _MAX_EXPONENT):
            return None
        try:
            v = _BINOPS[type(node.op)](a, b)
        except (ArithmeticError, ValueError):
            return None
        return v if isinstance(v, int) or (isinstance(v, float) and math.isfinite(v)) else None
    return None


def _literal(node: ast.expr) -> tuple[Value, str] | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, bool):
        return node.value, "bool"
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value, "str"
    v = _number(node)
    if v is None:
        return None
    return v, "int" if isinstance(v, int) else "float"


def _dotted(node: ast.expr) -> str | None:
    """`a.b.c` for a chain of names and attributes, else None."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return None if base is None else f"{base}.{node.attr}"
    return None


def _callee(func: ast.expr) -> str | None:
    """A call's root: `torch.optim.Adam`; a method of a computed object by its name (`cuda`)."""
    dotted = _dotted(func)
    if dotted is None and isinstance(func, ast.Attribute):
        return func.attr
    return dotted


def _key_segment(key: ast.expr | None) -> str | None:
    """The segment a dict key (or a subscript target's key) adds: `.name`, `[3]` or `["a b"]`."""
    if not isinstance(key, ast.Constant):
        return None
    k = key.value
    if isinstance(k, str):
        return f".{k}" if k.isidentifier() else f"[{json.dumps(k)}]"
    if isinstance(k, int) and not isinstance(k, bool):
        return f"[{k}]"
    return None


def _declared_float(annotation: ast.expr | None) -> bool:
    """`x: float = 0` is a float knob although its literal is an int: a sweep may set 0.1."""
    return (isinstance(annotation, ast.Name) and annotation.id == "float") or (
        isinstance(annotation, ast.Constant) and annotation.value == "float"
    )


def _annotations(tree: ast.Module) -> dict[str, dict[str, ast.expr]]:
    """Per class or function name, its fields' or parameters' annotations: `Stage(lr_mul=1)` of a
    `lr_mul: float` field is a float knob."""
    out: dict[str, dict[str, ast.expr]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            fields = out.setdefault(node.name, {})
            for stmt in node.body:
                if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                    fields[stmt.target.id] = stmt.annotation
                elif isinstance(stmt, ast.FunctionDef) and stmt.name == "__init__":
                    fields.update(_parameter_annotations(stmt))
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            out.setdefault(node.name, {}).update(_parameter_annotations(node))
    return out


def _parameter_annotations(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> dict[str, ast.expr]:
    a = fn.args
    return {p.arg: p.annotation for p in a.posonlyargs + a.args + a.kwonlyargs if p.annotation is not None}


class _Collector:
    """Walks the statements, then the calls no assignment reached, recording `_Found`s."""

    def __init__(self, tree: ast.Module):
        self.found: list[_Found] = []
        self.reached: set[int] = set()  # ids of calls already walked under a named root
        self.skipped: set[int] = set()  # ids of calls in decorators
        self.methods: dict[int, tuple[str, str]] = {}  # id of a call in a method -> (class path, self name)
        self.annotations = _annotations(tree)

    def collect(self, tree: ast.Module) -> None:
        for stmt in tree.body:
            self.statement(stmt, _Scope())
        for node in ast.walk(tree):  # breadth first: an outer call is reached before those inside it
            if isinstance(node, ast.Call) and id(node) not in self.reached and id(node) not in self.skipped:
                root = self._loose_root(node)
                if root is not None:
                    self.walk(node, root, named=False)

    def _loose_root(self, call: ast.Call) -> str | None:
        """The callee, with a method's `self.` read as its class: `self.param_table.update` in a
        method of TrainingManager is `TrainingManager.param_table.update`."""
        root = _callee(call.func)
        if root is not None and id(call) in self.methods:
            cls, self_name = self.methods[id(call)]
            if root.startswith(self_name + "."):
                return cls + root[len(self_name):]
        return root

    # --- statements -------------------------------------------------------------------

    def statement(self, node: ast.stmt, scope: _Scope) -> None:
        if isinstance(node, ast.ClassDef):
            self._skip_decorators(node)
            inner = _Scope(classes=scope.classes + (node.name,), in_class=True)
            for stmt in node.body:
                self.statement(stmt, inner)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            self._skip_decorators(node)
            name = ".".join(scope.classes + (node.name,))
            self._defaults(node, name)
            params = node.args.posonlyargs + node.args.args
            self_name = scope.self_name
            if scope.in_class and params:
                self_name = params[0].arg
                context = (".".join(scope.classes), self_name)
                self.methods.update((id(n), context) for n in ast.walk(node) if isinstance(n, ast.Call))
            inner = _Scope(classes=scope.classes, self_name=self_name, function=name)
            for stmt in node.body:
                self.statement(stmt, inner)
        elif isinstance(node, ast.Assign):
            self._assign(node.targets[0], node.value, scope, None)
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            self._assign(node.target, node.value, scope, node.annotation)
        elif isinstance(node, ast.Return) and node.value is not None and scope.function is not None:
            self.walk(node.value, f"{scope.function}.return", named=True)
        else:  # if / for / while / with / try / match: the same scope
            if isinstance(node, ast.If):  # stage boundaries: `if x > 0.33: lr_max = 1.51`
                self._operands(node.test, f"{scope.function}.if" if scope.function else "if")
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.stmt):
                    self.statement(child, scope)
                elif isinstance(child, (ast.excepthandler, ast.match_case)):
                    for stmt in child.body:
                        self.statement(stmt, scope)

    def _skip_decorators(self, node: ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        for decorator in node.decorator_list:
            self.skipped.update(id(n) for n in ast.walk(decorator) if isinstance(n, ast.Call))

    def _defaults(self, fn: ast.FunctionDef | ast.AsyncFunctionDef, name: str) -> None:
        a = fn.args
        positional = a.posonlyargs + a.args
        pairs = list(zip(positional[len(positional) - len(a.defaults):], a.defaults))
        pairs += [(p, d) for p, d in zip(a.kwonlyargs, a.kw_defaults) if d is not None]
        for param, default in pairs:
            self.walk(default, f"{name}.{param.arg}", named=True, annotation=param.annotation)

    def _assign(self, target: ast.expr, value: ast.expr, scope: _Scope, annotation: ast.expr | None) -> None:
        if isinstance(target, (ast.Tuple, ast.List)):  # `a, b, c = (3.4445, -4.775, 2.0315)`
            if isinstance(value, (ast.Tuple, ast.List)) and len(value.elts) == len(target.elts):
                for t, v in zip(target.elts, value.elts):
                    self._assign(t, v, scope, None)
            return
        root = self._root(target, scope)
        if root is not None:
            self.walk(value, root, named=True, annotation=annotation)

    def _root(self, target: ast.expr, scope: _Scope) -> str | None:
        if isinstance(target, ast.Name):
            return ".".join(scope.classes + (target.id,)) if scope.in_class else target.id
        if isinstance(target, ast.Attribute):
            if scope.classes and isinstance(target.value, ast.Name) and target.value.id == scope.self_name:
                return ".".join(scope.classes + (target.attr,))
            base = self._root(target.value, scope)
            return None if base is None else f"{base}.{target.attr}"
        if isinstance(target, ast.Subscript):
            base = self._root(target.value, scope)
            segment = _key_segment(target.slice)
            return None if base is None or segment is None else base + segment
        return None

    # --- values -----------------------------------------------------------------------

    def walk(self, node: ast.expr, path: str, named: bool, annotation: ast.expr | None = None) -> None:
        """Record the knobs of a value at `path`; `named` is false until a name is on the way."""
        literal = _literal(node)
        if literal is not None:
            if named:
                value, kind = literal
                if kind == "int" and _declared_float(annotation):
                    kind = "float"
                self.found.append(_Found(path, node, value, kind))
        elif isinstance(node, (ast.List, ast.Tuple)):
            numbers = [_number(e) for e in node.elts]
            if named and numbers and all(v is not None for v in numbers):
                container = tuple if isinstance(node, ast.Tuple) else list
                self.found.append(_Found(path, node, container(numbers), container.__name__))
            for i, element in enumerate(node.elts):
                if not isinstance(element, ast.Starred):
                    self.walk(element, f"{path}[{i}]", named)
        elif isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values):
                segment = _key_segment(key)
                if segment is not None:
                    self.walk(value, path + segment, named=True)
        elif isinstance(node, ast.Call):
            self.reached.add(id(node))
            fields = self.annotations.get((_callee(node.func) or "").rpartition(".")[2], {})
            for kw in node.keywords:
                if kw.arg is not None:
                    self.walk(kw.value, f"{path}.{kw.arg}", named=True, annotation=fields.get(kw.arg))
            for i, arg in enumerate(node.args):
                if not isinstance(arg, ast.Starred):
                    self.walk(arg, f"{path}({i})", named)
        elif named:
            self._operands(node, path)

    def _operands(self, node: ast.expr, path: str) -> None:
        """The numbers inside an expression, each as `path{text}`; a call inside keeps its keywords
        for its own address (its callee), and indexes, lambdas, f-strings and dicts are skipped."""
        if isinstance(node, (ast.Lambda, ast.JoinedStr, ast.Dict)):
            return
        value = _number(node)
        if value is not None:
            kind = "int" if isinstance(value, int) else "float"
            self.found.append(_Found(path, node, value, kind, in_expression=True))  # `{text}` added once located
        elif isinstance(node, ast.Call):
            for child in (node.func, *node.args):
                self._operands(child, path)
        elif isinstance(node, ast.Subscript):
            self._operands(node.value, path)
        else:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.expr):
                    self._operands(child, path)


class _Spans:
    """Character offsets of ast positions (1-based lines, UTF-8 byte columns) in the source."""

    def __init__(self, source: str):
        self.source = source
        self.shift = len(source) - len(source.removeprefix(BOM))  # ast saw the text without its BOM
        self.starts = [0] + [m.end() for m in re.finditer(r"\r\n|\r|\n", source)]

    def span(self, node: ast.expr) -> tuple[int, int]:
        return self._offset(node.lineno, node.col_offset), self._offset(node.end_lineno, node.end_col_offset)

    def _offset(self, line: int, byte_col: int) -> int:
        start = self.starts[line - 1] + (self.shift if line == 1 else 0)
        if self.source[start : start + byte_col].isascii():
            return start + byte_col
        end = self.starts[line] if line < len(self.starts) else len(self.source)
        return start + len(self.source[start:end].encode()[:byte_col].decode())

    def line_col(self, offset: int) -> tuple[int, int]:
        line = bisect_right(self.starts, offset)
        return line, offset - self.starts[line - 1]
