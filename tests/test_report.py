"""`speedrun report`: a sweep's and an ablation's report, from a real MLflow store and a real
Optuna study written here the way the sweep driver writes them."""

import json
import re

import optuna
import pytest
import typer
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from typer.testing import CliRunner

from analysis import stats
from analysis.ablation import arms, effects
from analysis.report import effect_table, write_report
from analysis.rungs import audit_section
from analysis.runs import Trial, load_sweep
from analysis.tables import interval, pvalue, signed
from orchestrator.cli_report import report
from trainer.errors import InputError

PNG = b"\x89PNG\r\n\x1a\n"
SWEEP_FIGURES = ["importance.png", "curves.png", "objective_vs_params.png", "loss_vs_time.png"]

# (trial, status, muon_lr, cooldown, final val loss, train ms, error)
SWEEP_TRIALS = [
    (0, "completed", 0.02, 0.3, 3.40, 9000, ""),
    (1, "completed", 0.05, 0.5, 3.30, 11000, ""),
    (2, "failed", 0.09, 0.6, None, None, "RuntimeError: CUDA out of memory | rank 0\ntraceback..."),
    (3, "completed", 0.008, 0.4, 3.35, 8000, ""),
    (4, "running", 0.03, 0.2, None, None, ""),
]
# arm -> final val loss of seeds 0-3 (each seed ran every arm)
ABLATION_LOSSES = {
    "baseline": [3.2810, 3.2795, 3.2822, 3.2801],
    "no_gate": [3.2851, 3.2840, 3.2866, 3.2839],
    "short_window": [3.2806, 3.2801, 3.2812, 3.2800],
}
ABLATION_TIMES_MS = {"baseline": 180_000, "no_gate": 176_000, "short_window": 171_000}


def _run(client, exp_id, parent_id, number, status, params, metrics=None, curve=(), error="", env=None):
    """A child run as the driver writes it: tags, dotted params, val curve by step, final metrics."""
    tags = {"mlflow.parentRunId": parent_id, "status": status, "optuna_trial": str(number),
            **{f"env.{k}": v for k, v in (env or {}).items()}}
    if error:
        tags["error"] = error
    run_id = client.create_run(exp_id, run_name=f"trial_{number:04d}", tags=tags).info.run_id
    points = [Metric(k, v, 0, step) for step, loss, ms in curve for k, v in (("val_loss", loss), ("train_time_ms", ms))]
    final = [Metric(k, v, 0, curve[-1][0] if curve else 0) for k, v in (metrics or {}).items()]
    client.log_batch(run_id, metrics=points + final, params=[Param(k, str(v)) for k, v in params.items()],
                     tags=[RunTag(k, v) for k, v in tags.items()])
    if status != "running":
        client.set_terminated(run_id, "FINISHED" if status == "completed" else "FAILED")
    return run_id


def _parent(client, root, name, kind, storage):
    exp_id = client.create_experiment(name, artifact_location=(root / "artifacts" / name).as_uri())
    tags = {"speedrun.role": "sweep", "speedrun.kind": kind}
    parent_id = client.create_run(exp_id, run_name=name, tags=tags).info.run_id
    client.log_batch(parent_id, params=[Param("objective", "final_val_loss"), Param("target", "3.28"),
                                        Param("optuna_storage", storage)])
    return exp_id, parent_id


