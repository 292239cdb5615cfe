"""The `params` section: each dotted trainer key's distribution, read into a param model, with
every problem reported at its line. A stage list's `until`s and `tokens` are checked here too, so
a space whose stage lists can never be valid is rejected before any trial runs."""

from __future__ import annotations

import math
from typing import Any

from search_spaces.constraints import key_problem
from search_spaces.params import ChoiceParam, FixedParam, FloatParam, IntParam, LinearParam, StagesParam, StageSpec
from search_spaces.report import Report, did_you_mean, quoted
from search_spaces.yaml_data import Path_, to_yaml

_KINDS = ("float", "int", "choice", "fixed", "linear", "stages")
_LEAF_KINDS = ("float", "int", "choice", "fixed")
_MODIFIERS: dict[str, tuple[str, ...]] = {
    "float": ("log", "step"),
    "int": ("log", "step"),
    "choice": (),
    "fixed": (),
    "linear": (),
    "stages": ("kind",),
}
_EXAMPLES = "{float: [lo, hi]}, {int: [lo, hi]}, {choice: [a, b]}, {fixed: v}"


def read_params(report: Report, raw: Any, script: bool = False) -> dict[str, Any] | None:
    """The `params` section as {dotted key: param}; None when anything in it is wrong."""
    path: Path_ = ("params",)
    if not isinstance(raw, dict) or not raw:
        report.error(
            path,
            f"got {quoted(raw)}; expected a mapping of dotted trainer keys to distributions, e.g. optim.muon_lr: "
            f"{{float: [0.02, 0.08], log: true}}",
        )
        return None
    out: dict[str, Any] = {}
    ok = True
    for key, value in raw.items():
        p = path + (key,)
        problem = key_problem(key, script, "optim.muon_lr")
        if problem:
            report.error(p, problem)
            ok = False
            continue
        param = _param(report, value, p, top=True)
        if param is None:
            ok = False
        else:
            out[key] = param
    return out if ok else None


def _param(report: Report, raw: Any, path: Path_, top: bool) -> Any:
    """A key's whole value (`top`), or one number inside a schedule family; None when wrong."""
    allowed = _KINDS if top else _LEAF_KINDS
    if not isinstance(raw, dict):
        if top:
            return FixedParam(value=raw)
        number = _number(raw)
        if number is None:
            report.error(path, f"got {quoted(raw)}; expected a number or a distribution ({_EXAMPLES})")
            return None
        return FixedParam(value=number)
    kinds = [k for k in raw if k in _KINDS]
    if not kinds:
        others = [k for k in raw if k not in ("log", "step", "kind")] or list(raw)
        if not others:
            report.error(path, f"empty mapping; expected a distribution: {_EXAMPLES}")
        else:
            bad = others[0]
            hint = did_you_mean(bad, allowed)
            if not hint and top:
                hint = " (a constant mapping is written {fixed: {...}})"
            report.error(path + (bad,), f"unknown distribution '{bad}'; expected one of {', '.join(allowed)}{hint}")
        return None
    if len(kinds) > 1:
        report.error(path, f"gives {' and '.join(kinds)}; expected exactly one of {', '.join(allowed)}")
        return None
    kind = kinds[0]
    if kind not in allowed:
        report.error(
            path + (kind,),
            f"a '{kind}' family cannot be nested here; expected a number or one of {', '.join(allowed)}",
        )
        return None
    extra = [k for k in raw if k != kind and k not in _MODIFIERS[kind]]
    for k in extra:
        options = [kind, *_MODIFIERS[kind]]
        report.error(
            path + (k,),
            f"unknown key '{k}' for a {kind} distribution; expected {', '.join(options)}"
            f"{did_you_mean(k, options)}",
        )
    if extra:
        return None
    return _READERS[kind](report, raw, path)


def _bounds(report: Report, raw: Any, path: Path_, integer: bool) -> tuple[Any, Any] | None:
    if not isinstance(raw, list) or len(raw) != 2:
        report.error(path, f"got {quoted(raw)}; expected [low, high]")
        return None
    out = []
    for i, v in enumerate(raw):
        if integer:
            if not isinstance(v, int) or isinstance(v, bool):
                report.error(path + (i,), f"got {quoted(v)}; expected an integer")
                return None
            out.append(v)
        else:
            n = _number(v)
            if n is None:
                report.error(path + (i,), f"got {quoted(v)}; expected a number")
                return None
            out.append(float(n))
    return out[0], out[1]


