"""Ablation files: a baseline and named variants, each run with the same seeds.

Grammar (`base`, `variants` and `seeds` are required)::

    name: tiny_switches            # MLflow experiment and Optuna study; default: file stem
    description: free text
    base:                          # as in a sweep space: a preset or config file, then overrides
      config: tiny
      set: {eval.every: 6}
    baseline: {}                   # overrides of the baseline arm on top of base (default none)
    variants:                      # arm name -> what it changes from the baseline (dotted key -> value);
                                   # {} runs the baseline's seeds only (replicates)
      no_value_embeds: {model.value_embeds: false}
      muon_lr_high: {optim.muon_lr: 0.08}
    seeds: 3                       # seeds 0, 1, 2 for every arm; or an explicit list [0, 7, 11]
    objective: {metric: final_val_loss}
    budget: {steps: 12, time_s: 300}   # per run: steps -> schedule.num_iterations; time limit
    resources: {gpus: 0, cpus: 2}

Each run is one (arm, seed): its overrides are base.set, budget.steps, the baseline's overrides
with the variant's on top, then `runtime.seed=<seed>`. A script base (`base: {script: ...}`)
gets no seed override: its seeds are replicates that differ by the script's own randomness
(a script may read its seed from $SPEEDRUN_SEED). Runs are queued seed by seed, every arm once per seed, with the
arm order rotated from one seed to the next, so a slow node or a clock that drifts over the
ablation touches every arm alike rather than biasing the arm that always ran first or last.
The sweep driver runs an ablation like a sweep whose proposals are all queued in advance
(`planned_trials()`): the same Ray trials, Optuna study, MLflow runs, failures and resume.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import optuna
from pydantic import BaseModel, ConfigDict, PrivateAttr

from search_spaces.constraints import key_problem, proposal_tree, stage_problems
from search_spaces.loader import find_file, read_file
from search_spaces.names import NAME_RULE, is_name
from search_spaces.report import Report, quoted
from search_spaces.schema import (
    STEPS_KEY,
    BaseSpec,
    Budget,
    Objective,
    Resources,
    SamplerSpec,
    SchedulerSpec,
    base_overrides,
)
from search_spaces.trainer_hook import OverrideCheck, hook_message, load_time_check, two_argument
from search_spaces.validation import check_at_load, read_base, read_name, read_section
from search_spaces.yaml_data import Path_, to_yaml

ABLATIONS_DIR = Path(__file__).parent / "ablations"
BASELINE = "baseline"
ARM, SEED = "arm", "seed"  # the two values each queued trial carries
SEED_KEY = "runtime.seed"
MAX_SEEDS = 1000
_TOP = ("name", "description", "base", "baseline", "variants", "seeds", "objective", "budget", "resources")
_REQUIRED = ("base", "variants", "seeds")


class AblationSpace(BaseModel):
    """A validated ablation. Build it with `load_ablation`; `run_sweep` runs it."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: ClassVar[str] = "ablation"

    name: str
    description: str = ""
    source: Path | None = None
    base: BaseSpec
    arms: dict[str, dict[str, Any]]  # arm name -> all its overrides (baseline's + its own); baseline first
    seeds: list[int]
    objective: Objective = Objective()
    budget: Budget  # trials = arms x seeds
    resources: Resources = Resources()
    sampler: SamplerSpec = SamplerSpec(name="random", seed=0)  # only if the queue ran dry: it never does
    scheduler: SchedulerSpec = SchedulerSpec()  # no early stopping: every seed runs to the end

    _check: Any = PrivateAttr(default=None)

    def planned_trials(self) -> list[dict[str, Any]]:
        """Every (arm, seed) run in queue order: by seed, the arm order rotated each seed."""
        names = list(self.arms)
        out = []
        for i, seed in enumerate(self.seeds):
            shift = i % len(names)
            for arm in names[shift:] + names[:shift]:
                out.append({ARM: arm, SEED: seed})
        return out

    def define_by_run(self, trial: optuna.Trial) -> dict[str, Any]:
        """Ask for an arm and a seed (queued trials come with both fixed)."""
        trial.suggest_categorical(ARM, list(self.arms))
        # an int range, not a categorical: Optuna refuses a categorical whose choices change,
        # and resuming with more seeds widens this range
        trial.suggest_int(SEED, min(self.seeds), max(self.seeds))
        return {}

    def make_sampler(self) -> optuna.samplers.BaseSampler:
        """Proposals come from the queue; the sampler only draws if the queue runs dry."""
        return optuna.samplers.RandomSampler(seed=self.sampler.seed)

    def base_overrides(self) -> list[str]:
        """`base.set` and `budget.steps` as trainer `KEY=VALUE` overrides."""
        return base_overrides(self.base, self.budget)

    def overrides(self, params: dict[str, Any]) -> list[str]:
        """The trainer overrides of one (arm, seed); ValueError for an unknown arm."""
        arm = params.get(ARM)
        if arm not in self.arms or SEED not in params:
            raise ValueError(f"expected an arm of {', '.join(self.arms)} and a seed; got {params}")
        own = [*self.base_overrides(), *(f"{k}={to_yaml(v)}" for k, v in self.arms[arm].items())]
        # a script has no seed knob of ours: its seeds are replicates, differing by its own randomness
        return own if self.base.is_script else [*own, f"{SEED_KEY}={int(params[SEED])}"]

    def violations(self, overrides: list[str]) -> list[str]:
        """Why one run cannot start (the trainer's own check, when the loader had one)."""
        tree, problems = proposal_tree(overrides)
        problems += stage_problems(tree, "")
        if not problems and self._check is not None:
            try:
                self._check(self.base.config, list(overrides))
            except Exception as e:  # the hook's own error type
                problems.append(f"the trainer rejects this arm: {hook_message(e, overrides)}")
        return problems


