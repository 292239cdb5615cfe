"""Sweep spaces: the shipped spaces load and become valid trainer configs, proposals that break
a rule are reported (never crashed on), bad files fail with file:line:key errors, and nothing in
a space file runs."""

from __future__ import annotations

import importlib.util
import pickle
from pathlib import Path

import optuna
import pytest
import yaml

from search_spaces import FloatParam, SpaceError, SweepSpace, example_spaces, load_space
from search_spaces.yaml_data import to_yaml
from trainer.config import PRESETS_DIR, TrainConfig, load_config

optuna.logging.set_verbosity(optuna.logging.WARNING)

SHIPPED = example_spaces()
# spaces of a script (track 3's baseline): they validate where the script is, with the script hook
SCRIPT_SPACES = {n for n, p in SHIPPED.items() if "script" in (yaml.safe_load(Path(p).read_text())["base"] or {})}
CONFIG_SPACES = sorted(set(SHIPPED) - SCRIPT_SPACES)
TRACK3_FIXTURE = Path(__file__).parent / "fixtures_script" / "track3" / "train_gpt_simple.py"

MINIMAL = """\
base: {config: tiny}
params:
  optim.muon_lr: {float: [0.01, 0.1], log: true}
budget: {trials: 2}
"""


def write(tmp_path: Path, text: str, name: str = "space.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def propose(space: SweepSpace, n: int, storage: optuna.storages.BaseStorage | None = None) -> list[dict]:
    """The first n proposals of a real study (define-by-run through study.ask()), as Ray's
    OptunaSearch hands them to a trial: suggested values plus the returned constants."""
    study = optuna.create_study(storage=storage or optuna.storages.InMemoryStorage(), sampler=space.make_sampler())
    out = []
    for i in range(n):
        trial = study.ask()
        constants = space.define_by_run(trial)
        out.append({**trial.params, **constants})
        study.tell(trial, float(i % 3))
    return out


def dotted(cfg: TrainConfig, key: str):
    node = cfg
    for part in key.split("."):
        node = getattr(node, part)
    return node


def errors_of(path: Path, check=None) -> str:
    with pytest.raises(SpaceError) as info:
        load_space(path, check_overrides=check)
    return str(info.value)


# ---------------------------------------------------------------------------------------
# Shipped spaces


@pytest.fixture
def where_the_data_is(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run in a folder where every shipped space's data globs match, as a sweep must (validation
    refuses a glob that matches nothing): data/fineweb10B/ as `speedrun data fineweb` leaves it,
    and ../shared/data, the proxy corpus."""
    fineweb = tmp_path / "work" / "data" / "fineweb10B"
    fineweb.mkdir(parents=True)
    for name in ("fineweb_train_000001.bin", "fineweb_val_000000.bin"):
        (fineweb / name).touch()
    (tmp_path / "shared").symlink_to(Path(__file__).resolve().parent.parent.parent / "shared")
    monkeypatch.chdir(tmp_path / "work")


def test_the_issue_s_example_spaces_are_shipped():
    assert {"smoke", "lr", "batch_schedule", "window_schedule", "gpt2_124m_full"} <= set(SHIPPED)


@pytest.mark.parametrize("name", CONFIG_SPACES)
def test_every_shipped_space_loads_and_validates_against_the_trainer(name, where_the_data_is):
    space = load_space(SHIPPED[name], check_overrides=load_config)
    assert space.params and space.budget.trials >= 1


def test_the_track3_space_validates_in_a_checkout_and_its_proposals_patch_the_script(tmp_path, monkeypatch):
    """Run where modded-nanogpt's track-3 baseline is; here a script of this project's own in its
    shape (tests/fixtures_script/track3/: the same knob addresses)."""
    from orchestrator.targets import check_overrides
    from trainer.script.folder import open_folder, patched_files

    script = tmp_path / "records" / "track_3_optimization" / "train_gpt_simple.py"
    script.parent.mkdir(parents=True)
    script.write_text(TRACK3_FIXTURE.read_text())
    monkeypatch.chdir(tmp_path)
    space = load_space(SHIPPED["track3_simple"], check_overrides=check_overrides)
    assert space.objective.metric == "steps_to_target" and space.budget.seeds > 1 and space.base.is_script
    for params in propose(space, 3):
        knobs = {k: yaml.safe_load(v) for k, v in (o.split("=", 1) for o in space.overrides(params))}
        patched = patched_files(open_folder(space.base.config), knobs)[script.name]
        assert f"train_steps = {params['train_steps']}" in patched


@pytest.mark.parametrize("name", CONFIG_SPACES)
def test_sampled_overrides_build_the_sampled_train_config(name, where_the_data_is):
    space = load_space(SHIPPED[name], check_overrides=load_config)
    feasible = 0
    for params in propose(space, 6):
        overrides = space.overrides(params)
        if space.violations(overrides):
            continue
        feasible += 1
        cfg = load_config(space.base.config, overrides)
        cfg.check_for_run(space.resources.world_size)  # the trainer's own pre-run shape checks
        for key, p in space.params.items():
            if isinstance(p, FloatParam):
                assert dotted(cfg, key) == pytest.approx(params[key])
        if space.budget.steps:
            assert cfg.schedule.num_iterations == space.budget.steps
    assert feasible >= 1


def test_a_trial_from_an_sqlite_study_round_trips_through_the_trainer(tmp_path):
    space = load_space(SHIPPED["smoke"], check_overrides=load_config)
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'optuna.db'}")
    (params,) = propose(space, 1, storage)
    cfg = load_config(space.base.config, space.overrides(params))
    assert cfg.optim.muon_lr == params["optim.muon_lr"]
    assert cfg.optim.adam_lr == params["optim.adam_lr"]
    assert cfg.schedule.lr.cooldown_frac == params["schedule.lr.cooldown_frac"]


def test_the_readme_s_full_example_loads(tmp_path):
    readme = (Path(__file__).parent.parent / "search_spaces" / "README.md").read_text()
    example = readme.split("## A full example", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    space = load_space(write(tmp_path, example), check_overrides=load_config)
    for params in propose(space, 3):
        load_config(space.base.config, space.overrides(params))


def test_a_loaded_space_pickles_with_its_hook():
    space = load_space("smoke", check_overrides=load_config)
    again = pickle.loads(pickle.dumps(space))
    params = propose(space, 1)[0]
    assert again.overrides(params) == space.overrides(params) and again.violations(space.overrides(params)) == []


def test_smoke_space_is_a_small_cpu_sweep():
    space = load_space("smoke", check_overrides=load_config)
    cfg = load_config(space.base.config, space.overrides(propose(space, 1)[0]))
    assert cfg.runtime.device == "cpu" and space.resources.gpus == 0
    assert space.budget.trials <= 4 and cfg.schedule.num_iterations <= 12 and cfg.data.val_tokens <= 4096
    assert set(space.distributions()) == {"optim.muon_lr", "optim.adam_lr", "schedule.lr.cooldown_frac"}


def test_full_space_gives_each_trial_one_8_gpu_node_at_the_record_length(where_the_data_is):
    space = load_space("gpt2_124m_full", check_overrides=load_config)
    cfg = load_config(space.base.config, space.overrides(propose(space, 1)[0]))
    assert space.resources.gpus == 8 and cfg.schedule.num_iterations == 1695
    assert space.scheduler.name == "asha" and space.sampler.name == "tpe"


# ---------------------------------------------------------------------------------------
# Schedule-valued params


def test_sampled_batch_stages_are_valid_stage_lists():
    space = load_space("batch_schedule", check_overrides=load_config)
    for params in propose(space, 12):
        overrides = space.overrides(params)
        assert space.violations(overrides) == []
        stages = load_config(space.base.config, overrides).schedule.batch
        untils = [s.until for s in stages]
        assert untils == sorted(untils) and untils[-1] == 1.0
        assert stages[0].tokens == params["schedule.batch.0.tokens"]


def test_sampled_window_stages_are_valid_or_reported():
    space = load_space("window_schedule", check_overrides=load_config)
    for params in propose(space, 12):
        overrides = space.overrides(params)
        if space.violations(overrides):
            continue
        window = load_config(space.base.config, overrides).schedule.window
        assert window.kind == "stages"
        assert [s.tokens for s in window.stages] == sorted(s.tokens for s in window.stages)


def test_a_stage_list_is_one_yaml_value(tmp_path):
    space = load_space(
        write(
            tmp_path,
            """\
base: {config: tiny}
params:
  schedule.batch:
    stages:
      - {until: {float: [0.2, 0.5]}, tokens: {choice: [262144, 131072]}}
      - {until: 1.0, tokens: 393216}
budget: {trials: 2}
""",
        )
    )
    overrides = space.overrides({"schedule.batch.0.until": 0.33, "schedule.batch.0.tokens": 262144})
    assert overrides == ["schedule.batch=[{until: 0.33, tokens: 262144}, {until: 1.0, tokens: 393216}]"]


def test_a_linear_window_is_one_yaml_value(tmp_path):
    space = load_space(
        write(
            tmp_path,
            MINIMAL.replace(
                "optim.muon_lr: {float: [0.01, 0.1], log: true}",
                "schedule.window: {linear: {start: 0, end: {int: [128, 1024], step: 128}}}",
            ),
        ),
        check_overrides=load_config,
    )
    assert space.overrides({"schedule.window.end": 768}) == ["schedule.window={kind: linear, start: 0, end: 768}"]


def test_searched_numbers_have_stable_names(tmp_path):
    space = load_space(
        write(
            tmp_path,
            """\
base: {config: tiny}
params:
  optim.muon_lr: {float: [0.01, 0.1], log: true}
  model.x0_mix: {fixed: true}
  schedule.window:
    kind: stages
    stages: [{until: {float: [0.2, 0.6]}, tokens: 128}, {until: 1.0, tokens: {int: [256, 512], step: 128}}]
  schedule.batch: {stages: [{until: 1.0, tokens: {choice: [1024, 2048]}}]}
budget: {trials: 2}
""",
        ),
        check_overrides=load_config,
    )
    assert list(space.distributions()) == [
        "optim.muon_lr",
        "schedule.window.stages.0.until",
        "schedule.window.stages.1.tokens",
        "schedule.batch.0.tokens",
    ]
    (params,) = propose(space, 1)
    assert params["model.x0_mix"] is True  # fixed params come back as define-by-run constants


def test_non_increasing_sampled_untils_are_a_violation_not_a_crash(tmp_path):
    space = load_space(
        write(
            tmp_path,
            """\
base: {config: tiny}
params:
  schedule.batch:
    stages:
      - {until: {float: [0.1, 0.7]}, tokens: 1024}
      - {until: {float: [0.3, 0.9]}, tokens: 2048}
      - {until: 1.0, tokens: 4096}
budget: {trials: 2}
""",
        ),
        check_overrides=load_config,
    )
    overrides = space.overrides({"schedule.batch.0.until": 0.6, "schedule.batch.1.until": 0.4})
    (problem,) = space.violations(overrides)
    assert "schedule.batch" in problem and "strictly increase" in problem


# ---------------------------------------------------------------------------------------
# Constraints


def test_a_proposal_breaking_a_divisibility_constraint_is_reported(tmp_path):
    path = write(
        tmp_path,
        """\
base:
  config: tiny
  set: {schedule.seq_len: [{until: 1.0, tokens: 512}]}
params:
  schedule.batch: {stages: [{until: 0.5, tokens: {choice: [1024, 1280]}}, {until: 1.0, tokens: 2048}]}
constraints:
  - divisible: {key: schedule.batch, by: [world_size, schedule.seq_len]}
budget: {trials: 2}
resources: {gpus: 2}
""",
    )
    space = load_space(path, check_overrides=load_config)
    assert space.violations(space.overrides({"schedule.batch.0.tokens": 1024})) == []
    (problem,) = space.violations(space.overrides({"schedule.batch.0.tokens": 1280}))
    assert f"{path}:7" in problem and "1280 is not divisible" in problem and "2 x 512" in problem


def test_a_proposal_breaking_an_expression_constraint_is_reported(tmp_path):
    text = """\
base: {config: tiny}
params:
  optim.muon_lr: {float: [0.01, 0.1], log: true}
  optim.adam_lr: {float: [0.001, 0.1], log: true}
constraints:
  - expr: "optim.adam_lr * 2 <= optim.muon_lr"
    message: adam below muon
budget: {trials: 2}
"""
    space = load_space(write(tmp_path, text))
    assert space.violations(space.overrides({"optim.muon_lr": 0.05, "optim.adam_lr": 0.01})) == []
    (problem,) = space.violations(space.overrides({"optim.muon_lr": 0.05, "optim.adam_lr": 0.04}))
    assert "adam below muon" in problem and "optim.adam_lr = 0.04" in problem


def test_a_proposal_the_trainer_rejects_is_reported_through_the_hook(tmp_path):
    space = load_space(
        write(
            tmp_path,
            """\
base: {config: tiny}
params:
  schedule.lr.warmup_frac: {float: [0.0, 0.5]}
  schedule.lr.cooldown_frac: {float: [0.3, 0.8]}
budget: {trials: 2}
""",
        ),
        check_overrides=load_config,
    )
    (problem,) = space.violations(space.overrides({"schedule.lr.warmup_frac": 0.5, "schedule.lr.cooldown_frac": 0.8}))
    assert "the trainer rejects" in problem and "exceeds 1" in problem


def test_constraints_never_run_code(tmp_path):
    marker = tmp_path / "ran"
    text = MINIMAL + f"constraints:\n  - \"__import__('os').system('touch {marker}')\"\n"
    message = errors_of(write(tmp_path, text))
    assert "space.yaml:6: constraints[0].expr:" in message and "not allowed" in message
    assert not marker.exists()


# ---------------------------------------------------------------------------------------
# Malformed spaces: file, line, key path, what was expected


@pytest.mark.parametrize(
    "text, expected",
    [
        pytest.param(
            MINIMAL + "samplr: tpe\n",
            ["space.yaml:5: samplr: unknown key 'samplr'", "did you mean 'sampler'?"],
            id="unknown-key",
        ),
        pytest.param(
            MINIMAL.replace("{trials: 2}", "{trials: 2, step: 5}"),
            ["space.yaml:4: budget.step: unknown key 'step'", "did you mean 'steps'?"],
            id="unknown-section-key",
        ),
        pytest.param(
            MINIMAL.replace("{trials: 2}", "{trials: many}"),
            ["space.yaml:4: budget.trials: got 'many'; expected a valid integer"],
            id="wrong-type",
        ),
        pytest.param(
            MINIMAL.replace("[0.01, 0.1], log: true", "[0.1, 0.01]"),
            ["space.yaml:3: params.optim.muon_lr.float: low 0.1 >= high 0.01; expected low < high"],
            id="low-above-high",
        ),
        pytest.param(
            MINIMAL.replace("[0.01, 0.1]", "[0, 0.1]"),
            ["space.yaml:3: params.optim.muon_lr.float: log scale needs low > 0"],
            id="log-of-zero",
        ),
        pytest.param(
            MINIMAL.replace("{float:", "{flaot:"),
            ["space.yaml:3: params.optim.muon_lr.flaot: unknown distribution 'flaot'", "did you mean 'float'?"],
            id="unknown-distribution",
        ),
        pytest.param(
            MINIMAL + "sampler: {name: tpee, seed: 1}\n",
            [
                "space.yaml:5: sampler.name: got 'tpee'; expected one of tpe, random, grid, cmaes, qmc",
                "did you mean 'tpe'?",
            ],
            id="unknown-sampler",
        ),
        pytest.param(
            "- base\n- params\n", ["space.yaml:1: (top level): got a list; expected a mapping"], id="not-a-mapping"
        ),
        pytest.param(
            MINIMAL.replace("params:\n  optim.muon_lr: {float: [0.01, 0.1], log: true}", "params: [optim.muon_lr]"),
            ["space.yaml:2: params: got ['optim.muon_lr']; expected a mapping of dotted trainer keys"],
            id="params-not-a-mapping",
        ),
        pytest.param(
            MINIMAL.replace("log: true}", "log: true"),
            ["space.yaml:4: (top level): not valid YAML", "line 3"],
            id="yaml-syntax",
        ),
        pytest.param(
            MINIMAL + "sampler: grid\n",
            ["space.yaml:3: params.optim.muon_lr:", "the grid sampler needs finite values"],
            id="grid-needs-finite-values",
        ),
        pytest.param(
            MINIMAL.replace("{float: [0.01, 0.1], log: true}", "{stages: [{until: 0.5, tokens: 1024}]}"),
            ["space.yaml:3: params.optim.muon_lr.stages[0].until: the last stage must end at until: 1.0"],
            id="last-stage-until",
        ),
        pytest.param(
            MINIMAL + "constraints:\n  - divisible: {key: schedule.batch, by: [world_size, schedule.seq_len]}\n",
            ["space.yaml:6: constraints[0]: reads 'schedule.batch', which this space does not set"],
            id="constraint-reads-unset-key",
        ),
        pytest.param(
            MINIMAL.replace("budget:", "  optim.muon_lr: {float: [0.01, 0.1]}\nbudget:"),
            ["space.yaml:4: params.optim.muon_lr: duplicate key 'optim.muon_lr' (first at line 3)"],
            id="duplicate-key",
        ),
        pytest.param(
            MINIMAL + "scheduler: {name: asha, grace: 0.6, max_t: 0.5}\n",
            ["space.yaml:5: scheduler: grace 0.6 exceeds max_t 0.5; expected grace <= max_t"],
            id="asha-grace-above-max-t",
        ),
        pytest.param(
            MINIMAL.replace("{trials: 2}", "{trials: 2, steps: 5}").replace(
                "optim.muon_lr:", "schedule.num_iterations:"
            ),
            ["space.yaml:3: params.schedule.num_iterations: 'schedule.num_iterations' overlaps"],
            id="key-set-twice",
        ),
    ],
)
def test_malformed_space_names_file_line_and_key(tmp_path, text, expected):
    message = errors_of(write(tmp_path, text), check=load_config)
    for part in expected:
        assert part in message


def test_unknown_trainer_key_is_caught_by_the_hook_at_its_line(tmp_path):
    path = write(tmp_path, MINIMAL.replace("optim.muon_lr:", "optim.muon_lrr:"))
    load_space(path)  # syntactically fine: this package does not know the trainer's keys
    message = errors_of(path, check=load_config)
    assert "space.yaml:3: params.optim.muon_lrr: the trainer rejects" in message
    assert "did you mean 'optim.muon_lr'?" in message


def test_an_out_of_range_value_is_caught_by_the_hook_at_its_extreme(tmp_path):
    text = MINIMAL.replace(
        "optim.muon_lr: {float: [0.01, 0.1], log: true}", "schedule.lr.cooldown_frac: {float: [0.2, 1.5]}"
    )
    message = errors_of(write(tmp_path, text), check=load_config)
    expected = "space.yaml:3: params.schedule.lr.cooldown_frac: the trainer rejects 'schedule.lr.cooldown_frac=1.5'"
    assert expected in message


def test_all_errors_are_reported_together_in_line_order(tmp_path):
    text = """\
base: {config: tiny}
params:
  optim.muon_lr: {float: [0.1, 0.01]}
  optim.adam_lr: {flaot: [0.1, 0.2]}
budget: {trials: 0}
sampler: tpee
"""
    with pytest.raises(SpaceError) as info:
        load_space(write(tmp_path, text))
    lines = [e.split(":")[1] for e in info.value.errors]
    assert lines == ["3", "4", "5", "6"]


def test_a_python_tag_is_rejected_and_never_run(tmp_path):
    marker = tmp_path / "ran"
    text = MINIMAL.replace("{float: [0.01, 0.1], log: true}", f"!!python/object/apply:os.system ['touch {marker}']")
    message = errors_of(write(tmp_path, text))
    assert "space.yaml:3: params.optim.muon_lr: YAML tag '!!python/object/apply:os.system' is not allowed" in message
    assert not marker.exists()


def test_a_missing_space_file_lists_the_shipped_ones(tmp_path):
    with pytest.raises(SpaceError, match="no such file.*smoke"):
        load_space(tmp_path / "nope.yaml")


# ---------------------------------------------------------------------------------------
# Base config, hooks, values


def test_base_config_path_is_relative_to_the_space_file(tmp_path):
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "mine.yaml").write_text((PRESETS_DIR / "tiny.yaml").read_text())
    path = write(tmp_path, MINIMAL.replace("{config: tiny}", "{config: configs/mine.yaml}"))
    space = load_space(path, check_overrides=load_config)
    assert Path(space.base.config) == (tmp_path / "configs" / "mine.yaml").resolve()


def test_a_one_argument_hook_is_accepted(tmp_path):
    seen: list[list[str]] = []
    space = load_space(write(tmp_path, MINIMAL), check_overrides=lambda overrides: seen.append(overrides))
    assert space.violations(space.overrides({"optim.muon_lr": 0.02})) == []
    assert ["optim.muon_lr=0.02"] in seen


def test_overrides_without_a_searched_value_raise(tmp_path):
    space = load_space(write(tmp_path, MINIMAL))
    with pytest.raises(ValueError, match="no value for 'optim.muon_lr'"):
        space.overrides({})


@pytest.mark.parametrize(
    "value",
    [1e-05, 0.1, 3, True, None, "@fixtures/fixture_train_*.bin", "../shared/data/proxy_*.bin", "true", "a: b",
     [{"until": 0.5, "tokens": 1024}], {"kind": "linear", "start": 0, "end": 1728}, [0.8, 0.95]],
)
def test_override_values_read_back_equal(value):
    assert yaml.safe_load(to_yaml(value)) == value


# ---------------------------------------------------------------------------------------
# Samplers

SAMPLER_SPACE = """\
base: {config: tiny}
params:
  optim.muon_lr: {float: [0.01, 0.1], log: true, SAMPLER_STEP}
  eval.every: {int: [2, 8], step: 2}
  schedule.lr.cooldown_frac: {choice: [0.3, 0.45, 0.6]}
budget: {trials: 4}
sampler: {name: NAME, seed: SEED, startup_trials: 2}
"""


def sampler_space(tmp_path: Path, name: str, seed: int) -> SweepSpace:
    text = SAMPLER_SPACE.replace("NAME", name).replace("SEED", str(seed))
    if name == "grid":
        text = text.replace("log: true, SAMPLER_STEP", "step: 0.03")
    else:
        text = text.replace(", SAMPLER_STEP", "")
    if name not in ("tpe", "cmaes"):
        text = text.replace(", startup_trials: 2", "")
    return load_space(write(tmp_path, text, f"{name}_{seed}.yaml"))


NEEDS = {"cmaes": "cmaes", "qmc": "scipy"}  # samplers whose package optuna does not install


def skip_without_package(name: str) -> None:
    package = NEEDS.get(name)
    if package and importlib.util.find_spec(package) is None:
        pytest.skip(f"the {package} package is not installed (test_sampler_without_its_package_is_a_load_error)")


@pytest.mark.parametrize("name", ["tpe", "random", "grid", "qmc", "cmaes"])
def test_samplers_by_name_are_deterministic_for_a_seed(tmp_path, name):
    skip_without_package(name)
    first = propose(sampler_space(tmp_path, name, 7), 4)
    again = propose(sampler_space(tmp_path, name, 7), 4)
    other = propose(sampler_space(tmp_path, name, 8), 4)
    assert first == again
    assert first != other


@pytest.mark.parametrize("name", sorted(NEEDS))
def test_sampler_without_its_package_is_a_load_error(tmp_path, name):
    if importlib.util.find_spec(NEEDS[name]) is not None:
        pytest.skip(f"{NEEDS[name]} is installed")
    text = SAMPLER_SPACE.replace("NAME", name).replace("SEED", "0").replace(", SAMPLER_STEP", "")
    message = errors_of(write(tmp_path, text))
    assert f"space.yaml:7: sampler: the {name} sampler needs the '{NEEDS[name]}' package" in message


@pytest.mark.parametrize(
    "name, cls",
    [("tpe", optuna.samplers.TPESampler), ("random", optuna.samplers.RandomSampler),
     ("grid", optuna.samplers.GridSampler), ("qmc", optuna.samplers.QMCSampler)],
)
def test_make_sampler_builds_the_named_sampler(tmp_path, name, cls):
    skip_without_package(name)
    assert isinstance(sampler_space(tmp_path, name, 0).make_sampler(), cls)