def _flag(report: Report, raw: dict, key: str, path: Path_) -> bool | None:
    v = raw.get(key, False)
    if not isinstance(v, bool):
        report.error(path + (key,), f"got {quoted(v)}; expected true or false")
        return None
    return v


def _read_float(report: Report, raw: dict, path: Path_) -> FloatParam | None:
    n = len(report.errors)
    bounds = _bounds(report, raw["float"], path + ("float",), integer=False)
    log = _flag(report, raw, "log", path)
    step = raw.get("step")
    if step is not None:
        step = _number(step)
        if step is None or step <= 0:
            report.error(path + ("step",), f"got {quoted(raw['step'])}; expected a positive number")
    if len(report.errors) > n or bounds is None:
        return None
    lo, hi = bounds
    if lo >= hi:
        report.error(
            path + ("float",),
            f"low {lo:g} >= high {hi:g}; expected low < high (use {{fixed: {lo:g}}} for a constant)",
        )
    elif log and lo <= 0:
        report.error(
            path + ("float",),
            f"log scale needs low > 0, got low {lo:g}; expected a positive range such as [1.0e-4, 0.1]",
        )
    if step is not None and log:
        report.error(path + ("step",), "step and log cannot be combined; expected one of them")
    elif step is not None and lo < hi:
        k = (hi - lo) / step
        if abs(k - round(k)) > 1e-9 * max(1.0, k) or round(k) < 1:
            report.error(
                path + ("step",),
                f"high - low = {hi - lo:g} is not a whole number of steps of {step:g}; "
                "expected a step that divides the range",
            )
    if len(report.errors) > n:
        return None
    return FloatParam(low=lo, high=hi, log=bool(log), step=None if step is None else float(step))


def _read_int(report: Report, raw: dict, path: Path_) -> IntParam | None:
    n = len(report.errors)
    bounds = _bounds(report, raw["int"], path + ("int",), integer=True)
    log = _flag(report, raw, "log", path)
    step = raw.get("step", 1)
    if not isinstance(step, int) or isinstance(step, bool) or step < 1:
        report.error(path + ("step",), f"got {quoted(step)}; expected a positive integer")
    if len(report.errors) > n or bounds is None:
        return None
    lo, hi = bounds
    if lo >= hi:
        report.error(
            path + ("int",),
            f"low {lo} >= high {hi}; expected low < high (use {{fixed: {lo}}} for a constant)",
        )
    elif log and lo < 1:
        report.error(path + ("int",), f"log scale needs low >= 1, got low {lo}; expected a positive range")
    elif log and step != 1:
        report.error(path + ("step",), "step and log cannot be combined; expected one of them")
    elif (hi - lo) % step:
        report.error(
            path + ("step",),
            f"high - low = {hi - lo} is not a multiple of step {step}; "
            f"expected e.g. high = {lo + (hi - lo) // step * step}",
        )
    if len(report.errors) > n:
        return None
    return IntParam(low=lo, high=hi, log=bool(log), step=step)


def _read_choice(report: Report, raw: dict, path: Path_) -> ChoiceParam | None:
    values = raw["choice"]
    if not isinstance(values, list) or not values:
        report.error(path + ("choice",), f"got {quoted(values)}; expected a non-empty list of values")
        return None
    seen: dict[str, int] = {}
    for i, v in enumerate(values):
        text = to_yaml(v) + type(v).__name__
        if text in seen:
            report.error(
                path + ("choice", i),
                f"duplicate value {quoted(v)} (also item {seen[text]}); expected distinct values",
            )
            return None
        seen[text] = i
    return ChoiceParam(values=values)


def _read_fixed(report: Report, raw: dict, path: Path_) -> FixedParam:
    return FixedParam(value=raw["fixed"])


def _read_linear(report: Report, raw: dict, path: Path_) -> LinearParam | None:
    body, p = raw["linear"], path + ("linear",)
    if not isinstance(body, dict):
        report.error(p, f"got {quoted(body)}; expected {{start: <number or distribution>, end: <number or distribution>}}")
        return None
    if not _has_exactly(report, body, p, ("start", "end")):
        return None
    start = _param(report, body["start"], p + ("start",), top=False)
    end = _param(report, body["end"], p + ("end",), top=False)
    if start is None or end is None:
        return None
    return LinearParam(start=start, end=end)


