"""`speedrun report NAME`: a Markdown report with PNG figures for a sweep or an ablation.

    path = write_report("lr-1", "sqlite:///mlflow.db")      # reports/lr-1/report.md (+ figures)
    print(effect_table("muon-ablation", "sqlite:///mlflow.db"))

It reads the MLflow store (and, for a sweep, the Optuna study), covers the trials that have
finished (a sweep still running reports what is done), and logs the report as artifacts of
the sweep's parent run under `report/`.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from analysis.ablation import arm_of, arms, effects
from analysis.ablation_report import ablation_sections, effects_table
from analysis.runs import Sweep, Trial, load_sweep, open_store
from analysis.study import load_study, param_importance, study_storage, trial_params
from analysis.sweep_report import best_trial, objective_label, objective_text, sweep_sections
from analysis.tables import DASH, loss, markdown_table, num, seconds
from trainer.uris import shown

REPORT_FILE = "report.md"
ARTIFACT_PATH = "report"
ERROR_CHARS = 160  # of an error's first line shown in the table; the full text is on the run


def write_report(name: str, tracking_uri: str, storage: str | None = None, out_dir: Path | str | None = None,
                 log_to_mlflow: bool = True, top: int = 10) -> Path:
    """Write the report of sweep or ablation NAME into out_dir (default reports/NAME); returns the .md path."""
    sweep = load_sweep(name, tracking_uri)
    out = Path(out_dir) if out_dir is not None else Path("reports") / name
    out.mkdir(parents=True, exist_ok=True)
    if sweep.kind == "ablation":
        all_arms = arms(sweep.trials)
        body = ablation_sections(sweep, all_arms, effects(all_arms), out)
        header = _header(sweep, f"Ablation report: {name}", _ablation_lines(sweep, [a.name for a in all_arms]))
    else:
        storage = study_storage(storage, sweep.storage)
        study, note = load_study(name, storage)
        sweep = _with_study_params(sweep, trial_params(study))
        body = sweep_sections(sweep, param_importance(study, note), out, top)
        header = _header(sweep, f"Sweep report: {name}", _sweep_lines(sweep, storage))
    text = "\n\n".join([header, *body, _not_completed(sweep)]) + "\n"
    path = out / REPORT_FILE
    path.write_text(text)
    if log_to_mlflow:
        _log_artifacts(sweep, path, text)
    return path


def effect_table(name: str, tracking_uri: str) -> str:
    """The ablation NAME's variants against the baseline, as a table to print."""
    return effects_table(effects(arms(load_sweep(name, tracking_uri).trials)))


def _header(sweep: Sweep, title: str, lines: list[str]) -> str:
    counts = ", ".join(f"{k} {v}" for k, v in sweep.counts().items())
    running = len(sweep.trials) - len(sweep.finished)
    trials = f"- **runs**: {len(sweep.finished)} finished ({counts or 'none yet'})"
    if running:
        trials += f"; {running} still running, not in this report"
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    sources = f"- **MLflow**: `{shown(sweep.tracking_uri)}`, experiment `{sweep.name}`, sweep run `{sweep.parent_id}`"
    return "\n".join([f"# {title}", "", trials, *lines, sources, f"- **generated**: {generated}"])


def _sweep_lines(sweep: Sweep, storage: str | None) -> list[str]:
    on_target = sweep.objective != "final_val_loss" and sweep.target is not None
    target = f" (target {num(sweep.target)})" if on_target else ""
    best = best_trial(sweep.trials)
    lines = [f"- **objective**: {objective_label(sweep)}, minimised{target}"]
    if best is None:
        lines.append("- **best trial**: none completed yet")
    else:
        lines.append(f"- **best trial**: {best.label}, objective {objective_text(sweep, best.objective)}, "
                     f"final val loss {loss(best.final_val_loss)}, train time {seconds(best.train_time_s)} s (run `{best.run_id}`)")
    return [*lines, f"- **Optuna**: `{shown(storage) if storage else DASH}`"]


def _ablation_lines(sweep: Sweep, arm_names: list[str]) -> list[str]:
    seeds = {str(t.searched["seed"]) for t in sweep.trials if "seed" in t.searched}
    return [f"- **arms**: {', '.join(arm_names) or DASH}; {len(seeds)} seed(s); statistics on completed runs only"]


def _not_completed(sweep: Sweep) -> str:
    others = [t for t in sweep.trials if not t.completed]
    if not others:
        return "## Runs not completed\n\nNone: every run completed."
    ablation = sweep.kind == "ablation"
    headers = ["trial", *(["arm", "seed"] if ablation else []), "status", "error"]
    rows = [
        [t.label, *([arm_of(t), str(t.searched.get("seed", DASH))] if ablation else []), t.status, _error(t)]
        for t in others
    ]
    note = "left out of the statistics" if ablation else "not ranked by objective"
    return f"## Runs not completed ({note})\n\n{markdown_table(headers, rows)}"


def _error(trial: Trial) -> str:
    first = trial.error.strip().splitlines()[0] if trial.error.strip() else DASH
    if len(first) > ERROR_CHARS:
        first = first[: ERROR_CHARS - 1] + "…"
    return first.replace("|", "\\|")


def _with_study_params(sweep: Sweep, by_number: dict[int, dict]) -> Sweep:
    """Trials that logged no `searched.*` params get the study's record of what was proposed."""
    trials = [
        replace(t, searched=by_number.get(t.number, {})) if not t.searched and t.number is not None else t
        for t in sweep.trials
    ]
    return replace(sweep, trials=trials)


def _log_artifacts(sweep: Sweep, path: Path, text: str) -> None:
    """The report and the figures it links, under report/ of the parent run (not the whole folder:
    --out may be a directory holding other files)."""
    client = open_store(sweep.tracking_uri)
    for name in [path.name, *sorted(set(re.findall(r"\]\(([\w.-]+\.png)\)", text)))]:
        client.log_artifact(sweep.parent_id, str(path.parent / name), artifact_path=ARTIFACT_PATH)
