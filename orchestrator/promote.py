"""`speedrun promote NAME`: from a sweep's best trials to a record folder, picked by mean.

The best of many noisy trials is biased low (the winner's curse), so the K best configs are run
again with R fresh seeds — as an ablation (`promote.yaml` in the promotion's folder, resumable
with `speedrun ablate ... --resume`), the best trial being the `baseline` arm and each other
finalist an arm of the changes that make it — and the one with the lowest *mean* final val loss
is written out as `records/<date>_<name>/`: its full config, `run.sh`, a README with the
evidence, `statistics.md` and the environment fingerprint.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import shutil
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import yaml
from mlflow import MlflowClient

from analysis import stats
from analysis.ablation import BASELINE, arms
from analysis.report import effect_table
from analysis.runs import Sweep, Trial, load_sweep, longest_runs
from analysis.track3 import TARGET, pairwise
from orchestrator.ablate import changes_from_base, prepare_ablation
from orchestrator.submission import (
    VAL_TABLE,
    Against,
    copy_logs,
    pick_earliest,
    readme,
    submission_folder,
    write_val_table,
)
from orchestrator.sweep import SweepOptions, run_sweep
from orchestrator.tracking import git_commit
from trainer.config import load_config
from trainer.errors import InputError
from trainer.script.folder import folder_diff, open_folder, patched_files, write_copy
from trainer.script.workdir import LOGS, run_id_folders
from trainer.yaml_safe import load_file

FRESH_SEED_BASE = 1000  # promotion seeds start here: a sweep's trials run with the base's seed (0 by default)
RECORDS_DIR = "records"


@dataclass
class Finalist:
    """One of the K best trials: its arm name in the promotion and its full config file."""

    arm: str
    trial: Trial
    config: Path


def finalists(sweep: Sweep, top_k: int, into: Path) -> list[Finalist]:
    """The top_k completed trials by objective (of a horizon sweep: of its highest rung), each with
    its config.yaml fetched from MLflow."""
    done = sorted((t for t in longest_runs(sweep.trials) if math.isfinite(t.objective)), key=lambda t: (t.objective, -t.margin))
    if not done:
        raise InputError(f"sweep '{sweep.name}' has no completed trial to promote")
    into.mkdir(parents=True, exist_ok=True)
    client = MlflowClient(sweep.tracking_uri)
    out: list[Finalist] = []
    seen: set[str] = set()
    for trial in done:
        if len(out) == top_k:
            break
        local = Path(client.download_artifacts(trial.run_id, "config.yaml", str(into)))
        text = local.read_text()
        if text in seen:  # the same config twice (a retried trial): one arm
            local.unlink()
            continue
        seen.add(text)
        path = into / f"trial_{trial.number:04d}.yaml"
        local.replace(path)
        out.append(Finalist(BASELINE if not out else f"trial_{trial.number:04d}", trial, path))
    return out


def script_knobs(finalist: Finalist) -> tuple[dict, dict]:
    """A script trial's base ({script, python, env}) and {address: value} from its config.yaml;
    ({}, {}) for a trainer config."""
    doc = load_file(finalist.config, "a trial's config.yaml")
    if not (isinstance(doc, dict) and "script" in doc):
        return {}, {}
    return {k: doc[k] for k in ("script", "python", "env") if k in doc}, doc.get("set") or {}


def promotion_file(name: str, finals: list[Finalist], reseeds: int, gpus: int, cpus: float, path: Path) -> Path:
    """The promotion as an ablation file: the best trial is the baseline, the others its variants."""
    base, knobs = script_knobs(finals[0])
    if base:  # each finalist is its whole set of knob values on the one script
        baseline, variants = knobs, {f.arm: script_knobs(f)[1] for f in finals[1:]}
    else:
        base, baseline = {"config": finals[0].config.name}, {}
        variants = {f.arm: changes_from_base(str(finals[0].config), {}, f.config)[0] for f in finals[1:]}
    doc = {
        "name": name,
        "description": f"re-runs of the {len(finals)} best trials with {reseeds} fresh seeds; "
                       f"baseline = trial #{finals[0].trial.number}",
        "base": base,
        "baseline": baseline,
        "variants": variants,
        "seeds": [FRESH_SEED_BASE + i for i in range(reseeds)],
        "resources": {"gpus": gpus, "cpus": cpus},
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@dataclass
class Pick:
    """The finalist with the lowest mean final val loss over its fresh seeds."""

    finalist: Finalist
    losses: list[float]
    times_s: list[float]
    run_ids: list[str]


def pick_by_mean(promotion: Sweep, finals: list[Finalist]) -> Pick:
    """The finalist whose fresh seeds have the lowest mean final val loss (not the luckiest run)."""
    by_arm = {a.name: a for a in arms(promotion.trials)}
    scored = []
    for f in finals:
        arm = by_arm.get(f.arm)
        if arm is not None and arm.trials:
            losses = [t.final_val_loss for t in arm.trials]
            scored.append((sum(losses) / len(losses), f, arm))
    if not scored:
        raise InputError(f"no promotion run of '{promotion.name}' completed; see its runs in MLflow")
    _, f, arm = min(scored, key=lambda s: s[0])
    return Pick(f, [t.final_val_loss for t in arm.trials], [t.train_time_s for t in arm.trials], [t.run_id for t in arm.trials])


def write_record(sweep: Sweep, promotion: Sweep, finals: list[Finalist], pick: Pick, root: Path, nproc: int) -> Path:
    """records/<date>_<name>/: config.yaml (of a script sweep: which script, under which python,
    beside the runnable folder: the patched script, the modules it imports, changes.diff), run.sh,
    README.md, statistics.md, environment.json."""
    folder = root / f"{datetime.now(UTC):%Y-%m-%d}_{sweep.name}"
    folder.mkdir(parents=True, exist_ok=True)
    config_text, script = write_runnable(folder, pick.finalist, nproc)
    summary = stats.summarize(pick.losses)
    record = stats.record_test(pick.losses)
    env = _environment(promotion, pick.run_ids)
    (folder / "environment.json").write_text(json.dumps(env, indent=2) + "\n")
    (folder / "statistics.md").write_text(_statistics(promotion, pick, summary, record))
    (folder / "README.md").write_text(_readme(sweep, promotion, finals, pick, summary, config_text, nproc, script, folder))
    return folder


def write_runnable(folder: Path, finalist: Finalist, nproc: int) -> tuple[str, str]:
    """The finalist, runnable in `folder`: config.yaml and run.sh, and for a script the patched
    script beside the modules it imports and changes.diff. Returns (the config's text, or the
    script's diff; the script's original path, "" for a trainer config)."""
    base, knobs = script_knobs(finalist)
    script = base.get("script", "")
    run_sh = folder / "run.sh"
    if script:
        script_folder = open_folder(script)
        patched = patched_files(script_folder, knobs)
        write_copy(script_folder, patched, folder)
        config_text = folder_diff(script_folder, patched)
        (folder / "changes.diff").write_text(config_text)
        (folder / "config.yaml").write_text(yaml.safe_dump({**base, "script": Path(script).name}, sort_keys=False))
        folders = " ".join(shlex.quote(f"{LOGS}/{f}") for f in run_id_folders(patched[script_folder.script.name]))
        exports = "".join(f"export {k}=${{{k}-{shlex.quote(str(v))}}}\n" for k, v in base.get("env", {}).items())
        run_sh.write_text(RUN_SCRIPT_SH.format(nproc=nproc, script=Path(script).name, python=base.get("python", "python"),
                                               setup=exports + (f"mkdir -p {folders}\n" if folders else "")))
    else:  # the finalist's config.yaml is the full config its promotion runs used
        config_text = load_config(str(finalist.config)).to_yaml()
        (folder / "config.yaml").write_text(config_text)
        run_sh.write_text(RUN_SH.format(nproc=nproc))
    run_sh.chmod(0o755)
    return config_text, script


def write_track3(sweep: Sweep, promotion: Sweep, finals: list[Finalist], root: Path, nproc: int,
                 against: Against | None, trials_dir: Path) -> Path:
    """records/<date>_<name>-track3/: the finalist whose fresh seeds pass the track's validity rule
    earliest, with its logs, its val table, the checks and the pairwise comparison (submission.py)."""
    target = sweep.target if sweep.target is not None else TARGET
    claim = pick_earliest(promotion, [f.arm for f in finals], target)
    folder = submission_folder(root, sweep.name)
    finalist = next(f for f in finals if f.arm == claim.arm)
    diff, script = write_runnable(folder, finalist, nproc)
    write_val_table(claim, folder / VAL_TABLE)
    missing = copy_logs(claim, trials_dir, folder / "logs", (folder / Path(script).name).read_text())
    compared = None
    if against is not None:
        copy = folder / f"against{against.path.suffix or '.txt'}"
        shutil.copyfile(against.path, copy)
        against = Against(copy, against.steps)
        compared = pairwise(claim.losses_at(claim.step), against.losses(), claim.step, against.steps)
    (folder / "README.md").write_text(readme(sweep.name, finalist.trial.number, claim, against, compared, target,
                                             script, diff, missing, nproc))
    return folder


RUN_SH = """#!/usr/bin/env bash
# The promoted config, as a record run. NPROC ranks (default {nproc}) on this node; with
# DATA_DIR set, the FineWeb shards are read from there (fineweb_train_*.bin, fineweb_val_*.bin),
# otherwise from the paths in config.yaml. PYTHON: the interpreter that has speedrun installed.
# Extra arguments go to the trainer (e.g. --set runtime.seed=7).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
nproc=${{NPROC:-{nproc}}}
data=()
if [ -n "${{DATA_DIR:-}}" ]; then
  data=(--set "data.train_files=$DATA_DIR/fineweb_train_*.bin" --set "data.val_files=$DATA_DIR/fineweb_val_*.bin")
