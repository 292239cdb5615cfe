"""The schema of a sweep space: its sections and `SweepSpace`, which asks Optuna for proposals,
turns each into trainer overrides and says which cannot run. `load_space` builds one.

Grammar (every top-level key except `base`, `params` and `budget` is optional)::

    name: lr_proxy                 # sweep name (Optuna study, MLflow experiment); default: file stem
    description: free text

    base:
      config: gpt2_124m            # a trainer preset name, or a YAML path relative to this file
      set:                         # fixed trainer overrides, dotted key -> any YAML value
        data.val_tokens: 1048576
        schedule.seq_len: [{until: 1.0, tokens: 32768}]
    # or a modded-nanogpt-style script folder, run unedited but for the literals the trial sets:
    #   base: {script: train_gpt.py, env: {DATA_PATH: data}, set: {Hyperparameters.val_tokens: 1048576},
    #          python: ~/envs/record/bin/python}     # optional: the record's own interpreter
    # keys are then the script's knob addresses (`speedrun script knobs train_gpt.py`), e.g.
    # `TRAINING_STAGES[1].lr_mul`, or `FILE:ADDRESS` in a module it imports from its folder
    # (`triton_kernels.py:FusedSoftcappedCrossEntropy.forward.A`); budget.steps does not apply
    # (set the script's iterations knob)

    params:                        # dotted trainer key -> distribution (one per key)
      optim.muon_lr:  {float: [0.02, 0.1], log: true}       # float, uniform or log; optional step
      optim.adam_lr:  {float: [0.003, 0.02], log: true}
      schedule.lr.warmup_frac: {float: [0.0, 0.1]}
      schedule.lr.cooldown_frac: {float: [0.2, 0.7], step: 0.05}
      eval.every:     {int: [25, 100], step: 25}            # int, optional step / log
      optim.adam_betas: {choice: [[0.8, 0.95], [0.9, 0.95]]}  # any YAML values
      model.x0_mix:   {fixed: true}                         # a constant (a bare scalar or list too)
      schedule.window:                                      # schedule family: linear(start, end)
        linear: {start: 0, end: {int: [1024, 2304], step: 128}}
      schedule.batch:                                       # schedule family: a stage list
        stages:
          - {until: {float: [0.2, 0.5]}, tokens: {choice: [131072, 196608]}}
          - {until: 1.0, tokens: 262144}                   # the last stage ends at until: 1.0
      # {stages: [...], kind: stages} gives the window form {kind: stages, stages: [...]}

    constraints:                   # a proposal that breaks one is rejected (reported as infeasible)
      - divisible: {key: schedule.batch, by: [world_size, schedule.seq_len]}
      - expr: "schedule.lr.warmup_frac + schedule.lr.cooldown_frac <= 1"
        message: warmup and cooldown must fit in the run     # optional
      - "optim.adam_lr <= optim.muon_lr"                    # a bare string is an expr
      - "schedule.batch[0].tokens <= schedule.batch[1].tokens"  # stage numbers by index

    objective: {metric: final_val_loss, target: 3.28, direction: minimize}
                                   # metric: final_val_loss | time_to_target | steps_to_target
                                   # steps_to_target: the earliest val step whose mean over the
                                   # seeds passes (target - mean) * n**0.5 >= margin (default 0.004)
    budget: {trials: 24, steps: 300, time_s: 900, seeds: 1}
                                   # steps -> schedule.num_iterations; time_s: per-run limit;
                                   # seeds: runs per config (seed 0..k-1; a script reads
                                   # $SPEEDRUN_SEED), its objective from all of them
    sampler: {name: tpe, seed: 0, startup_trials: 8}       # tpe | random | grid | cmaes | qmc
    scheduler: {name: asha, grace: 0.5, reduction_factor: 2, max_t: 1.0}   # or none
                                   # grace / max_t: fractions of each trial's own schedule
    # or horizon halving over complete runs: {name: horizon, rungs: [1/9, 1/3, 1],
    #                                         reduction_factor: 3, promotion: sync,  # or async
    #                                         detrend: [optim.adam_lr],              # optional
    #                                         audit: 2,                              # optional
    #                                         retune: {params: [optim.adam_lr], factor: 2, runs: 2,
    #                                                  hold: {optim.adam_lr: 0.008}}}  # hold: optional
    resources: {gpus: 1, cpus: 8}  # per trial; world_size = max(gpus, 1)

`sampler`, `scheduler` and `objective` also take a bare name (`sampler: random`).

Searched numbers are named after where their value goes: `optim.muon_lr`, `schedule.window.end`,
`schedule.batch.0.until`, `schedule.window.stages.1.tokens` (window stages). A stage list's
`until` values must strictly increase; the last is fixed at 1.0, the others lie in (0, 1). A
proposal whose sampled `until`s do not increase is reported by `violations()`, never crashed on.

Constraints use a small expression grammar (see `search_spaces.expressions`): numbers, dotted
keys the space sets (base.set, params or budget.steps), `world_size`, arithmetic, comparisons,
and/or/not, min/max/abs. Keys whose value is a stage list are checked at every stage boundary.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from fractions import Fraction
from pathlib import Path
from typing import Any, ClassVar, Literal

import optuna
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from search_spaces.constraints import Constraint, proposal_tree, stage_problems
from search_spaces.params import FixedParam, Param
from search_spaces.trainer_hook import hook_message
from search_spaces.yaml_data import to_yaml

STEPS_KEY = "schedule.num_iterations"  # budget.steps sets this trainer key
FIDELITY = "fidelity"  # a proposal's horizon (scheduler: horizon), next to its params


# ---------------------------------------------------------------------------------------
# The sections


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class BaseSpec(_Section):
    """What every trial starts from: a trainer preset or config file, or a train_gpt.py-style
    script (`base: {script: PATH}`, patched per trial), then fixed overrides."""

    config: str  # a preset name, or an absolute path once loaded (a .py path: a script)
    set: dict[str, Any] = {}
    env: dict[str, str] = {}  # environment of every run (a script's DATA_PATH, say)
    python: str | None = None  # a script's interpreter (a record's own virtual environment); default speedrun's

    @property
    def is_script(self) -> bool:
        """Trials patch and run a script; keys are its knob addresses (`speedrun script knobs`)."""
        return self.config.endswith(".py")


class Objective(_Section):
    """What the sweep minimises, from each trial's val events."""

    metric: Literal["final_val_loss", "time_to_target", "steps_to_target"] = "final_val_loss"
    target: float = Field(3.28, gt=0)  # val loss that time_to_target / steps_to_target wait for
    # steps_to_target: the earliest val step whose mean over a config's seeds passes
    # (target - mean) * n**0.5 >= margin; 0.004 is the optimization track's validity rule
    # (records/track_3_optimization/README.md: a one-sided z-test at p < .001, sigma = 0.0013)
    margin: float = Field(0.004, ge=0)
    direction: Literal["minimize"] = "minimize"

    @field_validator("direction", mode="before")
    @classmethod
    def _spelling(cls, v: Any) -> Any:
        return "minimize" if v == "minimise" else v


