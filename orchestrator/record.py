"""`speedrun record run RECORD_DIR`: run a record attempt N times and apply the record rule.

The attempt's runs go through the sweep driver as an ablation named `record-<folder>`: arm
`record` is the folder's config.yaml with seeds 0..N-1; with `--baseline CONFIG`, arm
`baseline` runs that config with the same seeds, interleaved seed by seed on the same nodes, as
contributors compare times. The verdict — `ttest_1samp(losses, target, alternative="less")
.pvalue < 0.01` — and the losses, times and logs go into RECORD_DIR/attempt/ and on the
attempt's MLflow run.
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import asdict, replace
from pathlib import Path

from mlflow import MlflowClient

from analysis import stats
from analysis.ablation import arms
from analysis.report import effect_table
from analysis.runs import load_sweep
from orchestrator.ablate import changes_from_base
from orchestrator.sweep import SweepOptions, run_sweep
from orchestrator.targets import check_overrides
from search_spaces import AblationSpace, BaseSpec, Budget, Resources
from search_spaces.trainer_hook import two_argument
from trainer.config import load_config
from trainer.errors import InputError
from trainer.yaml_safe import load_file

RECORD_ARM = "record"
ATTEMPT_DIR = "attempt"


def record_config(record_dir: Path) -> Path:
    """The record folder's config.yaml; InputError when the folder has none."""
    config = record_dir / "config.yaml"
    if not config.is_file():
        raise InputError(f"{record_dir}: no config.yaml; expected a record folder (speedrun promote writes one)")
    return config


def record_base(record_dir: Path) -> BaseSpec:
    """What the record runs: its config.yaml, or for a script record the script it names (beside
    it) under the interpreter and in the environment it names."""
    config = record_config(record_dir)
    doc = load_file(config, "a record's config.yaml")
    if not (isinstance(doc, dict) and "script" in doc):
        return BaseSpec(config=str(config.resolve()))
    script = (record_dir / str(doc["script"])).resolve()
    if not script.is_file():
        raise InputError(f"{config}: script '{doc['script']}' is not in {record_dir}; expected the promoted script beside it")
    return BaseSpec(config=str(script), python=doc.get("python"), env=doc.get("env") or {})


def attempt_space(record_dir: Path, runs: int, baseline: Path | None, gpus: int, cpus: float) -> AblationSpace:
    """The attempt as queued runs: the record's config (and the baseline's) with seeds 0..runs-1;
    a script record's runs are replicates that differ by the script's own randomness."""
    base = record_base(record_dir)
    if runs < 2:
        raise InputError(f"--runs {runs}: expected at least 2 (the record rule is a t-test)")
    arm_overrides: dict[str, dict] = {RECORD_ARM: {}}
    if baseline is not None:
        if base.is_script:
            raise InputError(f"--baseline {baseline}: a script record runs its own script; compare it with another "
                             "record folder's attempt (speedrun ablate with two script arms)")
        if not baseline.is_file():
            raise InputError(f"--baseline {baseline}: no such file; expected a trainer config YAML")
        values = changes_from_base(base.config, {}, baseline)[0]
        values.pop("runtime.seed", None)
        arm_overrides = {"baseline": values, RECORD_ARM: {}}
    space = AblationSpace(
        name=f"record-{record_dir.resolve().name}", description=f"record attempt of {record_dir}",
        base=base, arms=arm_overrides, seeds=list(range(runs)),
        budget=Budget(trials=runs * len(arm_overrides)), resources=Resources(gpus=gpus, cpus=cpus),
    )
    space._check = two_argument(check_overrides)
    return space


def look_sizes(runs: int, looks: int) -> list[int]:
    """Runs completed at each planned look of a sequential attempt (at least 2, the last = runs)."""
    return sorted({max(2, math.ceil(runs * (i + 1) / looks)) for i in range(looks)})