def example_ablations() -> dict[str, Path]:
    """The ablation files shipped in search_spaces/ablations, by name."""
    return {p.stem: p for p in sorted(ABLATIONS_DIR.glob("*.yaml"))}


def load_ablation(path: str | Path, check_overrides: OverrideCheck | None = None, seeds: int | None = None,
                  baseline: dict[str, Any] | None = None, variants: dict[str, dict[str, Any]] | None = None) -> AblationSpace:
    """Read and validate an ablation file (or a shipped one's name); every problem in one SpaceError.

    `seeds` replaces the file's seeds with 0..seeds-1; `baseline` and `variants` replace the
    file's (leave-one-out arms). With `check_overrides` the trainer validates each arm.
    """
    file = find_file(path, example_ablations(), "ablation")
    data, report = read_file(file)
    if isinstance(data, dict):
        data = {**data, **({"baseline": baseline} if baseline is not None else {}),
                **({"variants": variants} if variants is not None else {})}
    space = _validate(report, data, seeds)
    if space is not None and check_overrides is not None:
        hook = two_argument(check_overrides)
        made: dict[str, Any] = {}  # what the trainer makes of each arm: the same config twice is caught
        for arm in space.arms:  # here even when the overrides differ (a key set to its default)
            try:
                made[arm] = hook(space.base.config, space.overrides({ARM: arm, SEED: space.seeds[0]}))
            except Exception as e:  # the hook's own error type
                report.error(_arm_path(arm), f"the trainer rejects arm '{arm}': {hook_message(e, [])}")
        if not report.errors and None not in made.values():  # a hook that returns nothing only checks
            _refuse_repeated_arms(report, made)
        at_load = load_time_check(check_overrides)
        if at_load is not None:
            check_at_load(report, space, at_load)
        space._check = hook
    report.raise_if_any()
    assert space is not None
    return space


def _arm_path(arm: str) -> Path_:
    return ("variants", arm) if arm != BASELINE else ("baseline",)