fi
if [ "$nproc" -gt 1 ]; then
  exec "${{PYTHON:-python}}" -m torch.distributed.run --standalone --nproc_per_node="$nproc" -m trainer --config "$here/config.yaml" "${{data[@]}}" "$@"
fi
exec "${{PYTHON:-python}}" -m trainer --config "$here/config.yaml" "${{data[@]}}" "$@"
"""


RUN_SCRIPT_SH = """#!/usr/bin/env bash
# The promoted script, as a record run: NPROC ranks (default {nproc}) on this node, from the
# working directory its data paths are relative to (the script's own conventions), where the
# folder its run id logs into is made first, in the sweep's environment (each variable may be set
# to another value). PYTHON: the interpreter (default: the one the sweep ran it under).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
{setup}exec "${{PYTHON:-{python}}}" -m torch.distributed.run --standalone --nproc_per_node="${{NPROC:-{nproc}}}" "$here/{script}" "$@"
"""


def _environment(promotion: Sweep, run_ids: list[str]) -> dict:
    envs = [t.env for t in promotion.trials if t.run_id in run_ids and t.env]
    return {"runs": len(run_ids), "fingerprints": [dict(e) for e in {json.dumps(e, sort_keys=True): e for e in envs}.values()]}


def _statistics(promotion: Sweep, pick: Pick, summary: stats.ArmSummary, record: stats.RecordTest) -> str:
    verdict = "passes" if record.passed else "does not pass"
    return "\n".join([
        f"# Statistics of the promotion '{promotion.name}'",
        "",
        f"Picked: arm `{pick.finalist.arm}` (trial #{pick.finalist.trial.number}) by the lowest mean final val loss "
        f"over {summary.n} fresh seeds: mean {summary.mean:.4f}, std {summary.std:.4f}, "
        f"95% CI [{summary.ci_low:.4f}, {summary.ci_high:.4f}].",
        "",
        "## Finalists against the sweep's best trial (baseline)",
        "",
        effect_table(promotion.name, promotion.tracking_uri),
        "",
        "## The record rule on these runs",
        "",
        f"ttest_1samp(losses, {record.target}, alternative='less'): n = {record.n}, mean = {record.mean:.4f}, "
        f"p = {record.pvalue:.4g}: {verdict} (p < 0.01). Losses: {', '.join(f'{x:.4f}' for x in pick.losses)}.",
        "",
    ])


def _readme(sweep: Sweep, promotion: Sweep, finals: list[Finalist], pick: Pick, summary: stats.ArmSummary,
            config_text: str, nproc: int, script: str, folder: Path) -> str:
    commit, dirty = git_commit(Path(__file__).resolve().parent)
    f = pick.finalist
    searched = ", ".join(f"{k}={v}" for k, v in f.trial.searched.items()) or "(none recorded)"
    finalists_rows = "\n".join(
        f"| `{x.arm}` | #{x.trial.number} | {x.trial.objective:.4f} | {', '.join(f'{k}={v}' for k, v in x.trial.searched.items())} |"
        for x in finals
    )
    return f"""# {sweep.name}: promoted config

