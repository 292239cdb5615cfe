"""Validation of a loaded space document: every section, the constraints, the checks across
sections and, given the hook, the trainer's own checks. Each problem is reported at the line of
its key path, and validation goes on, so one run lists every problem in the file."""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from pydantic import BaseModel, ValidationError

from search_spaces import expressions as ex
from search_spaces.constraints import WORLD_SIZE, Constraint, is_dotted_key, key_problem, proposal_tree
from search_spaces.names import name_problem
from search_spaces.param_validation import read_params
from search_spaces.params import representative_values
from search_spaces.report import Report, did_you_mean, quoted
from search_spaces.schema import (
    STEPS_KEY,
    BaseSpec,
    Budget,
    Objective,
    Resources,
    SamplerSpec,
    SchedulerSpec,
    SweepSpace,
)
from search_spaces.trainer_hook import hook_message
from search_spaces.yaml_data import Path_, to_yaml

_TOP = (
    "name", "description", "base", "params", "constraints", "objective", "budget", "sampler", "scheduler", "resources"
)
_REQUIRED = ("base", "params", "budget")
MAX_GRID = 100_000


# ---------------------------------------------------------------------------------------
# Sections


def _section(report: Report, model: type[BaseModel], raw: Any, path: Path_) -> Any:
    """`raw` validated as `model`; None, with each of pydantic's errors reported, when it is not."""
    try:
        return model.model_validate(raw)
    except ValidationError as e:
        for err in e.errors():
            _report_pydantic(report, model, err, path)
        return None


def _report_pydantic(report: Report, model: type[BaseModel], err: Any, path: Path_) -> None:
    """One of pydantic's errors, reworded as `got X; expected Y` at its key path."""
    loc = path + tuple(err["loc"])
    got = err.get("input")
    if err["type"] == "extra_forbidden":
        known = list(model.model_fields)
        report.unknown_key(loc, known, f"one of {', '.join(known)}")
    elif err["type"] == "missing":
        report.error(loc[:-1], f"missing key '{loc[-1]}'; it is required")
    elif err["type"] == "literal_error":
        options = re.findall(r"'([^']*)'", err.get("ctx", {}).get("expected", ""))
        hint = did_you_mean(got, options)
        report.error(loc, f"got {quoted(got)}; expected one of {', '.join(options)}{hint}")
    else:
        msg = str(err["msg"]).removeprefix("Value error, ")
        msg = msg.removeprefix("Input should be ")
        shown = f"got {quoted(got)}; expected " if not isinstance(got, dict) else ""
        report.error(loc, f"{shown}{msg}")


def validate(report: Report, data: Any) -> SweepSpace | None:
    """The space a loaded document describes; None when any section is wrong (all reported)."""
    if not isinstance(data, dict):
        kind = "an empty file" if data is None else f"a {type(data).__name__}"
        report.error((), f"got {kind}; expected a mapping with keys {', '.join(_REQUIRED)} (and optionally others)")
        return None
    for key in data:
        if key not in _TOP:
            report.unknown_key((key,), _TOP, f"one of {', '.join(_TOP)}")
    for key in _REQUIRED:
        if key not in data:
            report.error((), f"missing key '{key}'; it is required")
    n_errors = len(report.errors)

    name, description = read_name(report, data)
    base = read_base(report, data["base"]) if "base" in data else None
    # a script base that failed to load (not found, say) still makes its params knob addresses
    script = base.is_script if base is not None else _names_script(data.get("base"))
    params = read_params(report, data["params"], script=script) if "params" in data else None
    constraints = _constraints(report, data.get("constraints"))
    objective = read_section(report, Objective, data.get("objective"), ("objective",), "metric")
    budget = read_section(report, Budget, data["budget"], ("budget",), None) if "budget" in data else None
    sampler = read_section(report, SamplerSpec, data.get("sampler"), ("sampler",), "name")
    scheduler = read_section(report, SchedulerSpec, data.get("scheduler"), ("scheduler",), "name")
    resources = read_section(report, Resources, data.get("resources"), ("resources",), None)
    sections = (base, params, constraints, objective, budget, sampler, scheduler, resources)
    if len(report.errors) > n_errors or any(s is None for s in sections):
        return None
    space = SweepSpace(
        name=name,
        description=description,
        source=report.file.resolve(),
        base=base,
        params=params,
        constraints=constraints,
        objective=objective,
        budget=budget,
        sampler=sampler,
        scheduler=scheduler,
        resources=resources,
    )
    _cross_checks(report, space)
    return space