def _curve(final, ms):
    """A speedrun-shaped curve: ln(50304) at step 0, then down to the final loss at step 100."""
    return [(0, 10.83, 0.0), (50, final + 0.4, ms / 2), (100, final, ms)]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One MLflow store holding sweep `lr` (with its Optuna study) and ablation `gate`."""
    root = tmp_path_factory.mktemp("store")
    uri, storage = f"sqlite:///{root / 'mlflow.db'}", f"sqlite:///{root / 'optuna.db'}"
    client = MlflowClient(uri)

    exp_id, parent = _parent(client, root, "lr", "sweep", storage)
    study = optuna.create_study(study_name="lr", storage=storage)
    dists = {"optim.muon_lr": optuna.distributions.FloatDistribution(0.005, 0.1, log=True),
             "schedule.lr.cooldown_frac": optuna.distributions.FloatDistribution(0.1, 0.7)}
    for number, status, lr, cooldown, final, ms, error in SWEEP_TRIALS:
        searched = {"optim.muon_lr": lr, "schedule.lr.cooldown_frac": cooldown}
        params = {"optim.muon_lr": lr, "runtime.seed": 0, **{f"searched.{k}": v for k, v in searched.items()}}
        done = status == "completed"
        metrics = {"objective": final, "final_val_loss": final, "wall_time_s": ms / 1000 + 5} if done else {}
        _run(client, exp_id, parent, number, status, params, metrics, _curve(final, ms) if done else (), error)
        state = {"completed": "COMPLETE", "failed": "FAIL", "running": "RUNNING"}[status]
        study.add_trial(optuna.trial.create_trial(params=searched, distributions=dists, value=final if done else None,
                                                  state=optuna.trial.TrialState[state]))

    exp_id, parent_ab = _parent(client, root, "gate", "ablation", storage)
    number = 0
    for seed in range(4):  # interleaved like the driver: each seed runs every arm
        for arm, losses in ABLATION_LOSSES.items():
            ms = ABLATION_TIMES_MS[arm] + 700 * ((7 * seed + len(arm)) % 5)  # node-to-node timing noise
            params = {"searched.arm": arm, "searched.seed": seed, "runtime.seed": seed}
            metrics = {"objective": losses[seed], "final_val_loss": losses[seed], "wall_time_s": ms / 1000}
            gpu = "NVIDIA A100-SXM4-80GB" if seed == 3 else "NVIDIA H100 80GB HBM3"  # seed 3 ran elsewhere
            env = {"gpu": gpu, "torch": "2.11.0", "host": f"node{seed}"}
            _run(client, exp_id, parent_ab, number, "completed", params, metrics, _curve(losses[seed], ms), env=env)
            number += 1
    _run(client, exp_id, parent_ab, number, "diverged", {"searched.arm": "no_gate", "searched.seed": 4},
         curve=[(0, 10.83, 0.0)], error="non-finite loss at step 37")
    _run(client, exp_id, parent_ab, number + 1, "failed", {"searched.arm": "short_window", "searched.seed": 4},
         error="trainer exited 1")
    return {"uri": uri, "storage": storage, "root": root, "parent": parent, "parent_ab": parent_ab}


@pytest.fixture(scope="module")
def sweep_report(store, tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep_report")
    return write_report("lr", store["uri"], out_dir=out)


def _section(text, title):
    return text.split(f"## {title}", 1)[1].split("\n## ", 1)[0]


def test_sweep_report_ranks_the_best_trial_first_and_draws_every_figure(sweep_report):
    text = sweep_report.read_text()
    board = _section(text, "Leaderboard")
    rows = [line for line in board.splitlines() if line.startswith("| #")]
    assert [r.split("|")[1].strip() for r in rows] == ["#1", "#3", "#0", "#2"]  # the failed one ranks last
    assert "3.3000" in rows[0] and "muon_lr" in board and "cooldown_frac" in board
    assert "best trial**: #1" in text
    assert "1 still running, not in this report" in text and "#4" not in board
    for name in SWEEP_FIGURES:
        assert (sweep_report.parent / name).read_bytes().startswith(PNG)
        assert f"]({name})" in text
    importance = _section(text, "Parameter importance")
    assert "optim.muon_lr" in importance and "schedule.lr.cooldown_frac" in importance


def test_sweep_report_lists_the_trials_that_did_not_complete(sweep_report):
    others = _section(sweep_report.read_text(), "Runs not completed")
    lines = [r.strip("| ") for r in others.splitlines() if r.startswith("| #")]
    rows = {cells[0]: cells[1:] for cells in (re.split(r"\s+\|\s+", r) for r in lines)}
    assert rows["#2"] == ["failed", "RuntimeError: CUDA out of memory \\| rank 0"]
    assert "#4" in others and "running" in others and "traceback" not in others  # first line of the error only


def test_report_is_logged_on_the_parent_run(store, sweep_report):
    logged = {a.path for a in MlflowClient(store["uri"]).list_artifacts(store["parent"], "report")}
    assert logged == {f"report/{n}" for n in ["report.md", *SWEEP_FIGURES]}


def test_ablation_effects_equal_the_statistics_on_the_same_numbers(store, tmp_path):
    path = write_report("gate", store["uri"], out_dir=tmp_path, log_to_mlflow=False)
    text = path.read_text()
    base = dict(enumerate(ABLATION_LOSSES["baseline"]))
    expected = {v: stats.compare(base, dict(enumerate(ABLATION_LOSSES[v]))) for v in ("no_gate", "short_window")}
    adjusted = dict(zip(expected, stats.holm([c.p_paired for c in expected.values()])))
    rows = {r.variant: r for r in effects(arms(load_sweep("gate", store["uri"]).trials))}
    assert set(rows) == set(expected)
    printed = effect_table("gate", store["uri"])
    for variant, c in expected.items():
        row = rows[variant]
        got = (row.loss.difference, row.loss.ci_low, row.loss.ci_high, row.loss.p_paired, row.loss.p_welch, row.p_holm)
        assert got == pytest.approx((c.difference, c.ci_low, c.ci_high, c.p_paired, c.p_welch, adjusted[variant]),
                                    rel=1e-9)
        assert row.loss.n_pairs == 4  # the diverged and failed seed-4 runs are not in the statistics
        diffs = [a - b for a, b in zip(ABLATION_LOSSES[variant], ABLATION_LOSSES["baseline"])]
        std = stats.summarize(diffs).std
        assert row.detectable == pytest.approx(stats.detectable_effect(std, 4), rel=1e-9)
        assert row.seeds_for_effect == stats.seeds_needed(0.002, std)
        line = next(line for line in printed.splitlines() if line.startswith(f"| {variant} "))
        cells = [cell.strip() for cell in line.split("|")[1:-1]]
        assert cells[1:7] == ["4 pairs", signed(c.difference), interval(c.ci_low, c.ci_high, signed),
                              pvalue(c.p_paired), pvalue(c.p_welch), pvalue(adjusted[variant])]
        assert line in text
    for name in ("arms.png", "arm_curves.png"):
        assert (tmp_path / name).read_bytes().startswith(PNG)


def test_ablation_lists_incomplete_runs_below_the_statistics(store, tmp_path):
    text = write_report("gate", store["uri"], out_dir=tmp_path, log_to_mlflow=False).read_text()
    arms_rows = [r for r in _section(text, "Arms").splitlines() if r.startswith("| ") and "arm" not in r]
    assert [re.split(r"\s*\|\s*", r)[2] for r in arms_rows] == ["4", "4", "4"]
    others = _section(text, "Runs not completed")
    assert "no_gate" in others and "diverged" in others and "non-finite loss at step 37" in others
    assert "short_window" in others and "trainer exited 1" in others
    assert text.index("## Variants against baseline") < text.index("## Runs not completed")


def test_importance_needs_two_complete_trials_and_says_so(store, tmp_path):
    client = MlflowClient(store["uri"])
    exp_id, parent = _parent(client, store["root"], "one", "sweep", store["storage"])
    # no searched.* params logged: the leaderboard takes the proposal from the Optuna study
    _run(client, exp_id, parent, 0, "completed", {"optim.muon_lr": 0.04},
         {"objective": 3.5, "final_val_loss": 3.5}, _curve(3.5, 1000))
    study = optuna.create_study(study_name="one", storage=store["storage"])
    dist = {"optim.muon_lr": optuna.distributions.FloatDistribution(0.01, 0.1)}
    study.add_trial(optuna.trial.create_trial(params={"optim.muon_lr": 0.04}, distributions=dist, value=3.5))
    text = write_report("one", store["uri"], out_dir=tmp_path, log_to_mlflow=False).read_text()
    assert "not computed: it needs at least 2 complete trials" in _section(text, "Parameter importance")
    assert "muon_lr" in _section(text, "Leaderboard") and "0.04" in _section(text, "Leaderboard")
    assert not (tmp_path / "importance.png").exists()


def test_default_output_is_reports_name_in_the_working_directory(store, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = write_report("gate", store["uri"], log_to_mlflow=False)
    assert path == tmp_path.joinpath("reports", "gate", "report.md").relative_to(tmp_path)
    assert path.is_file()


def test_unknown_name_names_the_store_and_the_experiments_in_it(store, tmp_path):
    with pytest.raises(InputError, match=r"no sweep named 'nope' in MLflow store .*mlflow.db; experiments there: gate"):
        write_report("nope", store["uri"], out_dir=tmp_path)
    app = typer.Typer()
    app.command()(report)
    result = CliRunner().invoke(app, ["nope", "--tracking-uri", store["uri"], "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "error: no sweep named 'nope'" in result.output and "gate, lr" in result.output
    missing = tmp_path / "elsewhere.db"
    result = CliRunner().invoke(app, ["lr", "--tracking-uri", f"sqlite:///{missing}"])
    assert result.exit_code == 2 and "no MLflow store at" in result.output
    assert not missing.exists()  # reading a report never creates an empty store


def test_ablation_lists_its_environments_and_warns_when_timings_mix_them(store, tmp_path):
    text = write_report("gate", store["uri"], out_dir=tmp_path, log_to_mlflow=False).read_text()
    envs = _section(text, "Environments")
    assert "gpu NVIDIA H100 80GB HBM3, torch 2.11.0" in envs and "baseline 3, no_gate 3, short_window 3" in envs
    assert "gpu NVIDIA A100-SXM4-80GB, torch 2.11.0" in envs and "baseline 1, no_gate 1, short_window 1" in envs
    assert "node0" not in envs  # hosts of one cluster share a fingerprint
    assert "Timings mix environments" in envs


def _horizon_run(number, rung, config, loss, audit=False):
    return Trial(run_id=f"r{number}", number=number, status="completed", objective=loss, final_val_loss=loss,
                 train_time_s=1.0, wall_time_s=1.0, rung=rung, fidelity=[0.25, 1.0][rung], config_trial=config,
                 promoted_from=None if rung == 0 else config, audit=audit)


def test_an_audited_config_that_beats_every_promoted_one_is_a_warning():
    lowest = [_horizon_run(c, 0, c, loss) for c, loss in enumerate([4.0, 4.1, 4.2, 4.3])]  # 0 and 1 go on
    full = [_horizon_run(4, 1, 0, 3.30), _horizon_run(5, 1, 1, 3.32), _horizon_run(6, 1, 3, 3.25, audit=True)]
    text = "\n\n".join(audit_section(lowest + full))
    assert re.search(r"\| #3 +\| +4 of 4 \| +4\.3 \| audit +\| #6 +\| +3\.25 \|", text)
    assert "**Warning** (audit): config #3, dropped at the lowest rung, ended below every config it promoted" in text


def test_an_audited_config_behind_the_promoted_ones_is_no_warning():
    lowest = [_horizon_run(c, 0, c, loss) for c, loss in enumerate([4.0, 4.1, 4.2, 4.3])]
    full = [_horizon_run(4, 1, 0, 3.30), _horizon_run(5, 1, 1, 3.32), _horizon_run(6, 1, 3, 3.40, audit=True)]
    text = "\n\n".join(audit_section(lowest + full))
    assert "Spearman rho, rung 0 against full length: 1.00 over 3 configs" in text and "Warning" not in text
    assert audit_section(lowest + full[:2]) == []  # no audit, no section


def test_report_json_of_a_sweep_ranks_its_trials_and_names_the_best(store, tmp_path):
    from typer.testing import CliRunner

    from orchestrator.cli import app

    done = CliRunner().invoke(app, ["report", "lr", "--tracking-uri", store["uri"], "--storage", store["storage"],
                                    "--out", str(tmp_path), "--json"])
    assert done.exit_code == 0, done.output
    got = json.loads(done.stdout)
    completed = sorted((t for t in SWEEP_TRIALS if t[1] == "completed"), key=lambda t: t[4])
    assert got["kind"] == "sweep" and got["best"]["number"] == completed[0][0]
    assert [t["number"] for t in got["trials"][:len(completed)]] == [t[0] for t in completed]
    assert got["report"] == str(tmp_path / "report.md") and got["counts"]["completed"] == len(completed)


def test_report_json_of_an_ablation_holds_the_effects_the_report_prints(store, tmp_path):
    from analysis.report_json import report_json

    got = report_json("gate", store["uri"])
    rows = {r.variant: r for r in effects(arms(load_sweep("gate", store["uri"]).trials))}
    assert {e["variant"] for e in got["effects"]} == set(rows)
    for e in got["effects"]:
        row = rows[e["variant"]]
        assert (e["difference"], e["p_paired"], e["p_holm"], e["n_pairs"]) == pytest.approx(
            (row.loss.difference, row.loss.p_paired, row.p_holm, row.loss.n_pairs))
    assert json.loads(json.dumps(got)) == got  # plain JSON: no NaN or infinity