From sweep `{sweep.name}` (MLflow {sweep.tracking_uri}, experiment `{sweep.name}`), trial
#{f.trial.number}: {searched}.

Picked by the mean of {summary.n} re-runs with fresh seeds (promotion `{promotion.name}`), not by
its single sweep run: mean final val loss {summary.mean:.4f} ± {summary.std:.4f} (std),
95% CI [{summary.ci_low:.4f}, {summary.ci_high:.4f}], train time {sum(pick.times_s) / len(pick.times_s):.2f} s
on average. MLflow runs: {', '.join(pick.run_ids)}.

## Finalists (the sweep's {len(finals)} best single runs)

| arm | trial | sweep objective | searched values |
|---|---|---|---|
{finalists_rows}

`statistics.md` compares them on the fresh seeds (paired by seed, Holm-corrected) and applies
the record rule; `environment.json` says where the runs ran.

## Run it

```bash
{f"bash {RECORDS_DIR}/{folder.name}/run.sh   # from the directory its data paths are relative to; NPROC ranks, {nproc} by default" if script else f"DATA_DIR=data/fineweb10B ./run.sh          # NPROC ranks, {nproc} by default"}
```

## Provenance

- speedrun commit: {commit or "unknown"}{" (with uncommitted changes)" if dirty else ""}
{f"- the script: `{Path(script).name}`, the original `{script}` with the winner's knobs (`changes.diff`):" if script else "- the full config (`config.yaml`):"}

