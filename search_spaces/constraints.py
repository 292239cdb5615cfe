"""Feasibility of one proposal before the trainer sees it: its `KEY=VALUE` overrides as a tree,
the stage-list rules every stage list obeys, and the space's own constraints.

A constraint reads dotted keys; where a key's value is a stage list, the constraint is checked
at every stage boundary, since each stretch of training between boundaries must satisfy it.
"""

from __future__ import annotations

import math
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, PrivateAttr

from search_spaces import expressions as ex
from search_spaces.report import quoted
from search_spaces.yaml_data import YamlDataError, load

WORLD_SIZE = "world_size"
_DOTTED_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_ADDRESS = re.compile(r"[^\s=]+")


def is_dotted_key(key: object) -> bool:
    """Whether `key` is a trainer key: names joined by dots, e.g. optim.muon_lr."""
    return isinstance(key, str) and _DOTTED_KEY.fullmatch(key) is not None


def is_script_address(key: object) -> bool:
    """Whether `key` can be a script knob's address (`TRAINING_STAGES[1].lr_mul`): no spaces or `=`;
    whether the script has that knob is the script backend's to say."""
    return isinstance(key, str) and _ADDRESS.fullmatch(key) is not None


def key_problem(key: object, script: bool, example: str) -> str | None:
    """Why `key` cannot name what a space sets — a dotted trainer key, or for a script base a
    knob address — or None when it can; `example` is a dotted key to suggest."""
    if script:
        return None if is_script_address(key) else f"{quoted(key)} is not a knob address; expected one `speedrun script knobs` lists"
    return None if is_dotted_key(key) else f"{quoted(key)} is not a dotted trainer key; expected names joined by dots, e.g. {example}"


def proposal_tree(overrides: list[str]) -> tuple[dict[str, Any], list[str]]:
    """The overrides as nested trainer values, and the items that could not be placed in it."""
    problems: list[str] = []
    tree: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        try:
            value = load(raw) if sep else None
        except YamlDataError as e:
            problems.append(f"{quoted(key)}: value is not YAML data ({e})")
            continue
        if not sep or not is_script_address(key.strip()):
            problems.append(f"'{item}': expected KEY=VALUE")
            continue
        if not _set_dotted(tree, key.strip(), value):
            problems.append(f"{key}: a parent of this key is set to a value, not a section")
    return tree, problems


def _set_dotted(tree: dict[str, Any], key: str, value: Any) -> bool:
    parts = key.split(".")
    node = tree
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            return False
        node = child
    node[parts[-1]] = value
    return True


def stage_problems(value: Any, path: str) -> list[str]:
    """Why each stage list in `value` (a proposal tree) is not increasing fractions ending at 1.0."""
    stages = _stage_list(value)
    if stages is not None:
        untils = [s.get("until") for s in stages]
        shown = f"{path}: stage 'until' values {untils}"
        if not all(isinstance(u, (int, float)) and not isinstance(u, bool) and 0 < u <= 1 for u in untils):
            return [f"{shown}: expected fractions of training in (0, 1]"]
        if any(b <= a for a, b in zip(untils, untils[1:])):
            return [f"{shown} do not strictly increase; expected each stage to end after the one before"]
        if untils[-1] != 1:
            return [f"{shown}: the last stage must end at until: 1.0"]
        return []
    if isinstance(value, dict):
        out: list[str] = []
        for k, v in value.items():
            out += stage_problems(v, f"{path}.{k}" if path else str(k))
        return out
    return []