def _names_script(raw: Any) -> bool:
    return (isinstance(raw, str) and raw.endswith(".py")) or (isinstance(raw, dict) and "script" in raw)


def read_name(report: Report, data: dict) -> tuple[str, str]:
    """`name` (default: the file's stem; it names the study and the experiment) and `description`."""
    name = data.get("name", report.file.stem)
    problem = name_problem(name)
    if problem:
        report.error(("name",), f"{problem} (it names the study)")
    description = data.get("description", "") or ""
    if not isinstance(description, str):
        report.error(("description",), f"got {quoted(description)}; expected text")
    return name, description


def read_section(report: Report, model: type[BaseModel], raw: Any, path: Path_, short: str | None) -> Any:
    """A section given as a mapping, as a bare name (`sampler: tpe`), or left out."""
    if raw is None:
        raw = {}
    elif isinstance(raw, str) and short is not None:
        raw = {short: raw}
    elif not isinstance(raw, dict):
        report.error(path, f"got {quoted(raw)}; expected a mapping" + (f" or a {short}" if short else ""))
        return None
    return _section(report, model, raw, path)


def read_base(report: Report, raw: Any) -> BaseSpec | None:
    """The `base` section (`base: tiny` or a mapping); a config path resolved from the file's folder."""
    path: Path_ = ("base",)
    if isinstance(raw, str):  # `base: tiny` means a preset with no overrides
        raw = {"script": raw} if raw.endswith(".py") else {"config": raw}
    if not isinstance(raw, dict):
        report.error(path, f"got {quoted(raw)}; expected a mapping with 'config' (a preset or a config path) or "
                           "'script' (a train_gpt.py), and 'set'")
        return None
    if "script" in raw:
        return _script_base(report, raw, path)
    base = _section(report, BaseSpec, raw, path)
    if base is None:
        return None
    if base.python is not None:
        report.error(path + ("python",), "an interpreter applies to a script base (`script: train_gpt.py`); "
                                         "a trainer config runs under speedrun's own")
        return None
    ok = _set_keys_ok(report, base, path)
    config = base.config
    if config.endswith(".py"):
        report.error(path + ("config",), f"'{config}' is a script; expected `script: {config}` for a train_gpt.py")
        return None
    if "/" in config or config.endswith((".yaml", ".yml")) or config.startswith("~"):
        given = Path(config).expanduser()
        candidates = [given] if given.is_absolute() else [report.file.parent / given, given]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            report.error(
                path + ("config",),
                f"no such config file '{config}' (looked in {', '.join(str(c) for c in candidates)}); "
                "expected a preset name (e.g. tiny, gpt2_124m) or a YAML path relative to this space file",
            )
            return None
        base = BaseSpec(config=str(found.resolve()), set=base.set, env=base.env)
    return base if ok else None


def _script_base(report: Report, raw: dict, path: Path_) -> BaseSpec | None:
    """`base: {script: PATH, set: {ADDRESS: value}, env: {...}}`: a script, found from the file's folder."""
    if "config" in raw:
        report.error(path, "both 'config' and 'script'; expected one: a trainer config or a script")
        return None
    script = raw["script"]
    if not isinstance(script, str) or not script.endswith(".py"):
        report.error(path + ("script",), f"got {quoted(script)}; expected the path of a .py training script")
        return None
    given = Path(script).expanduser()
    candidates = [given] if given.is_absolute() else [report.file.parent / given, given]
    found = next((c for c in candidates if c.is_file()), None)
    if found is None:
        report.error(path + ("script",), f"no such script '{script}' (looked in {', '.join(str(c) for c in candidates)})")
        return None
    base = _section(report, BaseSpec, {**{k: v for k, v in raw.items() if k != "script"}, "config": str(found.resolve())}, path)
    if base is None:
        return None
    if base.python is not None:
        python = _interpreter(report, base.python, path + ("python",))
        if python is None:
            return None
        base = base.model_copy(update={"python": python})
    return base if _set_keys_ok(report, base, path) else None


def _interpreter(report: Report, python: str, path: Path_) -> str | None:
    """`base.python`: an interpreter, or a virtual environment's folder, found from the file's folder."""
    given = Path(python).expanduser()
    candidates = [given] if given.is_absolute() else [report.file.parent / given, given]
    for candidate in candidates:
        exe = candidate / "bin" / "python" if candidate.is_dir() else candidate
        if exe.is_file() and os.access(exe, os.X_OK):
            return str(exe.absolute())
    report.error(path, f"no Python interpreter at '{python}' (looked in {', '.join(str(c) for c in candidates)}); "
                       "expected an executable or a virtual environment's folder")
    return None