```{"diff" if script else "yaml"}
{config_text.rstrip()}
```
"""


def promote(name: str, top_k: int, reseeds: int, options: SweepOptions, nproc: int = 8, track: int = 1,
            against: Against | None = None) -> Path:
    """Re-run the sweep's top_k configs with fresh seeds, pick by mean (track 3: by the earliest
    val step whose mean passes the track's validity rule), write the record (submission) folder."""
    if top_k < 1 or reseeds < 2:
        raise InputError(f"--top-k {top_k} --reseeds {reseeds}: expected at least 1 config and 2 seeds")
    if nproc < 1:
        raise InputError(f"--nproc {nproc}: expected 1 or more ranks for the record folder's run.sh (1 runs plain python)")
    if track not in (1, 3):
        raise InputError(f"--track {track}: expected 1 (the record: lowest mean loss) or 3 (the optimization track)")
    if against is not None and track != 3:
        raise InputError("--against: a prior result is compared by the optimization track's pairwise rule; add --track 3")
    if against is not None:
        against.losses()  # a file that cannot be read fails before any run
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one bar per config file is noise
    sweep = load_sweep(name, options.tracking_uri)
    if sweep.kind != "sweep":
        raise InputError(f"'{name}' is an ablation; promote a sweep (`speedrun ablate` already compares arms by mean)")
    work = Path(options.workdir).resolve() / "sweeps" / f"{name}-promote"
    finals = finalists(sweep, top_k, work)
    if track == 3 and not script_knobs(finals[0])[0]:
        raise InputError(f"--track 3: sweep '{name}' ran the built-in trainer; the optimization track takes a "
                         "train_gpt.py script, whose runs log all of its code")
    params = MlflowClient(options.tracking_uri).get_run(sweep.parent_id).data.params
    gpus, cpus = int(params.get("resources.gpus", "0")), float(params.get("resources.cpus", "1"))
    spec = promotion_file(f"{name}-promote", finals, reseeds, gpus, cpus, work / "promote.yaml")
    space = prepare_ablation(spec)
    result = run_sweep(space, replace(options, name=space.name))
    if not result.complete:
        raise InputError(f"the promotion was interrupted; continue it with: speedrun ablate {spec} --resume")
    promotion = load_sweep(space.name, options.tracking_uri)
    root = Path(options.workdir) / RECORDS_DIR
    if track == 3:
        folder = write_track3(sweep, promotion, finals, root, nproc, against, work.parent / space.name / "trials")
    else:
        folder = write_record(sweep, promotion, finals, pick_by_mean(promotion, finals), root, nproc)
    MlflowClient(options.tracking_uri).log_artifacts(promotion.parent_id, str(folder), "record")
    return folder