def run_attempt(record_dir: Path, runs: int, options: SweepOptions, baseline: Path | None = None,
                target: float = stats.RECORD_TARGET, gpus: int | None = None, cpus: float = 1.0,
                looks: int = 1) -> stats.RecordTest:
    """Run the attempt, apply the record rule, write the verdict into RECORD_DIR/attempt/ and MLflow.

    looks > 1 (sequential): after each planned look (runs/looks, 2·runs/looks, …) the rule is
    applied at 0.01/looks and the attempt stops at the first pass. Bonferroni over the planned
    looks keeps the chance of a false pass over all of them at most 0.01, whatever the looks'
    correlation; the verdict is a pass only at that stricter level.
    """
    if gpus is None:
        base = record_base(record_dir)
        gpus = 8 if base.is_script or load_config(base.config).runtime.device == "cuda" else 0
    sizes = look_sizes(runs, looks)
    alpha = stats.RECORD_P_THRESHOLD / len(sizes)
    history = []
    for i, n in enumerate(sizes):
        space = attempt_space(record_dir, n, baseline, gpus, cpus)
        result = run_sweep(space, replace(options, name=options.name or space.name, resume=options.resume or i > 0))
        attempt = load_sweep(result.name, options.tracking_uri)
        mine = next((a for a in arms(attempt.trials) if a.name == RECORD_ARM), None)
        if mine is None or len(mine.trials) < 2:
            raise InputError(f"fewer than 2 runs of the attempt completed; see MLflow experiment '{result.name}'")
        losses = [t.final_val_loss for t in mine.trials]
        verdict = stats.record_test(losses, target)
        verdict = replace(verdict, passed=bool(verdict.pvalue < alpha))
        history.append({"runs": verdict.n, "mean": verdict.mean, "pvalue": verdict.pvalue, "passed": verdict.passed})
        if verdict.passed:
            break
    out = record_dir / ATTEMPT_DIR
    out.mkdir(exist_ok=True)
    results = {
        "verdict": "pass" if verdict.passed else "fail", **asdict(verdict),
        "rule": f"scipy.stats.ttest_1samp(losses, {target}, alternative='less').pvalue < {alpha:g}",
        "looks": history,
        "correction": (f"sequential: {len(sizes)} planned looks, each at {stats.RECORD_P_THRESHOLD}/{len(sizes)} "
                       "(Bonferroni): a false pass over all looks has probability at most 0.01")
        if len(sizes) > 1 else "none: one look",
        "runs": [{"seed": t.searched.get("seed"), "final_val_loss": t.final_val_loss, "train_time_s": t.train_time_s,
                  "mlflow_run_id": t.run_id, "env": t.env} for t in mine.trials],
        "complete": result.complete, "mlflow_experiment": result.name,
    }
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    table = effect_table(result.name, options.tracking_uri) if baseline is not None else None
    (out / "verdict.md").write_text(_verdict_text(verdict, mine.trials, table, alpha, history))
    _copy_logs(Path(options.workdir) / "sweeps" / result.name / "trials", out / "logs")
    client = MlflowClient(options.tracking_uri)
    client.set_tag(attempt.parent_id, "record_verdict", results["verdict"])
    client.log_metric(attempt.parent_id, "record_pvalue", verdict.pvalue)
    client.log_metric(attempt.parent_id, "record_mean_final_val_loss", verdict.mean)
    client.log_artifacts(attempt.parent_id, str(out), "attempt")
    return verdict


def _verdict_text(v: stats.RecordTest, trials, against_baseline: str | None, alpha: float, history: list[dict]) -> str:
    lines = [
        f"# Record attempt: {'PASS' if v.passed else 'FAIL'}",
        "",
        f"{v.n} runs, mean final val loss {v.mean:.4f}, std {v.std:.4f}; "
        f"ttest_1samp(losses, {v.target}, alternative='less'): p = {v.pvalue:.4g} "
        f"({'<' if v.passed else '≥'} {alpha:g}).",
        "",
        "| seed | final val loss | train time (s) | MLflow run |",
        "|---:|---:|---:|---|",
        *(f"| {t.searched.get('seed')} | {t.final_val_loss:.4f} | {t.train_time_s:.2f} | {t.run_id} |" for t in trials),
    ]
    if len(history) > 1 or alpha < stats.RECORD_P_THRESHOLD:
        lines += ["", f"Sequential: each look tested at {alpha:g} (0.01 / planned looks, Bonferroni), stopping at the "
                      "first pass.", "", "| runs | mean | p | pass |", "|---:|---:|---:|---|",
                  *(f"| {h['runs']} | {h['mean']:.4f} | {h['pvalue']:.4g} | {'yes' if h['passed'] else 'no'} |"
                    for h in history)]
    if against_baseline is not None:
        lines += ["", "## Against the baseline (same seeds, interleaved)", "", against_baseline]
    return "\n".join(lines) + "\n"


def _copy_logs(trials_dir: Path, into: Path) -> None:
    into.mkdir(parents=True, exist_ok=True)
    for log in sorted(trials_dir.glob("trial_*/trainer.log")):
        shutil.copy(log, into / f"{log.parent.name}.log")