def _set_keys_ok(report: Report, base: BaseSpec, path: Path_) -> bool:
    """Report each key of `base.set` that cannot name what it sets; whether there was none."""
    problems = [(key, key_problem(key, base.is_script, "data.val_tokens")) for key in base.set]
    for key, problem in problems:
        if problem:
            report.error(path + ("set", key), problem)
    return not any(problem for _, problem in problems)


def _constraints(report: Report, raw: Any) -> list[Constraint] | None:
    path: Path_ = ("constraints",)
    if raw is None:
        return []
    if not isinstance(raw, list):
        report.error(path, f"got {quoted(raw)}; expected a list of constraints (divisible: ..., expr: ...)")
        return None
    out: list[Constraint] = []
    ok = True
    for i, item in enumerate(raw):
        c = _constraint(report, item, path + (i,))
        if c is None:
            ok = False
        else:
            out.append(c)
    return out if ok else None


def _constraint(report: Report, item: Any, path: Path_) -> Constraint | None:
    where = f"{report.file}:{report.line(path)}"
    if isinstance(item, str):
        item = {"expr": item}
    if not isinstance(item, dict):
        report.error(path, f"got {quoted(item)}; expected {{divisible: {{key: K, by: [...]}}}} or {{expr: \"...\"}}")
        return None
    kinds = [k for k in ("divisible", "expr") if k in item]
    for k in item:
        if k not in ("divisible", "expr", "message"):
            report.unknown_key(path + (k,), ("divisible", "expr", "message"), "divisible or expr (and message)")
            return None
    if len(kinds) != 1:
        report.error(path, "expected exactly one of divisible, expr")
        return None
    message = item.get("message")
    if message is not None and not isinstance(message, str):
        report.error(path + ("message",), f"got {quoted(message)}; expected text")
        return None
    if kinds[0] == "expr":
        text = item["expr"]
        try:
            ex.parse(text)
        except ex.ExpressionError as e:
            report.error(path + ("expr",), f"{e}")
            return None
        return Constraint(kind="expr", expr=text, message=message, where=where)
    body, p = item["divisible"], path + ("divisible",)
    if not isinstance(body, dict) or set(body) != {"key", "by"}:
        report.error(p, f"got {quoted(body)}; expected {{key: <dotted key>, by: [world_size, <key or integer>, ...]}}")
        return None
    key, by = body["key"], body["by"]
    by = by if isinstance(by, list) else [by]
    if not is_dotted_key(key):
        report.error(p + ("key",), f"got {quoted(key)}; expected a dotted trainer key")
        return None
    for j, b in enumerate(by):
        bad = isinstance(b, bool) or not isinstance(b, (int, str))
        if not bad and isinstance(b, str):
            try:
                ex.parse(b)
            except ex.ExpressionError:
                bad = True
        if bad:
            report.error(p + ("by", j), f"got {quoted(b)}; expected world_size, a dotted key, an integer or an expression")
            return None
    return Constraint(kind="divisible", key=key, by=by, message=message, where=where)


# ---------------------------------------------------------------------------------------
# Checks across sections


def _cross_checks(report: Report, space: SweepSpace) -> None:
    if space.base.is_script and space.budget.steps is not None:
        report.error(("budget", "steps"), "a script has no schedule.num_iterations; expected its own iterations "
                                          "knob in base.set (e.g. Hyperparameters.num_iterations: 300)")
    _overlaps(report, space)
    if space.sampler.name == "grid":
        _grid_checks(report, space)
    needs = {"cmaes": "cmaes", "qmc": "scipy"}.get(space.sampler.name)
    if needs and importlib.util.find_spec(needs) is None:
        report.error(
            ("sampler",),
            f"the {space.sampler.name} sampler needs the '{needs}' package, which is not installed; "
            f"expected `pip install {needs}` or another sampler",
        )
    _constraint_keys(report, space)
    if space.scheduler.name == "horizon":
        _horizon_checks(report, space)
    if space.scheduler.name == "asha" and space.budget.seeds > 1:
        report.error(("scheduler", "name"), "asha stops a run on its own intermediate val loss, but with budget.seeds > 1 "
                                            "a config's evidence is all of its seeds' runs; expected none or horizon")
    elif space.scheduler.name == "asha" and space.objective.metric == "steps_to_target":
        report.error(("scheduler", "name"), "steps_to_target is the optimization track's score, and its rules forbid "
                                            "per-run early stopping on val loss (ASHA); expected none, or horizon "
                                            "(each of its runs runs whole, and every run of a rung is treated alike)")