def _read_stages(report: Report, raw: dict, path: Path_) -> StagesParam | None:
    body, p = raw["stages"], path + ("stages",)
    n = len(report.errors)
    tag = raw.get("kind")
    if tag is not None and tag != "stages":
        report.error(
            path + ("kind",),
            f"got {quoted(tag)}; expected 'stages' (emits {{kind: stages, stages: [...]}}) or no kind (emits the list)",
        )
    if not isinstance(body, list) or not body:
        report.error(p, f"got {quoted(body)}; expected a list of {{until: <fraction>, tokens: <count>}} stages")
        return None
    stages: list[StageSpec] = []
    for i, item in enumerate(body):
        sp = p + (i,)
        if not isinstance(item, dict):
            report.error(
                sp,
                f"got {quoted(item)}; expected {{until: <fraction or distribution>, tokens: <count or distribution>}}",
            )
            continue
        if not _has_exactly(report, item, sp, ("until", "tokens")):
            continue
        until = _param(report, item["until"], sp + ("until",), top=False)
        tokens = _param(report, item["tokens"], sp + ("tokens",), top=False)
        if until is not None and tokens is not None:
            last = i == len(body) - 1
            _check_until(report, until, sp + ("until",), last)
            _check_tokens(report, tokens, sp + ("tokens",))
            stages.append(StageSpec(until=until, tokens=tokens))
    if len(report.errors) > n:
        return None
    _check_increasing(report, stages, p)
    if len(report.errors) > n:
        return None
    return StagesParam(stages=stages, tagged=tag == "stages")


_READERS = {
    "float": _read_float,
    "int": _read_int,
    "choice": _read_choice,
    "fixed": _read_fixed,
    "linear": _read_linear,
    "stages": _read_stages,
}


def _has_exactly(report: Report, body: dict, path: Path_, keys: tuple[str, ...]) -> bool:
    """Whether `body` has exactly `keys`; reports each unknown key, then each missing one."""
    n = len(report.errors)
    for k in body:
        if k not in keys:
            report.unknown_key(path + (k,), keys)
    for k in keys:
        if k not in body:
            report.error(path, f"missing key '{k}'; expected {' and '.join(keys)}")
    return len(report.errors) == n


def _check_until(report: Report, leaf: Any, path: Path_, last: bool) -> None:
    if last:
        if not (isinstance(leaf, FixedParam) and leaf.value == 1):
            report.error(path, "the last stage must end at until: 1.0 (the end of training); expected the number 1.0")
        return
    if isinstance(leaf, IntParam):
        report.error(
            path,
            "'until' is a fraction of training; expected a number or {float: [lo, hi]} / {choice: [...]}",
        )
        return
    span = leaf.span()
    if span is None:
        report.error(path, f"got {quoted(leaf.reps())}; expected fractions of training")
    elif not (0 < span[0] and span[1] < 1):
        report.error(
            path,
            f"spans [{span[0]:g}, {span[1]:g}]; "
            "expected fractions strictly between 0 and 1 before the last stage",
        )


def _check_tokens(report: Report, leaf: Any, path: Path_) -> None:
    if isinstance(leaf, FloatParam):
        report.error(path, "'tokens' is a count; expected an integer or {int: [lo, hi], step: k} / {choice: [...]}")
        return
    values = [leaf.low] if isinstance(leaf, IntParam) else leaf.reps()
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values):
        report.error(path, f"got {quoted(values if len(values) > 1 else values[0])}; expected positive integers")


def _check_increasing(report: Report, stages: list[StageSpec], path: Path_) -> None:
    """Some choice of the `until`s must strictly increase (else every proposal is infeasible)."""
    prev = 0.0
    for i, s in enumerate(stages[:-1]):
        leaf = s.until
        if isinstance(leaf, ChoiceParam):
            later = [v for v in leaf.values if v > prev]
            low = min(later) if later else None
        else:
            lo, hi = leaf.span()
            low = max(lo, prev) if hi > prev else None
        if low is None:
            report.error(
                path + (i, "until"),
                f"can never exceed the earlier stage's until ({prev:g}); "
                "expected ranges that allow increasing fractions",
            )
            return
        prev = low


def _number(v: Any) -> float | int | None:
    """A YAML number (also '1e-3', which YAML 1.1 reads as a string); None when not a number."""
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return v if math.isfinite(v) else None
    if isinstance(v, str):
        try:
            f = float(v)
        except ValueError:
            return None
        return f if math.isfinite(f) else None
    return None
