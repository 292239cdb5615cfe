"""The ``speedrun report`` command: a sweep's or an ablation's Markdown report with figures."""

import json
from pathlib import Path
from typing import Annotated

import typer

from orchestrator.errors import exit_on_input_error
from orchestrator.stores import DEFAULT_TRACKING_URI


def report(
    name: Annotated[str, typer.Argument(help="Sweep or ablation name (its MLflow experiment and Optuna study).")],
    out: Annotated[Path | None, typer.Option(help="Directory to write into. Default: reports/NAME.")] = None,
    tracking_uri: Annotated[str, typer.Option(help="MLflow tracking URI the sweep logged to.")] = DEFAULT_TRACKING_URI,
    storage: Annotated[str | None, typer.Option(help="Optuna storage URL. Default: the one the sweep recorded.")] = None,
    top: Annotated[int, typer.Option(min=1, help="Trials in the leaderboard.")] = 10,
    json_: Annotated[bool, typer.Option("--json", help="Print the results as one JSON object (analysis/report_json.py documents its keys) instead of the report's path; the report is written all the same.")] = False,
) -> None:
    """Write a Markdown report with PNG figures for a sweep or an ablation, and log it to MLflow.

    A sweep's report has a leaderboard, parameter importance, the top trials' loss curves, the objective against each searched parameter and val loss against train time (Pareto front). An ablation's has each arm's final val loss and train time with 95% CIs, and each variant against the baseline (difference, paired / Welch / Holm p, detectable effect, seeds needed). Only finished trials are covered, so a running sweep can be reported. The report is also logged as artifacts (report/) on the sweep's MLflow run. Run it where the sweep ran (relative database paths).

    With --json: {name, kind, objective, target, counts, trials: [{number, status, objective, final_val_loss, train_time_s, wall_time_s, margin, searched, rung, error}] best first, best (a sweep's), arms and effects (an ablation's: each variant's difference, CI, p_paired, p_welch, p_holm, n_pairs, detectable, seeds_for_effect), report (the .md path)}; non-finite numbers are null.

    Example: speedrun report smoke    (after speedrun sweep smoke; writes reports/smoke/report.md; speedrun report smoke --json | jq .best)
    """
    from analysis.report import write_report

    with exit_on_input_error():
        path = write_report(name, tracking_uri, storage=storage, out_dir=out, top=top)
        if json_:
            from analysis.report_json import report_json

            typer.echo(json.dumps({**report_json(name, tracking_uri), "report": str(path)}))
            return
    typer.echo(str(path))