def _horizon_checks(report: Report, space: SweepSpace) -> None:
    if space.base.is_script:
        report.error(("scheduler", "name"), "horizon needs a trainer config base: a script's schedule cannot be "
                                            "compressed; expected asha or none")
    need = space.scheduler.full_length_configs()
    if space.budget.trials < need:
        report.error(("budget", "trials"), f"{space.budget.trials} configs never reach the last rung: with "
                     f"{len(space.scheduler.rungs)} rungs and reduction_factor {space.scheduler.reduction_factor:g} "
                     f"one config in {need} does; expected trials >= {need}")
    searched = space.distributions()
    _detrend_checks(report, space, searched)
    if space.scheduler.retune is not None:
        _retune_checks(report, space, searched)


def _not_searched(report: Report, path: Path_, name: str, candidates: list[str]) -> None:
    report.error(path, f"'{name}' is not a searched number of this space; expected one of: {', '.join(candidates)}"
                       f"{did_you_mean(name, candidates)}")


def _detrend_checks(report: Report, space: SweepSpace, searched: dict[str, Any]) -> None:
    """A detrended parameter is a searched number of the space (a trend in a choice means nothing);
    `searched`: the space's distributions."""
    numbers = [n for n, d in searched.items() if not isinstance(d, optuna.distributions.CategoricalDistribution)]
    for i, name in enumerate(space.scheduler.detrend):
        if name not in numbers:
            _not_searched(report, ("scheduler", "detrend", i), name, numbers)


def _retune_checks(report: Report, space: SweepSpace, searched: dict[str, Any]) -> None:
    """A retuned parameter is a searched float of the space whose range lies above 0 (the line
    search multiplies it); a held one is retuned and held inside its range. `searched`: the
    space's distributions."""
    for i, name in enumerate(space.scheduler.retune.params):
        d = searched.get(name)
        path = ("scheduler", "retune", "params", i)
        if d is None:
            _not_searched(report, path, name, [n for n, x in searched.items()
                                               if isinstance(x, optuna.distributions.FloatDistribution)])
        elif not isinstance(d, optuna.distributions.FloatDistribution):
            report.error(path, f"'{name}' is not a float range; the retune multiplies a float, e.g. {{float: [0.001, 0.1]}}")
        elif d.low <= 0:
            report.error(path, f"'{name}' ranges from {d.low:g}; the retune multiplies it, so expected a range above 0")
    for name, value in space.scheduler.retune.hold.items():
        path, d = ("scheduler", "retune", "hold", name), searched.get(name)
        if name not in space.scheduler.retune.params:
            report.error(path, f"'{name}' is not retuned; expected one of scheduler.retune.params: "
                               f"{', '.join(space.scheduler.retune.params)}")
        elif isinstance(d, optuna.distributions.FloatDistribution) and not d.low <= value <= d.high:
            report.error(path, f"{value:g} is outside '{name}''s range [{d.low:g}, {d.high:g}]; expected a value in it")


def _fixed_keys(space: SweepSpace | Any) -> list[tuple[str, Path_]]:
    """The trainer keys of `base_overrides()`, in its order, each with its path in the file (of a
    sweep space or an ablation)."""
    keys: list[tuple[str, Path_]] = [(k, ("base", "set", k)) for k in space.base.set]
    if space.budget.steps is not None:
        keys.append((STEPS_KEY, ("budget", "steps")))
    return keys


def _set_keys(space: SweepSpace) -> list[tuple[str, Path_]]:
    """Every trainer key the space sets, each with its path in the file."""
    return _fixed_keys(space) + [(k, ("params", k)) for k in space.params]


def _overlaps(report: Report, space: SweepSpace) -> None:
    keys = _set_keys(space)
    for j, (b, pb) in enumerate(keys):
        for a, pa in keys[:j]:
            if a == b or a.startswith(b + ".") or b.startswith(a + "."):
                report.error(
                    pb,
                    f"'{b}' overlaps '{a}' (line {report.line(pa)}); expected each trainer key set in one place",
                )
                break