def _refuse_repeated_arms(report: Report, runs: dict[str, Any]) -> None:
    """Report each variant that runs what the baseline or an earlier variant runs (no overrides, or
    a key set to the value it already has): its seeds would measure nothing."""
    seen: list[tuple[str, Any]] = []
    for arm, run in runs.items():
        same = next((other for other, earlier in seen if earlier == run), None)
        if same == BASELINE:
            report.error(_arm_path(arm), f"arm '{arm}' changes nothing: it runs the baseline's config; expected at "
                                         "least one key set to a value other than the baseline's")
        elif same is not None:
            report.error(_arm_path(arm), f"arm '{arm}' runs the same config as arm '{same}'; expected each variant "
                                         "to differ")
        seen.append((arm, run))


def _validate(report: Report, data: Any, seeds: int | None) -> AblationSpace | None:
    if not isinstance(data, dict):
        report.error((), f"got {'an empty file' if data is None else type(data).__name__}; "
                         f"expected a mapping with keys {', '.join(_REQUIRED)}")
        return None
    for key in data:
        if key not in _TOP:
            report.unknown_key((key,), _TOP)
    for key in _REQUIRED:
        if key not in data and not (key == "seeds" and seeds):
            report.error((), f"missing key '{key}'; it is required")
    n_errors = len(report.errors)
    name, description = read_name(report, data)
    base = read_base(report, data["base"]) if "base" in data else None
    script = base is not None and base.is_script
    arms = {BASELINE: _overrides(report, data.get("baseline") or {}, ("baseline",), script)}
    raw_variants = data.get("variants")
    if raw_variants is not None and not isinstance(raw_variants, dict):
        report.error(("variants",), f"got {quoted(raw_variants)}; expected a mapping of arm name -> overrides "
                                    "({} for none: the baseline's seeds only)")
    elif raw_variants:
        for arm, body in raw_variants.items():
            if arm == BASELINE or not is_name(arm):
                report.error(("variants", arm), f"arm name {quoted(arm)}: expected {NAME_RULE}, "
                                                f"not '{BASELINE}' (the baseline arm is `baseline:`)")
            arms[arm] = {**arms[BASELINE], **_overrides(report, body, ("variants", arm), script)}
    _refuse_repeated_arms(report, arms)
    seed_list = list(range(seeds)) if seeds else _seeds(report, data.get("seeds"))
    objective = read_section(report, Objective, data.get("objective"), ("objective",), "metric")
    budget_raw = data.get("budget") or {}
    if not isinstance(budget_raw, dict) or "trials" in budget_raw or "seeds" in budget_raw:
        report.error(("budget",), "expected a mapping of steps and time_s (the number of runs is arms x seeds)")
        budget_raw = {}
    trials = len(arms) * len(seed_list or [0])
    budget = read_section(report, Budget, {**budget_raw, "trials": trials}, ("budget",), None)
    resources = read_section(report, Resources, data.get("resources"), ("resources",), None)
    if len(report.errors) > n_errors or None in (base, objective, budget, resources) or not seed_list:
        return None
    return AblationSpace(name=name, description=description, source=report.file.resolve(), base=base, arms=arms,
                         seeds=seed_list, objective=objective, budget=budget, resources=resources)


def _overrides(report: Report, raw: Any, path: Path_, script: bool) -> dict[str, Any]:
    if not isinstance(raw, dict):
        report.error(path, f"got {quoted(raw)}; expected a mapping of dotted trainer key -> value")
        return {}
    for key in raw:
        problem = key_problem(key, script, "model.value_embeds")
        if problem:
            report.error(path + (key,), problem)
        elif key in (SEED_KEY, STEPS_KEY):
            report.error(path + (key,), f"'{key}' is set per run by the ablation (seeds, budget.steps); remove it here")
    return dict(raw)


def _seeds(report: Report, raw: Any) -> list[int] | None:
    if isinstance(raw, int) and not isinstance(raw, bool) and 1 <= raw <= MAX_SEEDS:
        return list(range(raw))
    if isinstance(raw, list) and raw and all(isinstance(s, int) and not isinstance(s, bool) for s in raw) \
            and len(set(raw)) == len(raw):
        return list(raw)
    if raw is not None:
        report.error(("seeds",), f"got {quoted(raw)}; expected a count (1 to {MAX_SEEDS}) or a list of distinct integers")
    return None
