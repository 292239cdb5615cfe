"""Ablations: load the file (with the command line's seeds, GPUs or leave-one-out arms); the
sweep driver runs them (`run_sweep`: every (arm, seed) is a queued trial).

Leave-one-out: a candidate config that stacks several changes on the ablation's base becomes
the baseline arm, and each change is reverted in an arm of its own (`revert_<key>`), so a
change that neither helps nor hurts shows up before a record is claimed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from orchestrator.targets import check_overrides, config_leaves
from search_spaces import AblationSpace, Resources, load_ablation
from search_spaces.yaml_data import to_yaml
from trainer.config import load_config
from trainer.errors import InputError


def changes_from_base(base_config: str, base_set: dict[str, Any], candidate: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the candidate's values, the base's values) of every trainer key on which they differ."""
    base = config_leaves(load_config(base_config, [f"{k}={to_yaml(v)}" for k, v in base_set.items()]).model_dump(mode="json"))
    cand = config_leaves(load_config(str(candidate)).model_dump(mode="json"))
    differ = [k for k in cand if cand[k] != base.get(k)]
    return {k: cand[k] for k in differ}, {k: base[k] for k in differ}


def leave_one_out_arms(changes: dict[str, Any], base_values: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """One variant per change, which sets that key back to the base's value."""
    return {f"revert_{key}": {key: base_values[key]} for key in changes}


def prepare_ablation(spec: str | Path, seeds: int | None = None, gpus_per_trial: int | None = None,
                     leave_one_out: str | Path | None = None) -> AblationSpace:
    """Load and validate an ablation (SpaceError) with the command line's options applied."""
    if seeds is not None and seeds < 2:
        raise InputError(f"--seeds {seeds}: expected at least 2 (one seed gives no estimate of the noise)")
    baseline = variants = None
    if leave_one_out is not None:
        plain = load_ablation(spec, seeds=seeds)  # the base the candidate is compared with
        if not Path(leave_one_out).is_file():
            raise InputError(f"--leave-one-out {leave_one_out}: no such file; expected a trainer config YAML "
                             "(e.g. sweeps/NAME/best.yaml)")
        baseline, base_values = changes_from_base(plain.base.config, plain.base.set, leave_one_out)
        for key in ("runtime.seed", "schedule.num_iterations"):  # set per run by the ablation
            baseline.pop(key, None)
        if not baseline:
            raise InputError(f"--leave-one-out {leave_one_out}: the config does not differ from the ablation's base "
                             f"({plain.base.config}); nothing to leave out")
        variants = leave_one_out_arms(baseline, base_values)
    space = load_ablation(spec, check_overrides=check_overrides, seeds=seeds, baseline=baseline, variants=variants)
    if gpus_per_trial is not None:
        if gpus_per_trial < 0:
            raise InputError(f"--gpus-per-trial {gpus_per_trial}: expected 0 or more")
        space = space.model_copy(update={"resources": Resources(gpus=gpus_per_trial, cpus=space.resources.cpus)})
    return space


def describe_arms(space: AblationSpace) -> list[str]:
    """One line per arm: its name and what it sets."""
    return [f"{arm}: {json.dumps(ov) if ov else '(base)'}" for arm, ov in space.arms.items()]