class Budget(_Section):
    trials: int = Field(ge=1)
    steps: int | None = Field(None, ge=1)  # -> schedule.num_iterations
    time_s: float | None = Field(None, gt=0)  # wall-clock limit per run, enforced by the driver
    seeds: int = Field(1, ge=1, le=100)  # runs per config (seeds 0..k-1), its objective from all of them


class SamplerSpec(_Section):
    name: Literal["tpe", "random", "grid", "cmaes", "qmc"] = "tpe"
    seed: int | None = None
    startup_trials: int | None = Field(None, ge=0)  # tpe / cmaes: random trials before the model


class RetuneSpec(_Section):
    """After horizon halving, a line search at full length (`scheduler.retune`): for each listed
    parameter in turn, the best full-length run so far is run again with that parameter multiplied
    by `factor`, and again while that improves; if the first step up does not, divided instead.
    At most `runs` runs per parameter, within the parameter's range. For parameters whose best
    value shifts with the run's length, which the shorter rungs chose them at (e.g. learning rates).
    `hold`: some of `params` kept at these values through the halving, so that rungs which favour
    another value of them rank configs on the other parameters alone; their line search starts there."""

    params: list[str]
    factor: float = Field(2.0, gt=1)
    runs: int = Field(2, ge=1)
    hold: dict[str, float] = {}

    @field_validator("params")
    @classmethod
    def _some(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("at least one searched parameter, e.g. [optim.adam_lr]")
        return v

    def max_runs(self) -> int:
        """The most runs the retune can add."""
        return len(self.params) * self.runs


class SchedulerSpec(_Section):
    """How trials are cut short or lengthened. `asha`: early stopping, `grace` and `max_t` being
    fractions of each trial's own schedule. `horizon`: successive halving over complete runs at
    shorter horizons (`rungs`: fractions of the run, the last 1.0); the best 1/reduction_factor
    of each rung's finished runs are run again, from scratch, at the next rung's length: as soon as
    they are among the best (`promotion: async`, as in ASHA), or once every run of the rung has
    finished (`sync`, classic successive halving: exactly the planned runs, a barrier per rung).
    `detrend` (horizon only) ranks the runs of each rung below the last by their loss less its
    linear trend in those parameters (log-scaled where their range is). `audit` (horizon only)
    runs that many configs the lowest rung did not promote at full length too, spread over its
    ranking, as evidence of whether that ranking holds. `retune` (horizon only) adds a full-length
    line search over some parameters at the end."""

    name: Literal["none", "asha", "horizon"] = "none"
    grace: float = Field(0.5, gt=0, le=1)
    reduction_factor: float = Field(2.0, gt=1)
    max_t: float = Field(1.0, gt=0, le=1)
    rungs: list[float] = [0.25, 0.5, 1.0]
    promotion: Literal["async", "sync"] = "async"
    detrend: list[str] = []
    audit: int = Field(0, ge=0)
    retune: RetuneSpec | None = None

    _ONLY: ClassVar[dict[str, set[str]]] = {"asha": {"grace", "max_t"},
                                            "horizon": {"rungs", "promotion", "detrend", "audit", "retune"}}

    @field_validator("rungs", mode="before")
    @classmethod
    def _fractions(cls, v: Any) -> Any:
        """`1/9` is exact where 0.111 is not: rungs may be written as fractions."""
        if not isinstance(v, list):
            return v
        return [_fraction(x) if isinstance(x, str) else x for x in v]

    @field_validator("rungs")
    @classmethod
    def _rungs(cls, v: list[float]) -> list[float]:
        if len(v) < 2:
            raise ValueError("at least two horizons, e.g. [0.25, 0.5, 1.0]")
        if any(not 0 < f <= 1 for f in v):
            raise ValueError("fractions of the run in (0, 1]")
        if any(b <= a for a, b in zip(v, v[1:])):
            raise ValueError("strictly increasing horizons")
        if v[-1] != 1.0:
            raise ValueError("a last rung of 1.0 (the full run the best config is chosen from)")
        return v

    @model_validator(mode="after")
    def _check(self) -> SchedulerSpec:
        given = self.model_fields_set - {"name"}
        foreign = sorted(k for k in given if k != "reduction_factor" and k not in self._ONLY.get(self.name, set()))
        if self.name == "none" and given:
            raise ValueError(f"{', '.join(sorted(given))}: only for asha or horizon; expected name: asha or horizon, or no settings")
        if foreign:
            owner = " / ".join(n for n in ("asha", "horizon") if set(foreign) & self._ONLY[n])
            raise ValueError(f"{', '.join(foreign)}: only for {owner}, not {self.name}")
        if self.grace > self.max_t:
            raise ValueError(f"grace {self.grace} exceeds max_t {self.max_t}; expected grace <= max_t")
        return self

    def full_length_configs(self) -> int:
        """Configs a horizon sweep must propose for one of them to reach the last rung."""
        return math.ceil(self.reduction_factor ** (len(self.rungs) - 1) - 1e-9)


def _fraction(text: str) -> float:
    """`a/b` (or a number written as a string) as a float."""
    try:
        return float(Fraction(text.replace(" ", "")))
    except (ValueError, ZeroDivisionError):
        raise ValueError("fractions of the run written as numbers or as a/b, e.g. [1/9, 1/3, 1]") from None


class Resources(_Section):
    gpus: int = Field(0, ge=0)  # per trial, all on one node; >1 runs torchrun
    cpus: float = Field(1.0, gt=0)

    @property
    def world_size(self) -> int:
        return max(self.gpus, 1)


def base_overrides(base: BaseSpec, budget: Budget) -> list[str]:
    """`base.set` and `budget.steps` as trainer `KEY=VALUE` overrides (sweeps and ablations alike)."""
    out = [f"{k}={to_yaml(v)}" for k, v in base.set.items()]
    if budget.steps is not None:
        out.append(f"{STEPS_KEY}={budget.steps}")
    return out


# ---------------------------------------------------------------------------------------
# The space


class SweepSpace(BaseModel):
    """A validated sweep space. Build it with `load_space`."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: ClassVar[str] = "sweep"

    name: str
    description: str = ""
    source: Path | None = None  # the space file
    base: BaseSpec
    params: dict[str, Param]
    constraints: list[Constraint] = []
    objective: Objective = Objective()
    budget: Budget
    sampler: SamplerSpec = SamplerSpec()
    scheduler: SchedulerSpec = SchedulerSpec()
    resources: Resources = Resources()

    _check: Callable[[str, list[str]], object] | None = PrivateAttr(default=None)
    # (base config, overrides, fraction) -> the overrides that run them at that horizon; the
    # caller's (the trainer's at_horizon), as the trainer's checks are
    _horizon: Callable[[str, list[str], float], list[str]] | None = PrivateAttr(default=None)

    # --- Optuna ------------------------------------------------------------------------

    def leaves(self) -> list[tuple[str, Any]]:
        """(name, distribution) of every number in `params`, searched or fixed, in file order."""
        out: list[tuple[str, Any]] = []
        for key, p in self.params.items():
            out += p.leaves(key)
        return out

    def distributions(self) -> dict[str, optuna.distributions.BaseDistribution]:
        """The Optuna distribution of every searched number, by name (for enqueue/add_trial)."""
        return {name: leaf.distribution() for name, leaf in self.leaves() if leaf.searched}

    def define_by_run(self, trial: optuna.Trial, hold: Mapping[str, float] | None = None) -> dict[str, Any]:
        """Suggest every searched number on `trial` (an Optuna trial or Ray Tune's captor of
        one), those named in `hold` (floats) as that one value; return the constant params
        ({key: value} of each `fixed` param)."""
        hold = hold or {}
        for name, leaf in self.leaves():
            if name in hold:  # one value's range, so that Optuna records it like the others
                trial.suggest_float(name, hold[name], hold[name], log=leaf.log)
            elif leaf.searched:
                leaf.suggest(trial, name)
        return {key: p.value for key, p in self.params.items() if isinstance(p, FixedParam)}

    def planned_trials(self) -> list[dict[str, Any]]:
        """Proposals to queue before the sampler's own: none (an ablation queues all its runs)."""
        return []

    def make_sampler(self) -> optuna.samplers.BaseSampler:
        """The Optuna sampler the space asks for, seeded with `sampler.seed`."""
        s = self.sampler
        if s.name == "tpe":
            startup = 10 if s.startup_trials is None else s.startup_trials
            return optuna.samplers.TPESampler(seed=s.seed, n_startup_trials=startup)
        if s.name == "random":
            return optuna.samplers.RandomSampler(seed=s.seed)
        if s.name == "grid":
            return optuna.samplers.GridSampler(self._grid(), seed=s.seed)
        if s.name == "cmaes":
            startup = 1 if s.startup_trials is None else s.startup_trials
            return optuna.samplers.CmaEsSampler(seed=s.seed, n_startup_trials=startup)
        with warnings.catch_warnings():  # "QMCSampler is experimental": chosen on purpose here
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.QMCSampler(qmc_type="sobol", scramble=True, seed=s.seed)

    def _grid(self) -> dict[str, list[Any]]:
        grid: dict[str, list[Any]] = {}
        for name, leaf in self.leaves():
            if leaf.searched:
                values = leaf.grid()
                if values is None:
                    raise ValueError(f"'{name}' has no finite grid")
                grid[name] = values
        return grid

    # --- Trainer overrides -------------------------------------------------------------

    def base_overrides(self) -> list[str]:
        """`base.set` and `budget.steps` as trainer `KEY=VALUE` overrides."""
        return base_overrides(self.base, self.budget)

    def with_horizon(self, horizon: Callable[[str, list[str], float], list[str]]) -> SweepSpace:
        """This space, with `horizon(base config, overrides, fraction)` giving the extra overrides
        that run a proposal at a shorter horizon (a `fidelity` key next to its params)."""
        out = self.model_copy()
        out._horizon = horizon
        return out

    def overrides(self, params: dict[str, Any]) -> list[str]:
        """The trainer `KEY=VALUE` overrides of one trial: base overrides, then every param in
        file order (fixed ones from the space, searched ones from `params`, which holds what
        `define_by_run` suggested, keyed by name; other keys are ignored), then, when `params`
        has a `fidelity` below 1, what runs it at that horizon (`with_horizon`). Schedule
        families become one YAML value each. Raises ValueError when a searched name is missing."""
        values: dict[str, Any] = {}
        for name, leaf in self.leaves():
            if not leaf.searched:
                values[name] = leaf.value
            elif name not in params:
                raise ValueError(f"no value for '{name}'; expected every name define_by_run suggested")
            else:
                values[name] = leaf.coerce(params[name])
        out = self._overrides_of(values)
        fidelity = params.get(FIDELITY)
        if fidelity is None or fidelity == 1.0:
            return out
        if self._horizon is None:
            raise ValueError(f"fidelity {fidelity}: this space was given no horizon hook (with_horizon)")
        return out + self._horizon(self.base.config, out, fidelity)

    def _overrides_of(self, values: dict[str, Any]) -> list[str]:
        out = self.base_overrides()
        for key, p in self.params.items():
            out.append(f"{key}={to_yaml(p.assemble(values, key))}")
        return out

    def violations(self, overrides: list[str]) -> list[str]:
        """Why one proposal (its trainer overrides) cannot run; empty when it can. Checks stage
        lists (increasing `until`s ending at 1.0), the constraints, and then, if `load_space`
        was given `check_overrides`, the trainer's own validation. Never raises on bad values."""
        tree, problems = proposal_tree(overrides)
        problems += stage_problems(tree, "")
        for c in self.constraints:
            problem = c.check(tree, self.resources.world_size)
            if problem:
                problems.append(problem)
        if not problems and self._check is not None:
            try:
                self._check(self.base.config, list(overrides))
            except Exception as e:  # the hook's own error type (InputError, pydantic, ...)
                problems.append(f"the trainer rejects this proposal: {hook_message(e, overrides)}")
        return problems