def _grid_checks(report: Report, space: SweepSpace) -> None:
    size = 1
    for key, p in space.params.items():
        for name, leaf in p.leaves(key):
            if leaf.searched and leaf.grid() is None:
                report.error(
                    ("params", key),
                    f"'{name}' is a continuous float; the grid sampler needs finite values: expected {{choice: "
                    f"[...]}}, {{int: [lo, hi], step: k}}, {{float: [lo, hi], step: s}} or {{fixed: v}}",
                )
                size = 0
            elif leaf.searched:
                size *= len(leaf.grid())
    if size > MAX_GRID:
        report.error(("sampler",), f"the grid has {size} points; expected at most {MAX_GRID}")
    elif size and space.budget.trials > size:
        report.error(
            ("budget", "trials"),
            f"{space.budget.trials} trials exceed the grid's {size} points; expected trials <= {size}",
        )


def _constraint_keys(report: Report, space: SweepSpace) -> None:
    set_keys = [k for k, _ in _set_keys(space)]
    searched = [name for name, leaf in space.leaves() if leaf.searched]
    for i, c in enumerate(space.constraints):
        path: Path_ = ("constraints", i)
        unknown = [
            n for n in c.keys() if n != WORLD_SIZE and not any(n == k or n.startswith(k + ".") for k in set_keys)
        ]
        for n in unknown:
            report.error(
                path,
                f"reads '{n}', which this space does not set; expected world_size or a key set in base.set, "
                f"params or budget.steps (a preset's own values are not visible here: add the key to base.set)"
                f"{did_you_mean(n, [*set_keys, WORLD_SIZE])}",
            )
        if unknown:
            continue
        free = [
            n for n in c.keys() if any(s == n or s.startswith(n + ".") or n.startswith(s + ".") for s in searched)
        ]
        if not free:  # every value it reads is fixed: it holds for all proposals or for none
            tree, _ = proposal_tree(space._overrides_of(representative_values(space.params, 0)))
            problem = c.check(tree, space.resources.world_size)
            if problem:
                report.error(
                    path,
                    f"every proposal breaks it: {problem.split(': ', 1)[-1]}; "
                    "expected a constraint the fixed values satisfy",
                )


# ---------------------------------------------------------------------------------------
# The trainer's own checks, through the hook


def check_with_trainer(report: Report, space: SweepSpace, check: Callable[[str, list[str]], object],
                       at_load: Callable[[str, list[str]], object] | None = None) -> None:
    """Ask the trainer (through the hook) about the base config, each base override, then each
    param at its low and high ends and at each choice, unless the space already has errors; then
    run the hook's load-time check `at_load`, when it has one, on each base override."""
    if not report.errors:
        _ask_trainer(report, space, check)
    if at_load is not None:
        check_at_load(report, space, at_load)


def check_at_load(report: Report, space: SweepSpace | Any, at_load: Callable[[str, list[str]], object]) -> None:
    """The hook's load-time check (search_spaces/trainer_hook.py) on each base override alone (of a
    sweep space or an ablation), its message reported as it is, at the override's line."""
    for item, (_, path) in zip(space.base_overrides(), _fixed_keys(space)):
        try:
            at_load(space.base.config, [item])
        except Exception as e:  # whatever the hook raises for bad input
            report.error(path, hook_message(e, [item]))


def _ask_trainer(report: Report, space: SweepSpace, check: Callable[[str, list[str]], object]) -> None:
    config = space.base.config

    def rejects(overrides: list[str]) -> str | None:
        try:
            check(config, overrides)
        except Exception as e:  # whatever the hook raises for bad input
            return hook_message(e, overrides)
        return None

    problem = rejects([])
    if problem:
        report.error(("base", "config"), f"the trainer rejects config '{space.base.config}': {problem}")
        return
    base: list[str] = []  # the base overrides the trainer accepts, each on its own
    for item, (_, path) in zip(space.base_overrides(), _fixed_keys(space)):
        problem = rejects([item])
        if problem:
            report.error(path, f"the trainer rejects {quoted(item)}: {problem}")
        else:
            base.append(item)
    if not report.errors:
        problem = rejects(base)
        if problem:
            report.error(("base", "set"), f"the trainer rejects these overrides together: {problem}")
            return
    for key, p in space.params.items():
        for k in range(max(len(leaf.reps()) for _, leaf in p.leaves(key))):
            values = representative_values(space.params, k)
            item = f"{key}={to_yaml(p.assemble(values, key))}"
            problem = rejects([*base, item])
            if problem:
                report.error(("params", key), f"the trainer rejects {quoted(item)}: {problem}")
                break
