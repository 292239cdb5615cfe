"""Sweep spaces: YAML files that say what a sweep searches, and the loader that validates them.

    from search_spaces import load_space
    from orchestrator.targets import check_overrides  # the caller's hook (or trainer.config.load_config):
    space = load_space("search_spaces/smoke.yaml",      # this package imports none of trainer,
                       check_overrides=check_overrides)   # orchestrator and analysis
    study = optuna.create_study(sampler=space.make_sampler())
    trial = study.ask()
    constants = space.define_by_run(trial)
    overrides = space.overrides({**trial.params, **constants})   # trainer --set KEY=VALUE
    problems = space.violations(overrides)                       # [] when it can run

Ablations (a baseline and variants run with the same seeds) are `load_ablation` files, whose
grammar is in `search_spaces.ablation`. The sweep grammar is documented in `search_spaces.schema`
and in search_spaces/README.md, which
also says what each module of this package does.
"""

from search_spaces.ablation import AblationSpace, example_ablations, load_ablation
from search_spaces.constraints import Constraint
from search_spaces.loader import SPACES_DIR, example_spaces, load_space
from search_spaces.params import ChoiceParam, FixedParam, FloatParam, IntParam, LinearParam, StagesParam
from search_spaces.report import SpaceError
from search_spaces.schema import (
    FIDELITY,
    STEPS_KEY,
    BaseSpec,
    Budget,
    Objective,
    Resources,
    RetuneSpec,
    SamplerSpec,
    SchedulerSpec,
    SweepSpace,
)
from search_spaces.trainer_hook import OverrideCheck

__all__ = [
    "AblationSpace",
    "FIDELITY",
    "SPACES_DIR",
    "STEPS_KEY",
    "BaseSpec",
    "Budget",
    "ChoiceParam",
    "Constraint",
    "FixedParam",
    "FloatParam",
    "IntParam",
    "LinearParam",
    "Objective",
    "OverrideCheck",
    "Resources",
    "RetuneSpec",
    "SamplerSpec",
    "SchedulerSpec",
    "SpaceError",
    "StagesParam",
    "SweepSpace",
    "example_ablations",
    "example_spaces",
    "load_ablation",
    "load_space",
]