class Constraint(BaseModel):
    """One rule a proposal must satisfy: `divisible` (key by a product) or `expr` (true/false)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["divisible", "expr"]
    expr: str | None = None  # kind expr
    key: str | None = None  # kind divisible: this value ...
    by: list[str | int] = []  # ... is divisible by the product of these
    message: str | None = None
    where: str = ""  # file:line

    _trees: list[ex.Node] = PrivateAttr(default_factory=list)

    def model_post_init(self, __context: Any) -> None:
        if self.kind == "expr":
            self._trees = [ex.parse(self.expr or "")]
        else:
            self._trees = [ex.parse(str(self.key))] + [ex.parse(str(b)) for b in self.by]

    @property
    def text(self) -> str:
        if self.kind == "expr":
            return str(self.expr)
        return f"{self.key} divisible by {' * '.join(map(str, self.by))}"

    def keys(self) -> list[str]:
        out: list[str] = []
        for t in self._trees:
            out += [k for k in ex.keys(t) if k not in out]
        return out

    def check(self, tree: dict[str, Any], world_size: int) -> str | None:
        """None when `tree` (nested trainer overrides) satisfies this rule, else why not."""
        values: dict[str, Any] = {WORLD_SIZE: world_size}
        staged: dict[str, list[tuple[float, Any]]] = {}
        for key in self.keys():
            if key == WORLD_SIZE:
                continue
            found, value = _lookup(tree, key)
            if not found:
                return self._say(f"'{key}' has no value in this proposal")
            stages = _as_stages(value)
            if stages is not None:
                staged[key] = stages
            else:
                values[key] = value
        points = sorted({0.0} | {u for st in staged.values() for u, _ in st[:-1] if isinstance(u, (int, float))})
        for p in points:
            env = dict(values)
            for key, st in staged.items():
                env[key] = _stage_at(st, p)
            try:
                problem = self._evaluate(env)
            except ex.EvaluationError as e:
                problem = f"could not be evaluated: {e}"
            if problem:
                at = f" at progress {p:g}" if staged else ""
                return self._say(problem + at)
        return None

    def _evaluate(self, env: dict[str, Any]) -> str | None:
        if self.kind == "expr":
            if ex.evaluate(self._trees[0], env):
                return None
            shown = ", ".join(f"{_indexed(k)} = {quoted(env[k])}" for k in self.keys() if k in env)
            return f"'{self.expr}' is false ({shown})"
        value = ex.evaluate(self._trees[0], env)
        factors = [ex.evaluate(t, env) for t in self._trees[1:]]
        nums = [value, *factors]
        if not all(isinstance(n, (int, float)) and not isinstance(n, bool) for n in nums):
            return f"expected numbers, got {self.key} = {quoted(value)} and factors {quoted(factors)}"
        product = math.prod(factors)
        if product == 0:
            return f"the product of {self.by} is 0"
        if value % product == 0:
            return None
        return (
            f"{self.key} = {value} is not divisible by {' x '.join(map(str, self.by))}"
            f" = {' x '.join(map(str, factors))} = {product}"
        )

    def _say(self, problem: str) -> str:
        note = f" ({self.message})" if self.message else ""
        return f"constraint at {self.where}{note}: {problem}"


def _indexed(key: str) -> str:
    """'schedule.batch.0.tokens' -> 'schedule.batch[0].tokens' (as constraints write it)."""
    return re.sub(r"\.(\d+)(?=\.|$)", r"[\1]", key)


def _lookup(tree: Any, key: str) -> tuple[bool, Any]:
    node = tree
    for part in key.split("."):
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            return False, None
    return True, node


def _stage_list(value: Any) -> list[dict] | None:
    if isinstance(value, dict) and isinstance(value.get("stages"), list):
        value = value["stages"]
    if isinstance(value, list) and value and all(isinstance(s, dict) and "until" in s for s in value):
        return value
    return None


def _as_stages(value: Any) -> list[tuple[float, Any]] | None:
    stages = _stage_list(value)
    if stages is None or not all("tokens" in s for s in stages):
        return None
    return [(s["until"], s["tokens"]) for s in stages]


def _stage_at(stages: list[tuple[float, Any]], progress: float) -> Any:
    for until, tokens in stages:
        if isinstance(until, (int, float)) and progress < until:
            return tokens
    return stages[-1][1]
