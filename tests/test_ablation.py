"""Ablation files and leave-one-out arms: what runs, in which order, and the errors a bad file gets.
(The ablation run end to end, killed and resumed, is in tests/test_ablate_run.py.)"""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from orchestrator.ablate import changes_from_base, prepare_ablation
from search_spaces import SpaceError, example_ablations, load_ablation
from trainer.config import load_config

SMALL = """\
base:
  config: tiny
  set: {eval.every: 6}
baseline: {optim.muon_lr: 0.04}
variants:
  no_x0_mix: {model.x0_mix: false}
  lr_high: {optim.muon_lr: 0.08}
seeds: 3
budget: {steps: 12}
"""


def write(tmp_path: Path, text: str, name: str = "ablation.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def errors_of(path: Path) -> str:
    with pytest.raises(SpaceError) as info:
        load_ablation(path, check_overrides=load_config)
    return str(info.value)


@pytest.mark.parametrize("name", sorted(example_ablations()))
def test_shipped_ablations_load_and_every_arm_is_a_valid_trainer_config(name):
    space = load_ablation(name, check_overrides=load_config)
    assert space.budget.trials == len(space.arms) * len(space.seeds)
    for arm in space.arms:
        load_config(space.base.config, space.overrides({"arm": arm, "seed": space.seeds[-1]}))


def test_every_arm_runs_once_per_seed_with_the_arm_order_rotated_from_seed_to_seed(tmp_path):
    space = load_ablation(write(tmp_path, SMALL))
    runs = space.planned_trials()
    assert sorted((r["arm"], r["seed"]) for r in runs) == sorted((a, s) for a in space.arms for s in (0, 1, 2))
    by_seed = [[r["arm"] for r in runs if r["seed"] == s] for s in (0, 1, 2)]
    assert by_seed[0] == ["baseline", "no_x0_mix", "lr_high"]
    assert [order[0] for order in by_seed] == ["baseline", "no_x0_mix", "lr_high"]  # no arm always first


def test_a_variant_is_the_baseline_with_its_own_overrides_on_top(tmp_path):
    space = load_ablation(write(tmp_path, SMALL))
    cfg = load_config(space.base.config, space.overrides({"arm": "no_x0_mix", "seed": 2}))
    assert (cfg.optim.muon_lr, cfg.model.x0_mix, cfg.runtime.seed, cfg.schedule.num_iterations) == (0.04, False, 2, 12)
    cfg = load_config(space.base.config, space.overrides({"arm": "lr_high", "seed": 0}))
    assert (cfg.optim.muon_lr, cfg.model.x0_mix) == (0.08, True)


def test_queued_runs_come_back_from_an_optuna_study_in_queue_order(tmp_path):
    space = load_ablation(write(tmp_path, SMALL))
    study = optuna.create_study(sampler=space.make_sampler())
    for params in space.planned_trials():
        study.enqueue_trial(params)
    asked = []
    for _ in space.planned_trials():
        trial = study.ask()
        space.define_by_run(trial)
        asked.append(trial.params)
    assert asked == space.planned_trials()


def test_seeds_from_the_command_line_replace_the_file_s(tmp_path):
    space = prepare_ablation(write(tmp_path, SMALL), seeds=5)
    assert space.seeds == [0, 1, 2, 3, 4] and space.budget.trials == 15


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (SMALL.replace("seeds: 3", "seeds: 0"), r"ablation.yaml:8: seeds: got 0; expected a count"),
        (SMALL.replace("  lr_high: {optim.muon_lr: 0.08}", "  baseline: {optim.muon_lr: 0.08}"),
         r"ablation.yaml:7: variants.baseline: arm name 'baseline'"),
        (SMALL.replace("model.x0_mix: false", "model.x0_mix: maybe"), r"variants.no_x0_mix: the trainer rejects arm"),
        (SMALL.replace("model.x0_mix", "model x0"), r"ablation.yaml:6: variants.no_x0_mix.model x0: 'model x0' is not a dotted"),
        (SMALL.replace("{optim.muon_lr: 0.08}", "{runtime.seed: 3}"), r"'runtime.seed' is set per run by the ablation"),
        (SMALL.replace("budget: {steps: 12}", "budget: {trials: 4}"), r"ablation.yaml:9: budget: expected a mapping of steps"),
        (SMALL + "sampler: tpe\n", r"ablation.yaml:10: sampler: unknown key 'sampler'"),
        (SMALL.replace("variants:\n  no_x0_mix: {model.x0_mix: false}\n  lr_high: {optim.muon_lr: 0.08}\n", ""),
         r"missing key 'variants'"),
    ],
    ids=["zero-seeds", "variant-named-baseline", "trainer-rejects", "not-dotted", "seed-key", "trials", "unknown", "no-variants"],
)
def test_a_malformed_ablation_is_reported_at_its_line(tmp_path, body, expected):
    import re

    msg = errors_of(write(tmp_path, body))
    assert re.search(expected, msg), msg


def test_leave_one_out_makes_the_candidate_the_baseline_and_reverts_each_change(tmp_path):
    base = load_config("tiny", ["eval.every=6"])
    candidate = base.model_copy(deep=True)
    candidate.optim.muon_lr = 0.07
    candidate.model.x0_mix = False
    cand_file = tmp_path / "best.yaml"
    cand_file.write_text(candidate.to_yaml())
    assert changes_from_base("tiny", {"eval.every": 6}, cand_file) == (
        {"optim.muon_lr": 0.07, "model.x0_mix": False}, {"optim.muon_lr": base.optim.muon_lr, "model.x0_mix": True},
    )
    space = prepare_ablation(write(tmp_path, SMALL), leave_one_out=cand_file)
    assert set(space.arms) == {"baseline", "revert_optim.muon_lr", "revert_model.x0_mix"}
    arm = lambda name: load_config(space.base.config, space.overrides({"arm": name, "seed": 0}))  # noqa: E731
    assert (arm("baseline").optim.muon_lr, arm("baseline").model.x0_mix) == (0.07, False)
    assert (arm("revert_optim.muon_lr").optim.muon_lr, arm("revert_optim.muon_lr").model.x0_mix) == (base.optim.muon_lr, False)
    assert (arm("revert_model.x0_mix").optim.muon_lr, arm("revert_model.x0_mix").model.x0_mix) == (0.07, True)
